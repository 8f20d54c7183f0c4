"""The bucket store and the partition-replacing loader against the GCS and BigQuery emulators."""

from __future__ import annotations

import uuid
from datetime import date

import pandas as pd
import pytest
from helpers import bq, gcs

from spotify_pipeline.errors import DataError
from spotify_pipeline.load import replace_partitions
from spotify_pipeline.manifest import FileEntry, Manifest
from spotify_pipeline.schema import table
from spotify_pipeline.store import BucketStore, StaleObject
from spotify_pipeline.tabular import parquet_bytes, to_arrow
from spotify_pipeline_tools.provision import ensure_dataset


def _manifest(run_id: str, files: tuple[FileEntry, ...] = ()) -> Manifest:
    return Manifest(
        stage="extract", snapshot_date=date(2026, 1, 5), run_id=run_id, started_at="t0", finished_at="t1", files=files
    )


def test_manifest_reads_are_pinned_to_the_event_generation(stack) -> None:
    store = BucketStore(gcs(stack), "spotify-pipeline-local")
    name = f"itest/{uuid.uuid4().hex}/_manifest.json"
    first = store.write_manifest(_manifest("one"), name)
    manifest, generation, _ = store.read_manifest(name, first)
    assert (manifest.run_id, generation) == ("one", first)
    second = store.write_manifest(_manifest("two"), name)
    assert second != first
    with pytest.raises(StaleObject, match="superseded"):
        store.read_manifest(name, first)  # a late event of the first write acts on nothing
    assert store.read_manifest(name, second)[0].run_id == "two"


def test_files_are_verified_against_their_manifest_checksums(stack) -> None:
    store = BucketStore(gcs(stack), "spotify-pipeline-local")
    name = f"itest/{uuid.uuid4().hex}/data.json"
    entry = store.write(name, b'{"a": 1}', "application/json")
    assert store.read_verified(entry) == b'{"a": 1}'
    store.write(name, b'{"a": 2}', "application/json")  # a newer run overwrote it
    with pytest.raises(StaleObject, match="changed since"):
        store.read_verified(entry)


def test_delete_stale_keeps_only_what_the_new_manifest_lists(stack) -> None:
    store = BucketStore(gcs(stack), "spotify-pipeline-local")
    prefix = f"itest/{uuid.uuid4().hex}/"
    for part in ("a", "b", "c"):
        store.write(prefix + part, b"x", "text/plain")
    store.write("itest/elsewhere", b"x", "text/plain")
    assert store.delete_stale(prefix, {prefix + "a"}) == [prefix + "b", prefix + "c"]
    assert store.names(prefix) == [prefix + "a"]
    assert "itest/elsewhere" in store.names("itest/")


def _clusters(snapshot: date, sizes: list[int]) -> bytes:
    df = pd.DataFrame(
        {
            "snapshot_date": snapshot,
            "cluster": range(len(sizes)),
            "size": sizes,
            "danceability": 0.5,
            "energy": 0.5,
            "loudness": -6.0,
            "valence": 0.5,
        }
    )
    return parquet_bytes(to_arrow(df, table("clusters")))


def test_replace_partition_keeps_one_copy_and_other_snapshots(stack) -> None:
    client = bq(stack)
    dataset = "itest_" + uuid.uuid4().hex[:8]
    ensure_dataset(client, dataset)
    a, b = date(2026, 1, 5), date(2026, 1, 12)

    def rows() -> list[tuple[str, int, int]]:
        result = client.query(
            f"SELECT snapshot_date, cluster, size FROM `{dataset}.clusters` ORDER BY 1, 2", job_config=None
        ).result()
        return [(r[0].isoformat(), r[1], r[2]) for r in result]

    def load(parquet: bytes, snapshot: str, run_id: str) -> int:
        return replace_partitions(client, dataset, {"clusters": parquet}, snapshot, run_id)["clusters"]

    assert load(_clusters(a, [3, 4]), a.isoformat(), "r1") == 2
    assert load(_clusters(a, [3, 4]), a.isoformat(), "r2") == 2
    assert load(_clusters(b, [9]), b.isoformat(), "r3") == 1
    assert rows() == [("2026-01-05", 0, 3), ("2026-01-05", 1, 4), ("2026-01-12", 0, 9)]
    # A re-run of snapshot a with different output replaces a, and only a.
    load(_clusters(a, [7]), a.isoformat(), "r4")
    assert rows() == [("2026-01-05", 0, 7), ("2026-01-12", 0, 9)]
    # Rows of another snapshot in the file: refused, and nothing changes.
    with pytest.raises(DataError, match="not of snapshot_date 2026-01-05"):
        load(_clusters(b, [1, 1]), a.isoformat(), "r5")
    assert rows() == [("2026-01-05", 0, 7), ("2026-01-12", 0, 9)]
    leftovers = [t.table_id for t in client.list_tables(dataset) if t.table_id.startswith("_staging")]
    assert leftovers == []

    # A table dropped by hand: a permanent error saying how to create it, not a day of retries.
    client.delete_table(f"{client.project}.{dataset}.clusters")
    with pytest.raises(DataError, match=r"clusters does not exist: create the tables .*stack up"):
        load(_clusters(a, [7]), a.isoformat(), "r6")
    ensure_dataset(client, dataset)  # what `stack up` (or terraform apply) does
    assert load(_clusters(a, [7]), a.isoformat(), "r7") == 1
