"""Load: every dataset of a snapshot into BigQuery, replacing that snapshot's partition only.

Load semantics, per table (declared in ``schemas/tables.json`` as ``replace_partition``):
the Parquet file is loaded into a per-run staging table with the table's explicit schema,
then one MERGE deletes the snapshot's rows and inserts the new ones atomically. Loading the
same snapshot twice therefore leaves exactly one copy, and other snapshots are untouched.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from spotify_pipeline import layout
from spotify_pipeline.errors import DataError
from spotify_pipeline.manifest import Manifest, UpstreamRef
from spotify_pipeline.schema import TableSpec, table
from spotify_pipeline.store import BucketStore, StaleObject

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)

TRANSFORM_TABLES = ("chart_entries", "tracks", "artists", "track_artists", "artist_genres", "model_features")
RECOMMEND_TABLES = ("recommendations", "track_clusters", "clusters")


def replace_partition(
    client: bigquery.Client, dataset: str, spec: TableSpec, parquet: bytes, snapshot: str, run_id: str
) -> int:
    """Load ``parquet`` into ``spec``'s table as the complete content of snapshot ``snapshot``."""
    from google.cloud import bigquery

    target = f"{client.project}.{dataset}.{spec.name}"
    staging = f"{client.project}.{dataset}._staging_{spec.name}_{snapshot.replace('-', '')}_{run_id.replace('-', '_')}"
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        schema=spec.bigquery_schema(),
    )
    config.parquet_options = bigquery.ParquetOptions()  # type: ignore[no-untyped-call]
    config.parquet_options.enable_list_inference = True
    try:
        job = client.load_table_from_file(io.BytesIO(parquet), staging, job_config=config)
        job.result()
        staged = client.get_table(staging).num_rows or 0
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
        )
        wrong = next(iter(check.result()))["n"]
        if wrong:
            raise DataError(f"table {spec.name}: {wrong} rows are not of snapshot_date {snapshot}; nothing loaded")
        client.query(merge, job_config=bigquery.QueryJobConfig(query_parameters=params)).result()
        return int(staged)
    finally:
        client.delete_table(staging, not_found_ok=True)


def run_load(
    model: Manifest,
    upstream: UpstreamRef,
    store: BucketStore,
    client: bigquery.Client,
    dataset: str,
    now: Callable[[], datetime],
) -> tuple[Manifest, dict[str, int]]:
    started = now()
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
    receipt = Manifest(
        stage="load",
        snapshot_date=model.snapshot_date,
        run_id=model.run_id,
        started_at=started.isoformat(),
        finished_at=now().isoformat(),
        files=(),
        upstream=upstream,
        sources=dict(model.sources),
        summary={"row_counts": counts, "dataset": dataset},
    )
    store.write_manifest(receipt, layout.manifest_name("load", model.snapshot_date))
    return receipt, counts
