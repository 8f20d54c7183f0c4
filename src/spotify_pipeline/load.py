"""Load: every dataset of a snapshot into BigQuery, replacing that snapshot's partition only,
in every table at once (the tables are declared ``replace_partition`` in ``schemas/tables.json``).

1. Each Parquet file goes, in parallel, into a staging table of its own, created first with the
   table's explicit schema and an expiration time (BigQuery drops it even if every delete fails),
   named ``_staging_<table>_<yyyymmdd>_<run>_<hex>`` so later loads and ``status`` find it.
2. ONE query job, a multi-statement transaction: one check (``ERROR()`` if a staged row is not of
   the snapshot), one MERGE per table, COMMIT. A failure anywhere in it rolls back every table:
   readers see all tables old or all new.
3. The staging tables are deleted; each load first deletes its snapshot's staging tables older
   than :data:`STAGING_SWEEP_AGE` (left by a failed delete; younger ones may be a live load's).

Why a transaction: the one mechanism that is atomic across tables both on BigQuery and on the
local bqemulator (measured there: a script failing after some MERGEs leaves every table as it
was). The emulator takes no query parameters in scripts: the snapshot date is inlined from a
parsed ``date``. Two loads of one snapshot at once: on BigQuery one transaction is cancelled,
an error like any but :class:`DataError`, so it is raised and Eventarc redelivers the event; a
load that finds, once committed, that its recommend manifest was superseded loads the current
one again (:data:`CATCH_UP_LOADS`), so whichever commits last leaves the current manifest's tables.
Details and jobs per load, before and after: docs/operations.md, "Loading".
"""

from __future__ import annotations

import io
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from spotify_pipeline import layout
from spotify_pipeline.errors import DataError
from spotify_pipeline.manifest import LoadSummary, Manifest, ManifestError, RecommendSummary, UpstreamRef
from spotify_pipeline.schema import TableSpec, table, table_names
from spotify_pipeline.store import BucketStore, StaleObject

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)

BQ_RETRY_SECONDS = 20.0  # retries of one BigQuery call
BQ_JOB_SECONDS = 300.0  # one load or query job
TRANSFORM_TABLES = table_names("transform")  # tables.json's groups, in load's order
RECOMMEND_TABLES = table_names("recommend")

STAGING_PREFIX = "_staging_"
STAGING_EXPIRES = timedelta(hours=6)  # BigQuery drops a staging table itself after this (bqemulator does not)
# Longer than any load (the function times out after 540 s), so a concurrent load's tables are never swept.
STAGING_SWEEP_AGE = timedelta(hours=1)
STAGING_RE = re.compile(
    rf"^{STAGING_PREFIX}(?P<table>[a-z_]+?)_(?P<day>\d{{8}})_(?P<run>\w+)_(?P<token>[0-9a-f]{{8}})$"
)
CHECK_MARK = "snapshot check: "  # starts the ERROR() message of a failed check, to tell it from other errors
CHECK_RE = re.compile(rf"{CHECK_MARK}(table \w+: \d+ rows are not of snapshot_date \d{{4}}-\d{{2}}-\d{{2}})")


@dataclass(frozen=True)
class StagingTable:
    table_id: str
    table: str  # the table it stages
    snapshot: date
    created: datetime | None


def staging_tables(
    client: bigquery.Client, dataset: str, retry: Any, timeout: float | None = None
) -> list[StagingTable]:
    """The staging tables in ``dataset`` now: a load's in progress, or left by a failed delete."""
    out = []
    for item in client.list_tables(dataset, retry=retry, timeout=timeout):
        m = STAGING_RE.match(item.table_id)
        if m:
            day = datetime.strptime(m["day"], "%Y%m%d").date()
            out.append(StagingTable(item.table_id, m["table"], day, item.created))
    return out


def _sweep(client: bigquery.Client, dataset: str, snapshot: date, now: datetime, retry: Any) -> None:
    """Delete this snapshot's staging tables older than STAGING_SWEEP_AGE (an earlier delete failed)."""
    for leftover in staging_tables(client, dataset, retry):
        if leftover.snapshot == snapshot and leftover.created and now - leftover.created > STAGING_SWEEP_AGE:
            log.warning(
                "deleting staging table %s left by an earlier load (created %s)", leftover.table_id, leftover.created
            )
            _drop(client, f"{client.project}.{dataset}.{leftover.table_id}")


def replace_partitions(
    client: bigquery.Client,
    dataset: str,
    files: Mapping[str, bytes],
    snapshot: str,
    run_id: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, int]:
    """Make each Parquet file of ``files`` (table name -> bytes) the complete content of snapshot
    ``snapshot`` of its table, all tables in one transaction; the staged row count per table."""
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    day = date.fromisoformat(snapshot)  # inlined into the script: only a parsed date
    # Bounded retries: an unreachable warehouse fails the event in seconds, not after the client's
    # default 10 minutes, and Eventarc redelivers it (the partitions are replaced again, idempotently).
    retry = bigquery.DEFAULT_RETRY.with_timeout(BQ_RETRY_SECONDS)
    _sweep(client, dataset, day, now(), retry)
    suffix = f"{day:%Y%m%d}_{run_id.replace('-', '_')}_{secrets.token_hex(4)}"
    specs = [table(name) for name in files]
    staging = {s.name: f"{client.project}.{dataset}.{STAGING_PREFIX}{s.name}_{suffix}" for s in specs}
    expires = now() + STAGING_EXPIRES
    with ThreadPoolExecutor(max_workers=len(specs), thread_name_prefix="load") as pool:
        try:
            staged = [pool.submit(_stage, client, s, files[s.name], staging[s.name], expires, retry) for s in specs]
            wait(staged)  # every load finished before any staging table is deleted
            counts = {s.name: f.result() for s, f in zip(specs, staged, strict=True)}
            script = transaction_script(
                [(s, f"{client.project}.{dataset}.{s.name}", staging[s.name]) for s in specs], day
            )
            _commit(client, script, retry)
        except NotFound:
            for s in specs:  # a missing table is permanent; anything else was transient
                _require_table(client, f"{client.project}.{dataset}.{s.name}", retry)
            raise
        finally:
            wait([pool.submit(_drop, client, name) for name in staging.values()])
    log.info("replaced snapshot %s of %d tables in one transaction: %s", snapshot, len(counts), counts)
    return counts


def _stage(
    client: bigquery.Client, spec: TableSpec, parquet: bytes, staging: str, expires: datetime, retry: Any
) -> int:
    from google.cloud import bigquery

    holder = bigquery.Table(staging, schema=spec.bigquery_schema())
    holder.expires = expires
    client.create_table(holder, retry=retry)
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        # Into the table just created, never a new one without expiration.
        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        write_disposition=bigquery.WriteDisposition.WRITE_EMPTY,
        schema=spec.bigquery_schema(),
    )
    config.parquet_options = bigquery.ParquetOptions()  # type: ignore[no-untyped-call]
    config.parquet_options.enable_list_inference = True
    job = client.load_table_from_file(
        io.BytesIO(parquet), staging, job_config=config, num_retries=2, timeout=BQ_RETRY_SECONDS
    )
    job.result(retry=retry, timeout=BQ_JOB_SECONDS)
    return int(job.output_rows or 0)


def transaction_script(tables: Sequence[tuple[TableSpec, str, str]], snapshot: date) -> str:
    """Pure: the script replacing ``snapshot`` of each (spec, target, staging) in one transaction:
    one check of every staging table, then one MERGE per table (each statement is a child job on
    BigQuery, run one after another: fewer statements, shorter transaction)."""
    day = f"DATE '{snapshot.isoformat()}'"
    counts, checks, merges = [], [], []
    for i, (spec, target, staging) in enumerate(tables):
        counts.append(f"(SELECT COUNT(*) FROM `{staging}` WHERE `{spec.partition_field}` != {day}) AS n{i}")
        message = (
            f"'{CHECK_MARK}table {spec.name}: ', CAST(n{i} AS STRING), ' rows are not of snapshot_date {snapshot}'"
        )
        checks.append(f"IF(n{i} = 0, 0, ERROR(CONCAT({message})))")
        cols = ", ".join(f"`{c}`" for c in spec.column_names)
        merges.append(
            f"MERGE `{target}` T USING `{staging}` S ON FALSE "
            f"WHEN NOT MATCHED BY SOURCE AND T.`{spec.partition_field}` = {day} THEN DELETE "
            f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({cols});"
        )
    check = f"SELECT {', '.join(checks)} FROM (SELECT {', '.join(counts)});"
    return "\n".join(["BEGIN TRANSACTION;", check, *merges, "COMMIT TRANSACTION;"])


def _commit(client: bigquery.Client, script: str, retry: Any) -> None:
    from google.api_core.exceptions import GoogleAPICallError

    try:
        # job_retry=None: else the client re-inserts the job for 10 minutes whatever ``retry`` says
        # (measured with the warehouse down); Eventarc's redelivery is this load's retry.
        job = client.query(script, retry=retry, job_retry=None)
        job.result(retry=retry, timeout=BQ_JOB_SECONDS, job_retry=None)
    except GoogleAPICallError as exc:
        failed_check = CHECK_RE.search(str(exc))
        if failed_check:
            raise DataError(f"{failed_check[1]}; nothing loaded") from None
        raise


def _drop(client: bigquery.Client, staging: str) -> None:
    from google.cloud import bigquery

    try:
        client.delete_table(staging, not_found_ok=True, retry=bigquery.DEFAULT_RETRY.with_timeout(5.0))
    except Exception as exc:  # the load's own outcome matters more; the table expires, or the next load sweeps it
        log.warning("could not delete staging table %s: %s", staging, exc)


def _require_table(client: bigquery.Client, target: str, retry: Any) -> None:
    """A missing table is permanent (retrying for a day cannot create it): say how to create it."""
    from google.api_core.exceptions import NotFound

    try:
        client.get_table(target, retry=retry)
    except NotFound:
        raise DataError(
            f"table {target} does not exist: create the tables (`terraform apply` in infra/, or locally "
            "`spotify-pipeline stack up`), then `spotify-pipeline replay --from D --to D --stage load`"
        ) from None


CATCH_UP_LOADS = 3  # at most this many reloads of a manifest published while loading


def _load_snapshot(
    model: Manifest, store: BucketStore, client: bigquery.Client, dataset: str, now: Callable[[], datetime]
) -> dict[str, int]:
    if model.upstream is None:
        raise DataError(f"recommend manifest of {model.snapshot_date} names no upstream transform manifest")
    clean, _, clean_sha = store.read_manifest(model.upstream.name, model.upstream.generation)
    if clean_sha != model.upstream.sha256:
        raise StaleObject(f"{model.upstream.name} changed since recommend read it")

    # Read and verify every file before touching BigQuery, so a stale input loads nothing.
    files = {name: store.read_verified(clean.file(name)) for name in TRANSFORM_TABLES}
    files |= {name: store.read_verified(model.file(name)) for name in RECOMMEND_TABLES}
    return replace_partitions(client, dataset, files, model.snapshot_date.isoformat(), model.run_id, now)


def run_load(
    model: Manifest,
    upstream: UpstreamRef,
    store: BucketStore,
    client: bigquery.Client,
    dataset: str,
    now: Callable[[], datetime],
) -> tuple[Manifest, dict[str, int]]:
    started = now()
    receipt_name = layout.manifest_name("load", model.snapshot_date)
    try:
        before, _, _ = store.read_manifest(receipt_name)
        loaded_before = set(LoadSummary.of(before).runs or {})
    except (StaleObject, ManifestError):
        loaded_before = set()
    counts = _load_snapshot(model, store, client, dataset, now)
    for _ in range(CATCH_UP_LOADS):
        current = store.generation(upstream.name)
        if current == upstream.generation:
            break
        # A newer recommend manifest was published while this load ran; its own load may have
        # committed before this one: load it again, last.
        log.info("%s#%d superseded while loading; loading #%d", upstream.name, upstream.generation, current)
        model, generation, sha = store.read_manifest(upstream.name)
        upstream = UpstreamRef(upstream.name, generation, sha)
        counts = _load_snapshot(model, store, client, dataset, now)
    modelled = RecommendSummary.of(model)
    runs = modelled.runs or {model.run_id: []}
    receipt = Manifest(
        stage="load",
        snapshot_date=model.snapshot_date,
        run_id=model.run_id,
        started_at=started.isoformat(),
        finished_at=now().isoformat(),
        files=(),
        upstream=upstream,
        sources=dict(model.sources),
        summary=LoadSummary(
            row_counts=counts,
            dataset=dataset,
            entries_per_market=modelled.entries_per_market or {},
            runs=runs,
            # Runs whose markets this load brought into the tables for the first time (merged weeks).
            runs_loaded=sorted(set(runs) - loaded_before),
            model_skipped=modelled.model_skipped or UNSET,
        ).as_dict(),
    )
    store.write_manifest(receipt, receipt_name)
    return receipt, counts
