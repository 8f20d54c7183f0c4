"""The recommend stage: a transform manifest's week in, the model's three tables and the
recommend manifest out. The recommendations file is streamed to the bucket as the model
produces it (memory: the input and one chunk of rows, whatever the output's size)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, datetime
from functools import partial

import msgspec
import pyarrow.parquet as pq

from spotify_pipeline import layout
from spotify_pipeline.features import MODEL_FEATURES, Z_COLUMNS
from spotify_pipeline.manifest import FileEntry, Manifest, RecommendSummary, TransformSummary, UpstreamRef
from spotify_pipeline.recommend.catalogue import Catalogue, catalogue
from spotify_pipeline.recommend.model import ModelParams, ModelResult, run_model, wire_schema
from spotify_pipeline.recommend.writers import (
    PARQUET_TYPE,
    StreamingStore,
    parquet_bytes,
    parquet_writer,
    write_row_group,
)
from spotify_pipeline.schema import table, table_names
from spotify_pipeline.store import StageStore


def _stream_recommendations(
    store: StreamingStore, name: str, cat: Catalogue, snapshot: date, params: ModelParams
) -> tuple[FileEntry, ModelResult]:
    """Run the model with the recommendations written to ``name`` as they are produced (each chunk
    a row group, uploaded as it fills the store's upload chunk). If the model fails, the upload is
    cancelled: no object is left."""
    with store.open_writer(name, PARQUET_TYPE) as out:
        writer = parquet_writer(out, wire_schema(cat.markets))
        try:
            result = run_model(cat, snapshot, params, partial(write_row_group, writer))
        finally:  # on failure too, while the upload is open (it is then cancelled): no footer written later
            writer.close()
    return out.entry(rows=result.recommendation_rows, table="recommendations"), result


def model_skip_reason(modelled_tracks: int, params: ModelParams) -> str | None:
    """Why the model cannot run on a week, whatever the gates say; None when it can."""
    if modelled_tracks < max(params.n_clusters, 2):
        return (
            f"{modelled_tracks} track(s) with all four audio features, fewer than the {params.n_clusters} "
            "clusters (PIPELINE_CLUSTERS) the model needs: add a feature provider (feature_providers) or "
            "a chart file with features"
        )
    return None


def run_recommend(
    clean: Manifest,
    upstream: UpstreamRef,
    store: StreamingStore,
    params: ModelParams,
    now: Callable[[], datetime],
    *,
    skip_reason: str | None = None,
) -> tuple[Manifest, int]:
    """The model on a transform manifest's week. With ``skip_reason`` (failed feature gates), or when
    too few tracks have features, the model tables of the week are written empty and the manifest
    says why (``summary.model_skipped``): the week's chart data still loads."""
    started = now()
    prefix = layout.prefix("recommend", clean.snapshot_date)
    files: list[FileEntry] = []
    modelled = clean.row_counts.get("model_features")
    # No catalogue to build when no track has features (forced or not: nothing to model).
    cat = None if skip_reason or modelled == 0 else _catalogue(clean, store)
    if skip_reason is None and (too_few := model_skip_reason(len(cat) if cat is not None else 0, params)):
        skip_reason = f"model skipped for snapshot {clean.snapshot_date} (chart data still loaded): {too_few}"
    if cat is None or skip_reason is not None:
        for name in table_names("recommend"):
            empty = table(name).arrow_schema().empty_table()
            files.append(store.write(f"{prefix}{name}.parquet", parquet_bytes(empty), PARQUET_TYPE, rows=0, table=name))
        summary = RecommendSummary(modelled_tracks=0, model_skipped=skip_reason)
    else:
        summary = _model(cat, clean.snapshot_date, store, params, prefix, files)
    week = TransformSummary.of(clean)
    summary = msgspec.structs.replace(
        summary, runs=week.runs or {clean.run_id: week.markets}, entries_per_market=week.entries_per_market or {}
    )
    manifest = Manifest(
        stage="recommend",
        snapshot_date=clean.snapshot_date,
        run_id=clean.run_id,
        started_at=started.isoformat(),
        finished_at=now().isoformat(),
        files=tuple(files),
        upstream=upstream,
        sources=dict(clean.sources),
        summary=summary.as_dict(),
    )
    return manifest, store.publish(manifest)


def _catalogue(clean: Manifest, store: StageStore) -> Catalogue:
    features = pq.read_table(
        io.BytesIO(store.read_verified(clean.file("model_features"))),
        columns=["track_id", *MODEL_FEATURES, *Z_COLUMNS],
    )
    tracks = pq.read_table(io.BytesIO(store.read_verified(clean.file("tracks"))), columns=["track_id", "markets"])
    return catalogue(features, tracks)


def _model(
    cat: Catalogue, snapshot: date, store: StreamingStore, params: ModelParams, prefix: str, files: list[FileEntry]
) -> RecommendSummary:
    rec_entry, result = _stream_recommendations(store, f"{prefix}recommendations.parquet", cat, snapshot, params)
    files.append(rec_entry)
    for name, tbl in (("track_clusters", result.track_clusters), ("clusters", result.clusters)):
        files.append(
            store.write(f"{prefix}{name}.parquet", parquet_bytes(tbl), PARQUET_TYPE, rows=tbl.num_rows, table=name)
        )
    return RecommendSummary(
        modelled_tracks=result.tracks,
        n_clusters=result.clusters.num_rows,
        neighbours_per_track=result.neighbours_per_track,
        random_state=params.random_state,
    )
