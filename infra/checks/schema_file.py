"""Offline check that BigQuery in infra/ is built from the loader's schema file (tables.json), and
that the file itself is loadable: partitioning, clustering, types, views. Run by wiring.py."""

from __future__ import annotations

import json
import re
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra_model import Infra, norm
from tfparse import block

BIGQUERY_TYPES = {
    "STRING", "BYTES", "INT64", "INTEGER", "FLOAT64", "FLOAT", "NUMERIC", "BIGNUMERIC", "BOOL", "BOOLEAN",
    "TIMESTAMP", "DATE", "TIME", "DATETIME", "GEOGRAPHY", "JSON", "RECORD", "STRUCT",
}  # fmt: skip


def check_schema(infra: Infra) -> list[str]:
    from typing import get_args

    from spotify_pipeline import layout, load
    from spotify_pipeline.schema import TableGroup

    problems = []
    locals_ = infra.config["locals"]
    schema_file = infra.tf_path(locals_.get("schema_file", ""))
    expected = (infra.repo / "src" / "spotify_pipeline" / "schemas" / "tables.json").resolve()
    if schema_file != expected:
        return [f"local.schema_file is {schema_file}, expected the loader's schema file {expected}"]
    if norm(locals_.get("schema")) != "jsondecode(file(local.schema_file))":
        problems.append("local.schema must be jsondecode(file(local.schema_file))")
    if norm(locals_.get("tables")) != "local.schema.tables":
        problems.append("local.tables must be local.schema.tables")
    if norm(locals_.get("views")) != "try(local.schema.views,{})":
        problems.append("local.views must be try(local.schema.views, {})")
    tables = infra.resources("google_bigquery_table")
    t = tables.get("tables")
    if t is None:
        problems.append("google_bigquery_table.tables (for_each over the schema file) is missing")
    else:
        if norm(t.get("for_each")) != "local.tables":
            problems.append("google_bigquery_table.tables must iterate local.tables")
        if norm(block(t, "time_partitioning").get("field")) != "each.value.partition_field":
            problems.append("tables must be partitioned on each.value.partition_field")
        if "each.value.clustering" not in str(t.get("clustering")):
            problems.append("tables must be clustered on each.value.clustering")
        schema_expr = str(t.get("schema"))
        if not all(s in schema_expr for s in ("each.value.columns", "column.name", "column.mode")):
            problems.append("the table schema must be built from each.value.columns")
        if norm(t.get("deletion_protection")) != "var.deletion_protection" or not infra.variable_default(
            "deletion_protection"
        ):
            problems.append("tables must have deletion_protection = var.deletion_protection, default true")
    v = tables.get("views")
    if v is None:
        problems.append("google_bigquery_table.views (for_each over the schema file's views) is missing")
    else:
        query = str(block(v, "view").get("query"))
        if norm(v.get("for_each")) != "local.views" or "each.value.sql" not in query:
            problems.append("google_bigquery_table.views must iterate local.views and use each.value.sql")
        if not all(p in query for p in ('"{project}"', '"{dataset}"')):
            problems.append("view SQL must have {project} and {dataset} replaced")
    for name, body in tables.items():
        if name not in ("tables", "views") and ("schema" in body or "view" not in body):
            problems.append(f"google_bigquery_table.{name}: a table defined outside tables.json (second schema copy)")
    for stray in infra.infra_dir.glob("*.json"):
        problems.append(f"{stray.name}: schema-like JSON in infra/; tables.json is the one source")

    # The schema file itself: what Terraform will build must be loadable.
    try:
        doc = json.loads(schema_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [*problems, f"{schema_file}: {exc}"]
    specs = doc.get("tables", {})
    for name in (*load.TRANSFORM_TABLES, *load.RECOMMEND_TABLES, "pipeline_runs", "run_outcomes"):
        if name not in specs:
            problems.append(f"tables.json: table {name!r} the loader writes is missing")
    for name, spec in specs.items():
        if spec.get("group") not in get_args(TableGroup):
            problems.append(f"tables.json: {name}: group must be one of {', '.join(get_args(TableGroup))}")
        cols = {c.get("name"): c for c in spec.get("columns", [])}
        if len(cols) != len(spec.get("columns", [])):
            problems.append(f"tables.json: {name}: duplicate column names")
        for c in cols.values():
            if str(c.get("type")).upper() not in BIGQUERY_TYPES:
                problems.append(f"tables.json: {name}.{c.get('name')}: unknown type {c.get('type')!r}")
            if c.get("mode") not in ("REQUIRED", "NULLABLE", "REPEATED"):
                problems.append(f"tables.json: {name}.{c.get('name')}: unknown mode {c.get('mode')!r}")
        part = cols.get(spec.get("partition_field"))
        if part is None or part.get("type") not in ("DATE", "TIMESTAMP", "DATETIME") or part.get("mode") == "REPEATED":
            problems.append(f"tables.json: {name}: partition_field must be a DATE/TIMESTAMP/DATETIME column")
        clustering = spec.get("clustering", [])
        if len(clustering) > 4 or any(c not in cols or cols[c].get("mode") == "REPEATED" for c in clustering):
            problems.append(f"tables.json: {name}: clustering must be at most 4 existing, non-repeated columns")
    for name, view in doc.get("views", {}).items():
        sql = view.get("sql") if isinstance(view, dict) else None
        if not isinstance(sql, str) or not sql.strip():
            problems.append(f"tables.json: view {name!r} has no sql")
            continue
        for placeholder in set(re.findall(r"\$?\{(\w+)\}", sql)) - {"project", "dataset"}:
            problems.append(f"tables.json: view {name!r}: unknown placeholder {{{placeholder}}}")
    if not layout.prefix("extract", date(2026, 1, 5)).startswith("extract/"):
        problems.append("layout: raw objects are no longer under extract/ (the lifecycle rule's prefix)")
    return problems
