"""Create the dataset, tables and dashboard views from the schema source (what Terraform does in the cloud)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spotify_pipeline.schema import tables, views

if TYPE_CHECKING:
    from google.cloud import bigquery


def ensure_dataset(client: bigquery.Client, dataset: str) -> None:
    from google.cloud import bigquery

    client.create_dataset(bigquery.Dataset(f"{client.project}.{dataset}"), exists_ok=True)
    for spec in tables().values():
        t = bigquery.Table(f"{client.project}.{dataset}.{spec.name}", schema=spec.bigquery_schema())
        t.description = spec.description
        t.time_partitioning = bigquery.TimePartitioning(field=spec.partition_field)
        t.clustering_fields = list(spec.clustering) or None
        existing = client.create_table(t, exists_ok=True)
        _add_new_columns(client, existing, spec.bigquery_schema())
    ensure_views(client, dataset)


def _add_new_columns(client: bigquery.Client, existing: bigquery.Table, wanted: list[bigquery.SchemaField]) -> None:
    """Bring a table made by an older version up to date: BigQuery allows adding NULLABLE columns.

    A change it does not allow (a new REQUIRED column, a changed type) is refused with what to do.
    """
    have = {f.name: f for f in existing.schema}
    added = [f for f in wanted if f.name not in have]
    changed = [f.name for f in wanted if f.name in have and have[f.name].field_type != f.field_type]
    required = [f.name for f in added if f.mode == "REQUIRED"]
    if changed or required:
        raise RuntimeError(
            f"table {existing.table_id}: columns {changed + required} cannot be migrated in place; "
            "wipe the local warehouse (`make clean`) or migrate the table by hand"
        )
    for f in added:
        # DDL rather than update_table: the BigQuery emulator alters its storage only for DDL.
        typ = f"ARRAY<{f.field_type}>" if f.mode == "REPEATED" else f.field_type
        table_ref = f"`{existing.project}.{existing.dataset_id}.{existing.table_id}`"
        client.query(f"ALTER TABLE {table_ref} ADD COLUMN IF NOT EXISTS `{f.name}` {typ}").result()


def ensure_views(client: bigquery.Client, dataset: str) -> list[str]:
    """Create every view of the schema source, or replace its SQL and description; return their names.

    Idempotent, so a stack whose tables predate a view (or an edited view) is brought up to date.
    """
    from google.api_core.exceptions import Conflict
    from google.cloud import bigquery

    done = []
    for spec in views().values():
        v = bigquery.Table(f"{client.project}.{dataset}.{spec.name}")
        v.view_query = spec.query(client.project, dataset)
        v.description = spec.description
        try:
            client.create_table(v)
        except Conflict:
            client.update_table(v, ["view_query", "description"])
        done.append(spec.name)
    return done
