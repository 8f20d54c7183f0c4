"""Load: every dataset of a snapshot into BigQuery, replacing that snapshot's partition only.

Load semantics, per table (declared in ``schemas/tables.json`` as ``replace_partition``):
the Parquet file is loaded into a staging table of its own (one per execution, so concurrent
deliveries never share one) with the table's explicit schema, then one MERGE deletes the
snapshot's rows and inserts the new ones atomically. Loading the same snapshot twice therefore
leaves exactly one copy, and other snapshots are untouched.

Each table is replaced atomically, not the nine together. So that two loads of one snapshot
running at once (a run and a newer re-run) can never leave a mix of both, a load that finds,
once its tables are replaced, that the recommend manifest it loaded has been superseded loads
the current one again: whichever load finishes last leaves the tables of the current manifest.
"""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from spotify_pipeline import layout
from spotify_pipeline.errors import DataError
from spotify_pipeline.manifest import Manifest, ManifestError, UpstreamRef
from spotify_pipeline.schema import TableSpec, table
from spotify_pipeline.store import BucketStore, StaleObject

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)

BQ_RETRY_SECONDS = 20.0  # retries of one BigQuery call
BQ_JOB_SECONDS = 300.0  # one load or query job
TRANSFORM_TABLES = ("chart_entries", "tracks", "artists", "track_artists", "artist_genres", "model_features")
RECOMMEND_TABLES = ("recommendations", "track_clusters", "clusters")


def replace_partition(
    client: bigquery.Client, dataset: str, spec: TableSpec, parquet: bytes, snapshot: str, run_id: str
) -> int:
    """Load ``parquet`` into ``spec``'s table as the complete content of snapshot ``snapshot``."""
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    target = f"{client.project}.{dataset}.{spec.name}"
    suffix = f"{snapshot.replace('-', '')}_{run_id.replace('-', '_')}_{secrets.token_hex(4)}"
    staging = f"{client.project}.{dataset}._staging_{spec.name}_{suffix}"
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        schema=spec.bigquery_schema(),
    )
    config.parquet_options = bigquery.ParquetOptions()  # type: ignore[no-untyped-call]
    config.parquet_options.enable_list_inference = True
    # Bounded retries: an unreachable warehouse fails the event in seconds, not after the client's
    # default 10 minutes, and Eventarc redelivers it (the partition is replaced again, idempotently).
    retry = bigquery.DEFAULT_RETRY.with_timeout(BQ_RETRY_SECONDS)
    try:
        return _replace(client, spec, parquet, snapshot, target, staging, config, retry)
    except NotFound:
        _require_table(client, target, retry)  # a missing table is permanent; anything else was transient
        raise
    finally:
        try:
            client.delete_table(staging, not_found_ok=True, retry=bigquery.DEFAULT_RETRY.with_timeout(5.0))
        except Exception as exc:  # the load's own outcome matters more; a leftover staging table is logged
            log.warning("could not delete staging table %s: %s", staging, exc)


def _replace(
    client: bigquery.Client,
    spec: TableSpec,
    parquet: bytes,
    snapshot: str,
    target: str,
    staging: str,
    config: Any,
    retry: Any,
) -> int:
    from google.cloud import bigquery

    job = client.load_table_from_file(
        io.BytesIO(parquet), staging, job_config=config, num_retries=2, timeout=BQ_RETRY_SECONDS
    )
    job.result(retry=retry, timeout=BQ_JOB_SECONDS)
    staged = client.get_table(staging, retry=retry).num_rows or 0
    cols = ", ".join(f"`{c}`" for c in spec.column_names)
    merge = (
        f"MERGE `{target}` T USING `{staging}` S ON FALSE "
        f"WHEN NOT MATCHED BY SOURCE AND T.{spec.partition_field} = @snapshot THEN DELETE "
        f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({cols})"
    )
    params = [bigquery.ScalarQueryParameter("snapshot", "DATE", snapshot)]
    check = client.query(
        f"SELECT COUNT(*) AS n FROM `{staging}` WHERE {spec.partition_field} != @snapshot",
        job_config=bigquery.QueryJobConfig(query_parameters=params),
        retry=retry,
    )
    wrong = next(iter(check.result(retry=retry, timeout=BQ_JOB_SECONDS)))["n"]
    if wrong:
        raise DataError(f"table {spec.name}: {wrong} rows are not of snapshot_date {snapshot}; nothing loaded")
    merged = client.query(merge, job_config=bigquery.QueryJobConfig(query_parameters=params), retry=retry)
    merged.result(retry=retry, timeout=BQ_JOB_SECONDS)
    return int(staged)


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


def _load_snapshot(model: Manifest, store: BucketStore, client: bigquery.Client, dataset: str) -> dict[str, int]:
    if model.upstream is None:
        raise DataError(f"recommend manifest of {model.snapshot_date} names no upstream transform manifest")
    clean, _, clean_sha = store.read_manifest(model.upstream.name, model.upstream.generation)
    if clean_sha != model.upstream.sha256:
        raise StaleObject(f"{model.upstream.name} changed since recommend read it")

    # Read and verify every file before touching BigQuery, so a stale input loads nothing.
    inputs = [(name, store.read_verified(clean.file(name))) for name in TRANSFORM_TABLES]
    inputs += [(name, store.read_verified(model.file(name))) for name in RECOMMEND_TABLES]
    counts: dict[str, int] = {}
    snapshot = model.snapshot_date.isoformat()
    for name, data in inputs:
        counts[name] = replace_partition(client, dataset, table(name), data, snapshot, model.run_id)
        log.info("loaded %s rows into %s for %s", counts[name], name, snapshot)
    return counts


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
        loaded_before = set(before.summary.get("runs") or {})
    except (StaleObject, ManifestError):
        loaded_before = set()
    counts = _load_snapshot(model, store, client, dataset)
    for _ in range(CATCH_UP_LOADS):
        current = store.generation(upstream.name)
        if current == upstream.generation:
            break
        # A newer recommend manifest was published while this load ran; its own load may have
        # finished before some of this one's tables were replaced: load it again, last.
        log.info("%s#%d superseded while loading; loading #%d", upstream.name, upstream.generation, current)
        model, generation, sha = store.read_manifest(upstream.name)
        upstream = UpstreamRef(upstream.name, generation, sha)
        counts = _load_snapshot(model, store, client, dataset)
    receipt = Manifest(
        stage="load",
        snapshot_date=model.snapshot_date,
        run_id=model.run_id,
        started_at=started.isoformat(),
        finished_at=now().isoformat(),
        files=(),
        upstream=upstream,
        sources=dict(model.sources),
        summary={
            "row_counts": counts,
            "dataset": dataset,
            "entries_per_market": model.summary.get("entries_per_market") or {},
            "runs": model.summary.get("runs") or {model.run_id: []},
            # Runs whose markets this load brought into the tables for the first time (merged weeks).
            "runs_loaded": sorted(set(model.summary.get("runs") or {model.run_id: []}) - loaded_before),
            **({"model_skipped": model.summary["model_skipped"]} if model.summary.get("model_skipped") else {}),
        },
    )
    store.write_manifest(receipt, receipt_name)
    return receipt, counts
