"""schemas/tables.json is the single schema source: check it and the two schemas derived from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest

import spotify_pipeline
from spotify_pipeline import transform
from spotify_pipeline.features import MODEL_FEATURES, Z_COLUMNS
from spotify_pipeline.schema import TableSpec, table, table_names, tables

SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
NAMES = sorted(tables())
ARROW_OF = {  # written out independently of schema._arrow_type
    "STRING": pa.string(),
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


@pytest.fixture(params=NAMES)
def spec(request: pytest.FixtureRequest) -> TableSpec:
    return table(request.param)


def test_every_stage_output_has_a_schema() -> None:
    outputs = {*transform.TABLES, "recommendations", "track_clusters", "clusters", "pipeline_runs", "run_outcomes"}
    assert outputs == set(tables())


def test_groups_give_each_stage_its_tables_in_load_order() -> None:
    """load loads (and records row counts) in this order; recommend's manifest lists its files so."""
    assert table_names("transform") == (
        "chart_entries",
        "tracks",
        "artists",
        "track_artists",
        "artist_genres",
        "model_features",
    )
    assert table_names("recommend") == ("recommendations", "track_clusters", "clusters")
    assert table_names("records") == ("pipeline_runs", "run_outcomes")
    assert {t.group for t in tables().values()} == {"transform", "recommend", "records"}


def test_file_is_the_packaged_source() -> None:
    path = Path(spotify_pipeline.__file__).parent / "schemas" / "tables.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert set(raw["tables"]) == set(tables())
    for name, body in raw["tables"].items():
        assert [c["name"] for c in body["columns"]] == table(name).column_names


def test_unknown_table_error_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="chart_entries"):
        table("chart_entry")


def test_names_are_snake_case_and_unique(spec: TableSpec) -> None:
    assert SNAKE.match(spec.name), spec.name
    names = spec.column_names
    assert all(SNAKE.match(n) for n in names), [n for n in names if not SNAKE.match(n)]
    assert len(names) == len(set(names)), names


def test_partition_field(spec: TableSpec) -> None:
    # The run records by when they happened (a refused run has no week); the data by week.
    expected = {"pipeline_runs": "started_at", "run_outcomes": "decided_at"}.get(spec.name, "snapshot_date")
    assert spec.partition_field == expected
    column = {c.name: c for c in spec.columns}[expected]
    assert column.type == ("DATE" if expected == "snapshot_date" else "TIMESTAMP")
    assert column.mode == "REQUIRED"


def test_clustering_columns_exist_and_are_usable(spec: TableSpec) -> None:
    columns = {c.name: c for c in spec.columns}
    assert 1 <= len(spec.clustering) <= 4  # BigQuery allows at most four
    assert len(set(spec.clustering)) == len(spec.clustering)
    for name in spec.clustering:
        assert name in columns, name
        assert columns[name].mode != "REPEATED", name  # BigQuery cannot cluster on arrays
        assert columns[name].type in ("STRING", "INT64", "DATE", "TIMESTAMP", "BOOL"), name


def test_modes_types_and_load(spec: TableSpec) -> None:
    for c in spec.columns:
        assert c.mode in ("REQUIRED", "NULLABLE", "REPEATED"), c
        assert c.type in ARROW_OF, c
    expected_load = "append" if spec.name in ("pipeline_runs", "run_outcomes") else "replace_partition"
    assert spec.load == expected_load
    assert spec.description.strip()


def test_arrow_and_bigquery_schemas_agree(spec: TableSpec) -> None:
    arrow = spec.arrow_schema()
    bq = spec.bigquery_schema()
    assert arrow.names == [f.name for f in bq] == spec.column_names
    for column, af, bf in zip(spec.columns, arrow, bq, strict=True):
        assert bf.field_type == column.type and bf.mode == column.mode, column.name
        assert af.nullable == (bf.mode != "REQUIRED"), column.name
        if bf.mode == "REPEATED":
            assert pa.types.is_list(af.type), column.name
            assert af.type.value_type == ARROW_OF[bf.field_type], column.name
            assert not af.type.value_field.nullable, column.name
        else:
            assert not pa.types.is_list(af.type), column.name
            assert af.type == ARROW_OF[bf.field_type], column.name


def test_arrow_schema_carries_no_metadata(spec: TableSpec) -> None:
    assert spec.arrow_schema().metadata in (None, {})


def test_key_columns_of_chart_entries() -> None:
    chart = {c.name: c for c in table("chart_entries").columns}
    for name, typ in (("snapshot_date", "DATE"), ("market", "STRING"), ("rank", "INT64"), ("track_id", "STRING")):
        assert chart[name].type == typ and chart[name].mode == "REQUIRED", name


def test_key_columns_of_recommendations() -> None:
    rec = {c.name: c for c in table("recommendations").columns}
    for name, typ in (
        ("snapshot_date", "DATE"),
        ("track_id", "STRING"),
        ("neighbor_track_id", "STRING"),
        ("distance", "FLOAT64"),
        ("rank", "INT64"),
    ):
        assert rec[name].type == typ and rec[name].mode == "REQUIRED", name


def test_model_features_has_raw_and_z_columns() -> None:
    names = table("model_features").column_names
    for feature in MODEL_FEATURES:
        assert feature in names and f"{feature}_z" in names
    assert set(Z_COLUMNS) <= set(names)
    clusters = table("clusters").column_names
    assert set(MODEL_FEATURES) <= set(clusters)  # centroids in original units


def test_every_data_table_is_a_snapshot_table() -> None:
    for name, spec in tables().items():
        if name not in ("pipeline_runs", "run_outcomes"):  # the run records, appended
            assert spec.column_names[0] == "snapshot_date", name
