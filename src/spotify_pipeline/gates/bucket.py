"""The gates' bucket side: the weeks stored, the previous loaded week, and the two checks as the
stages call them. Chart gates run in extract on the entries it brings, before anything is written;
feature gates run in recommend (where the features are consumed), on the transform manifest's tables.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from spotify_pipeline import layout
from spotify_pipeline.gates.checks import (
    GateFailed,
    GateReport,
    Measurements,
    Previous,
    evaluate,
    logged_report,
    measure,
)
from spotify_pipeline.gates.thresholds import CHART_GATES, FEATURE_GATES, GateThresholds
from spotify_pipeline.manifest import FileEntry, LoadSummary, Manifest, ManifestError
from spotify_pipeline.sources import ChartSource
from spotify_pipeline.store import StaleObject

if TYPE_CHECKING:
    import pyarrow as pa

    from spotify_pipeline.store import BucketStore


def _stage_root(stage: layout.Stage) -> str:
    """The common prefix of every snapshot of ``stage`` (whatever the layout puts after the date)."""
    probe = date(2000, 1, 1)
    head = layout.prefix(stage, probe)
    return head[: head.index(probe.isoformat())]


def stored_snapshots(store: BucketStore, stage: layout.Stage) -> list[date]:
    """Snapshot dates with a manifest of ``stage`` in the bucket, oldest first."""
    found = set()
    for name in store.names(_stage_root(stage)):
        ref = layout.parse_manifest_name(name)
        if ref is not None and ref.stage == stage:
            found.add(ref.snapshot_date)
    return sorted(found)


def previous_snapshot(store: BucketStore, snapshot: date, chart_source: str, max_age_days: int) -> Previous | None:
    """What a week is compared with: the week itself as loaded, when a run re-runs a loaded week
    (whatever its source: a re-run must not collapse what is there); else the latest snapshot loaded
    before it (at most ``max_age_days`` older) from the same chart source.

    Counts come from load receipts alone (per market entries and row counts), so extract, which
    has no pandas, can compare too."""
    earliest = snapshot - timedelta(days=max_age_days)
    for day in reversed([d for d in stored_snapshots(store, "load") if earliest <= d <= snapshot]):
        try:
            receipt, _, _ = store.read_manifest(layout.manifest_name("load", day))
        except (StaleObject, ManifestError):
            continue
        if day != snapshot and receipt.sources.get("chart_source", ChartSource.SPOTIFY_PLAYLIST) != chart_source:
            continue
        loaded = LoadSummary.of(receipt)
        counts = loaded.row_counts
        return Previous(
            snapshot_date=day,
            entries_per_market=None if loaded.entries_per_market is UNSET else dict(loaded.entries_per_market),
            tracks=counts.get("tracks"),
            model_features=counts.get("model_features"),
        )
    return None


def check_chart(
    store: BucketStore,
    thresholds: GateThresholds,
    *,
    snapshot: date,
    chart_source: str,
    entries_per_market: Mapping[str, int],
    duplicate_ranks: tuple[tuple[str, int, int], ...],
    requested_markets: tuple[str, ...],
    force: bool,
    next_step: str,
) -> GateReport:
    """The chart gates on the entries one run brings for one week (extract, before anything is
    written); raises :class:`GateFailed` unless all pass or the run is forced."""
    m = Measurements(
        snapshot_date=snapshot,
        chart_source=chart_source,
        entries_per_market=dict(entries_per_market),
        duplicate_ranks=duplicate_ranks,
        tracks=0,
        tracks_without_features=0,
        model_features=0,
        out_of_range={},
    )
    expected, expected_from = (
        (requested_markets, "the run request")
        if requested_markets
        else (thresholds.expected_markets, "PIPELINE_GATE_EXPECTED_MARKETS")
    )
    previous = previous_snapshot(store, snapshot, chart_source, thresholds.previous_max_age_days)
    results = evaluate(m, thresholds, expected_markets=expected, expected_from=expected_from, previous=previous)
    chart = tuple(r for r in results if r.gate in CHART_GATES)
    report = logged_report(snapshot, chart, forced=force, forced_by="run request force_gates", next_step=next_step)
    if not report.passed and not report.forced:
        raise GateFailed(report)
    return report


def check_features(
    clean: Manifest, store: BucketStore, thresholds: GateThresholds, *, force: bool | None = None, clusters: int = 5
) -> GateReport:
    """The feature gates on a transform manifest's week (start of recommend). Never raises for a
    failed gate: the caller skips the model unless the report passed or was forced (``force``, else
    the run request's ``force_gates`` in the extract manifest)."""
    if clean.stage != "transform":
        raise ManifestError(f"the gates check transform output, got a {clean.stage} manifest")
    request: Mapping[str, Any] = {}
    if clean.upstream is not None:
        try:
            raw, _, _ = store.read_manifest(clean.upstream.name, clean.upstream.generation)
            request = raw.request or {}
        except StaleObject:
            request = {}  # extract has moved on (a newer run of the week): its request is not this one's
    chart_source = clean.sources.get("chart_source", ChartSource.SPOTIFY_PLAYLIST)
    m = measure(
        _read(store, clean.file("chart_entries"), ("snapshot_date", "market", "rank")),
        _read(store, clean.file("tracks"), ("track_id", "has_features", *thresholds.feature_ranges)),
        snapshot_date=clean.snapshot_date,
        chart_source=chart_source,
        model_features=clean.row_counts.get("model_features", 0),
        ranges=thresholds.feature_ranges,
    )
    previous = previous_snapshot(store, clean.snapshot_date, chart_source, thresholds.previous_max_age_days)
    results = evaluate(m, thresholds, expected_markets=(), expected_from="", previous=previous)
    if force is None:
        forced, by = bool(request.get("force_gates")), "run request force_gates"
    else:
        forced, by = force, "--force"
    day = clean.snapshot_date.isoformat()
    next_step = f"spotify-pipeline replay --from {day} --to {day} --stage recommend --force"
    if m.model_features < clusters:  # forcing cannot model fewer tracks than clusters: say what can
        next_step = (
            f"no use forcing {m.model_features} track(s) with features into {clusters} clusters; give the week "
            "audio features (run it again with a feature provider, e.g. --feature-providers reccobeats, or a "
            "chart file with features)"
        )
    return logged_report(
        clean.snapshot_date,
        tuple(r for r in results if r.gate in FEATURE_GATES),
        forced=forced,
        forced_by=by,
        next_step=next_step,
    )


def _read(store: BucketStore, entry: FileEntry, columns: tuple[str, ...]) -> pa.Table:
    """The ``columns`` of a stored Parquet file that it has (the gates skip a feature it lacks).
    Through ``ParquetFile``: ``pq.read_table`` goes through pyarrow.dataset, whose import loads pandas."""
    import pyarrow.parquet as pq

    data = pq.ParquetFile(io.BytesIO(store.read_verified(entry)))
    present = set(data.schema_arrow.names)
    return data.read(columns=[c for c in columns if c in present])
