"""The one source of truth for table schemas: ``schemas/tables.json``.

Terraform reads the same file (``jsondecode(file(...))``), the loader builds its
BigQuery schemas from it, and transform/recommend build their Parquet schemas from it,
so a column can only be added in one place. Its "views" are the dashboard views, created by
Terraform and by the local stack (``provision.ensure_views``) from the same SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # heavy imports stay out of extract's cold start
    import pyarrow as pa
    from google.cloud import bigquery

LoadMode = Literal["replace_partition", "append"]
# Who writes a table: the transform or recommend stage (one Parquet file per table and week, loaded
# by load in the file's order), or every stage's run records (appended).
TableGroup = Literal["transform", "recommend", "records"]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    mode: str
    description: str

    @property
    def required(self) -> bool:
        return self.mode == "REQUIRED"

    @property
    def repeated(self) -> bool:
        return self.mode == "REPEATED"


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    group: TableGroup
    partition_field: str
    clustering: tuple[str, ...]
    load: LoadMode
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def bigquery_schema(self) -> list[bigquery.SchemaField]:
        from google.cloud import bigquery

        return [bigquery.SchemaField(c.name, c.type, mode=c.mode, description=c.description) for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa

        fields = []
        for c in self.columns:
            typ = _arrow_type(c.type)
            if c.repeated:
                # BigQuery's list inference reads `list<element>`; the element is never null.
                typ = pa.list_(pa.field("element", typ, nullable=False))
            fields.append(pa.field(c.name, typ, nullable=not c.required))
        return pa.schema(fields)


def _arrow_type(bq_type: str) -> pa.DataType:
    import pyarrow as pa

    mapping: dict[str, pa.DataType] = {
        "STRING": pa.string(),
        "INT64": pa.int64(),
        "FLOAT64": pa.float64(),
        "BOOL": pa.bool_(),
        "DATE": pa.date32(),
        "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    }
    try:
        return mapping[bq_type]
    except KeyError:
        raise ValueError(f"schemas/tables.json: unsupported column type {bq_type!r}") from None


@dataclass(frozen=True)
class ViewSpec:
    """A dashboard view: BigQuery Standard SQL naming tables as `{project}.{dataset}.table`."""

    name: str
    description: str
    sql: str

    def query(self, project: str, dataset: str) -> str:
        """The SQL with the placeholders replaced (as Terraform does)."""
        return self.sql.replace("{project}", project).replace("{dataset}", dataset)


@cache
def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(
        resources.files("spotify_pipeline").joinpath("schemas/tables.json").read_text("utf-8")
    )
    return raw


@cache
def tables() -> dict[str, TableSpec]:
    raw = _raw()
    out: dict[str, TableSpec] = {}
    for name, t in raw["tables"].items():
        out[name] = TableSpec(
            name=name,
            description=t["description"],
            group=t["group"],
            partition_field=t["partition_field"],
            clustering=tuple(t["clustering"]),
            load=t["load"],
            columns=tuple(Column(c["name"], c["type"], c["mode"], c.get("description", "")) for c in t["columns"]),
        )
    return out


def table_names(group: TableGroup) -> tuple[str, ...]:
    """The tables of ``group``, in the file's order (the order load loads them in)."""
    return tuple(name for name, spec in tables().items() if spec.group == group)


def table(name: str) -> TableSpec:
    try:
        return tables()[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(tables()))}") from None


@cache
def views() -> dict[str, ViewSpec]:
    """The dashboard views (the file's "views"; empty if it has none), in file order."""
    return {
        name: ViewSpec(name=name, description=v.get("description", ""), sql=v["sql"])
        for name, v in _raw().get("views", {}).items()
    }


def view(name: str) -> ViewSpec:
    try:
        return views()[name]
    except KeyError:
        raise KeyError(f"unknown view {name!r}; known: {', '.join(sorted(views()))}") from None
