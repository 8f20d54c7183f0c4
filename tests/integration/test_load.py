"""A snapshot appears all at once: the nine tables of a load replaced in one BigQuery transaction,
staging tables found and swept, against the BigQuery emulator of the session's local stack."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from helpers import bq, cli

from spotify_pipeline.errors import DataError
from spotify_pipeline.load import RECOMMEND_TABLES, TRANSFORM_TABLES, replace_partitions, staging_tables
from spotify_pipeline.schema import Column, TableSpec, table
from spotify_pipeline.tabular import parquet_bytes
from spotify_pipeline_tools.provision import ensure_dataset
from spotify_pipeline_tools.stack.local import DATASET

pytestmark = pytest.mark.emulators

LOADED = (*TRANSFORM_TABLES, *RECOMMEND_TABLES)  # load's order: clusters is the last table of the transaction
A, B = date(2026, 1, 5), date(2026, 1, 12)


def _value(column: Column, snapshot: date, version: int, i: int) -> Any:
    value: Any = {
        "STRING": f"v{version}-{i}",
        "INT64": i,
        "FLOAT64": float(version),
        "BOOL": True,
        "DATE": snapshot,
        "TIMESTAMP": datetime(2026, 1, 1, tzinfo=UTC),
    }[column.type]
    return [value] if column.repeated else value


def _parquet(spec: TableSpec, snapshot: date, version: int, *, stray: date | None = None) -> bytes:
    """``version`` rows of snapshot ``snapshot`` (so a row count says which version a table holds),
    plus one row of snapshot ``stray`` if given."""
    days = [snapshot] * version + ([stray] if stray else [])
    rows = [{c.name: _value(c, day, version, i) for c in spec.columns} for i, day in enumerate(days)]
    return parquet_bytes(pa.Table.from_pylist(rows, schema=spec.arrow_schema()))


def _files(snapshot: date, version: int, **stray: date) -> dict[str, bytes]:
    return {name: _parquet(table(name), snapshot, version, stray=stray.get(name)) for name in LOADED}


@pytest.fixture
def dataset(stack: Any) -> Iterator[str]:
    name = "itest_" + uuid.uuid4().hex[:8]
    ensure_dataset(bq(stack), name)
    yield name
    bq(stack).delete_dataset(name, delete_contents=True, not_found_ok=True)


def _versions(client: Any, dataset: str, snapshot: date, tables: tuple[str, ...] = LOADED) -> tuple[int, ...]:
    """Rows of ``snapshot`` per table, read in ONE query (one consistent read, as a dashboard's)."""
    counts = ", ".join(
        f"(SELECT COUNT(*) FROM `{dataset}.{name}` WHERE snapshot_date = '{snapshot}') AS {name}" for name in tables
    )
    return tuple(next(iter(client.query(f"SELECT {counts}").result())).values())


def _staging(client: Any, dataset: str, *snapshots: date) -> list[str]:
    return sorted(t.table_id for t in staging_tables(client, dataset, None) if not snapshots or t.snapshot in snapshots)


def test_a_reader_sees_all_nine_tables_old_or_all_new(stack: Any, dataset: str) -> None:
    client = bq(stack)
    replace_partitions(client, dataset, _files(A, 1), A.isoformat(), "r0")
    seen: list[tuple[int, ...]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            seen.append(_versions(bq(stack), dataset, A))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for run, version in enumerate((2, 1, 2, 1, 2)):
            assert replace_partitions(
                client, dataset, _files(A, version), A.isoformat(), f"r{run + 1}"
            ) == dict.fromkeys(LOADED, version)
    finally:
        done.set()
        thread.join()
    assert {(1,) * 9, (2,) * 9} >= set(seen), [s for s in seen if len(set(s)) > 1][:3]
    assert len(set(seen)) == 2, f"the reader saw only {set(seen)} in {len(seen)} reads"  # it did watch loads land
    assert _versions(client, dataset, A) == (2,) * 9 and _staging(client, dataset) == []


def test_a_failure_inside_the_transaction_leaves_every_table_as_it_was(stack: Any, dataset: str) -> None:
    client = bq(stack)
    replace_partitions(client, dataset, _files(A, 1), A.isoformat(), "r1")
    replace_partitions(client, dataset, _files(B, 3), B.isoformat(), "r2")

    # A row of another snapshot in the last table: the transaction's check refuses the whole load.
    with pytest.raises(DataError) as failed:
        replace_partitions(client, dataset, _files(A, 2, clusters=B), A.isoformat(), "r3")
    assert str(failed.value) == "table clusters: 1 rows are not of snapshot_date 2026-01-05; nothing loaded"
    assert _versions(client, dataset, A) == (1,) * 9 and _versions(client, dataset, B) == (3,) * 9

    # The last table missing: its MERGE fails after the eight others', which are rolled back.
    client.delete_table(f"{client.project}.{dataset}.clusters")
    with pytest.raises(DataError, match=rf"{dataset}.clusters does not exist: create the tables"):
        replace_partitions(client, dataset, _files(A, 2), A.isoformat(), "r4")
    assert _versions(client, dataset, A, LOADED[:8]) == (1,) * 8
    ensure_dataset(client, dataset)

    # The retried load leaves all nine new, the other snapshot untouched, no staging table.
    assert replace_partitions(client, dataset, _files(A, 2), A.isoformat(), "r5") == dict.fromkeys(LOADED, 2)
    assert _versions(client, dataset, A) == (2,) * 9
    assert _versions(client, dataset, B, LOADED[:8]) == (3,) * 8  # (B's clusters went with the dropped table)
    assert _staging(client, dataset) == []


def test_a_load_is_nine_load_jobs_and_one_query_job(stack: Any, dataset: str) -> None:
    client = bq(stack)
    files = _files(A, 1)

    def jobs_of_dataset() -> list[str]:
        out = []
        for job in client.list_jobs(all_users=True, max_results=100_000):  # the emulator's default: 100
            if job.job_type == "load" and job.destination.dataset_id == dataset:
                out.append("load")
            elif job.job_type == "query" and f"{dataset}." in (job.query or ""):
                out.append("query")
        return out

    assert jobs_of_dataset() == []
    replace_partitions(client, dataset, files, A.isoformat(), "r1")
    assert sorted(jobs_of_dataset()) == ["load"] * 9 + ["query"]


def test_leftover_staging_tables_are_shown_by_status_and_swept_by_the_next_load_of_their_snapshot(
    stack: Any, repo: Any
) -> None:
    """In the stack's own dataset (what `status` reads), on a snapshot no other test uses."""
    from google.cloud import bigquery

    client = bq(stack)
    day, other = date(2019, 1, 7), date(2019, 1, 14)
    spec = table("clusters")
    leftover = f"_staging_clusters_{day:%Y%m%d}_crashed_run_0badf00d"  # what a failed delete leaves
    elsewhere = f"_staging_clusters_{other:%Y%m%d}_crashed_run_0badf00d"
    for name in (leftover, elsewhere):
        client.create_table(bigquery.Table(f"{client.project}.{DATASET}.{name}", schema=spec.bigquery_schema()))
    try:
        status = cli("status", cwd=repo, env={"SPOTIFY_PIPELINE_STACK_DIR": str(stack.root)})
        assert status.returncode == 0, status.stderr
        assert "staging tables: 2 (a load in progress, or a failed delete;" in status.stdout
        assert f"  {leftover}  snapshot {day}  0.0 h old" in status.stdout
        assert f"  {elsewhere}  snapshot {other}  0.0 h old" in status.stdout

        load = {"clusters": _parquet(spec, day, 1)}
        replace_partitions(client, DATASET, load, day.isoformat(), "sweeper-1")
        assert _staging(client, DATASET, day, other) == [leftover, elsewhere]  # young: maybe a running load's
        later = datetime.now(UTC) + timedelta(hours=2)
        replace_partitions(client, DATASET, load, day.isoformat(), "sweeper-2", now=lambda: later)
        assert _staging(client, DATASET, day, other) == [elsewhere]  # only its own snapshot's
    finally:
        client.delete_table(f"{client.project}.{DATASET}.{elsewhere}", not_found_ok=True)
        client.query(f"DELETE FROM `{DATASET}.clusters` WHERE snapshot_date = '{day}'").result()


def test_two_loads_of_one_snapshot_at_once_leave_one_of_them_whole(stack: Any, dataset: str) -> None:
    """Each commits, or fails with an error that is not a DataError (so Eventarc redelivers it); the
    emulator runs the two transactions one after the other (both commit); BigQuery cancels one."""
    client = bq(stack)
    replace_partitions(client, dataset, _files(A, 1), A.isoformat(), "r0")
    outcomes: dict[int, str] = {}
    start = threading.Barrier(2)

    def load(version: int) -> None:
        start.wait()
        try:
            replace_partitions(bq(stack), dataset, _files(A, version), A.isoformat(), f"r{version}")
            outcomes[version] = "committed"
        except DataError as exc:
            outcomes[version] = f"permanent: {exc}"
        except Exception as exc:  # a function raises it: the event is redelivered
            outcomes[version] = f"transient: {type(exc).__name__}"

    threads = [threading.Thread(target=load, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [o for o in outcomes.values() if o.startswith("permanent")], outcomes
    assert "committed" in outcomes.values()
    assert _versions(client, dataset, A) in {(2,) * 9, (3,) * 9}, outcomes
