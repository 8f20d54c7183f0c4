"""The gates' pure part: a snapshot's tables reduced to measurements, every check evaluated on
them, and the report (message, log line, run-row fields). No bucket, no environment.

The measurements are taken with pyarrow on the tables as stored (recommend reads Parquet with
pyarrow too), so the feature gates do not import pandas at recommend's cold start. pyarrow is
imported inside :func:`measure`: config imports this package, and extract never loads pyarrow.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from spotify_pipeline.errors import DataError
from spotify_pipeline.features import FEATURE_RANGES
from spotify_pipeline.gates.thresholds import CHART_GATES, GateThresholds

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("spotify_pipeline.gates")

# ------------------------------------------------------------------------ what the gates look at


@dataclass(frozen=True)
class OutOfRange:
    count: int
    track_id: str
    value: float


@dataclass(frozen=True)
class Measurements:
    """A snapshot's clean tables, reduced to what the gates compare."""

    snapshot_date: date
    chart_source: str
    entries_per_market: Mapping[str, int]
    duplicate_ranks: tuple[tuple[str, int, int], ...]  # (market, rank, times)
    tracks: int
    tracks_without_features: int
    model_features: int
    out_of_range: Mapping[str, OutOfRange]


@dataclass(frozen=True)
class Previous:
    """The previous loaded snapshot: totals from its load receipt, per market from its clean tables
    (``None`` when those were re-written since the load, so they no longer show what was loaded)."""

    snapshot_date: date
    entries_per_market: Mapping[str, int] | None
    tracks: int | None
    model_features: int | None


def measure(
    chart_entries: pa.Table,
    tracks: pa.Table,
    *,
    snapshot_date: date,
    chart_source: str,
    model_features: int,
    ranges: Mapping[str, tuple[float, float]] = FEATURE_RANGES,
) -> Measurements:
    """Pure: the measurements of one snapshot's ``chart_entries`` and ``tracks`` tables.

    Missing values (null, or NaN) are not measured; infinities are out of range. The example of
    each out-of-range feature is its first track in track-id order.

    Counted in Python over the columns: a week holds at most a few thousand rows, and pyarrow's
    group-by (Acero) and its conversions of Python values to arrow import pandas, which the
    feature gates at recommend's start must not need."""
    import pyarrow.compute as pc

    keys = chart_entries.select(["snapshot_date", "market", "rank"]).drop_null().to_pydict()
    per_market = dict(sorted(Counter(str(m) for m in chart_entries["market"].drop_null().to_pylist()).items()))
    times = Counter(zip(keys["snapshot_date"], keys["market"], keys["rank"], strict=True))
    duplicates = tuple(sorted((str(mk), int(rank), n) for (_, mk, rank), n in times.items() if n > 1))
    out: dict[str, OutOfRange] = {}
    ordered = tracks.take(pc.sort_indices(tracks, [("track_id", "ascending")]))  # stable
    ids = ordered["track_id"].to_pylist()
    for feature, (low, high) in ranges.items():
        if feature not in ordered.column_names:
            continue
        bad = [
            (track, float(value))
            for track, value in zip(ids, ordered[feature].to_pylist(), strict=True)
            if value is not None and not math.isnan(value) and not (math.isfinite(value) and low <= value <= high)
        ]
        if bad:
            out[feature] = OutOfRange(len(bad), str(bad[0][0]), bad[0][1])
    without = 0
    if "has_features" in tracks.column_names:  # REQUIRED in the schema; a null would count as without
        without = tracks.num_rows - int(pc.sum(tracks["has_features"]).as_py() or 0)
    return Measurements(
        snapshot_date=snapshot_date,
        chart_source=chart_source,
        entries_per_market=per_market,
        duplicate_ranks=duplicates,
        tracks=tracks.num_rows,
        tracks_without_features=without,
        model_features=int(model_features),
        out_of_range=out,
    )


# ------------------------------------------------------------------------ the checks


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    value: str
    threshold: str

    def __str__(self) -> str:
        return f"[{self.gate}] value: {self.value}; threshold: {self.threshold}"


def _share(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _fmt(number: float) -> str:
    return f"{number:g}"


def evaluate(
    m: Measurements,
    th: GateThresholds,
    *,
    expected_markets: tuple[str, ...],
    expected_from: str,
    previous: Previous | None,
) -> tuple[GateResult, ...]:
    """Pure: every gate of :data:`GATES` on one snapshot's measurements."""
    results: list[GateResult] = []
    present = sorted(m.entries_per_market)

    # markets_present
    if expected_markets:
        missing = [mk for mk in expected_markets if m.entries_per_market.get(mk, 0) == 0]
        value = (
            f"missing {', '.join(missing)} (present: {', '.join(present) or 'none'})"
            if missing
            else f"all present ({', '.join(present)})"
        )
        threshold = f"every market of {expected_from}: {', '.join(expected_markets)}"
        results.append(GateResult("markets_present", not missing, value, threshold))
    else:
        results.append(
            GateResult(
                "markets_present",
                True,
                f"{len(present)} markets present ({', '.join(present)})",
                "no expected markets (the run request named none and PIPELINE_GATE_EXPECTED_MARKETS is unset)",
            )
        )

    # entries_per_market
    low, high = th.min_entries_per_market, th.max_entries_per_market
    bad = {mk: n for mk, n in m.entries_per_market.items() if not low <= n <= high}
    results.append(
        GateResult(
            "entries_per_market",
            not bad,
            ", ".join(f"{mk} has {n} entries" for mk, n in sorted(bad.items()))
            or ", ".join(f"{mk} {n}" for mk, n in sorted(m.entries_per_market.items())),
            f"{low}..{high} entries per market (PIPELINE_GATE_MIN_ENTRIES_PER_MARKET, "
            "PIPELINE_GATE_MAX_ENTRIES_PER_MARKET)",
        )
    )

    # unique_ranks
    results.append(
        GateResult(
            "unique_ranks",
            not m.duplicate_ranks,
            ", ".join(f"market {mk} rank {rank} appears {times} times" for mk, rank, times in m.duplicate_ranks)
            or "no duplicate",
            "each (snapshot_date, market, rank) at most once",
        )
    )

    # features_in_range
    ranges = th.feature_ranges
    if m.out_of_range:
        value = "; ".join(
            f"{feature}: {o.count} value(s) outside the range, e.g. track {o.track_id} = {_fmt(o.value)}"
            for feature, o in sorted(m.out_of_range.items())
        )
        threshold = ", ".join(
            f"{feature} {_fmt(ranges[feature][0])}..{_fmt(ranges[feature][1])}" for feature in sorted(m.out_of_range)
        )
    else:
        value, threshold = "every feature within its range", f"{len(ranges)} documented ranges (FEATURE_RANGES)"
    results.append(
        GateResult("features_in_range", not m.out_of_range, value, threshold + " (PIPELINE_GATE_FEATURE_RANGES)")
    )

    # feature_coverage
    limit = th.max_share_without_features
    share = m.tracks_without_features / m.tracks if m.tracks else 0.0
    results.append(
        GateResult(
            "feature_coverage",
            share <= limit,
            f"{m.tracks_without_features} of {m.tracks} tracks without features "
            f"({_share(m.tracks_without_features, m.tracks)})",
            f"at most {100.0 * limit:g}% (PIPELINE_GATE_MAX_SHARE_WITHOUT_FEATURES={_fmt(limit)})",
        )
    )

    # rows_vs_previous, model_vs_previous
    results += _vs_previous(m, previous, th.min_ratio_vs_previous, th.previous_max_age_days)
    return tuple(results)


def _vs_previous(m: Measurements, previous: Previous | None, ratio: float, max_age: int) -> list[GateResult]:
    rule = f"at least {_fmt(ratio)} x the previous snapshot (PIPELINE_GATE_MIN_RATIO_VS_PREVIOUS)"
    if ratio <= 0:
        off = "check off (PIPELINE_GATE_MIN_RATIO_VS_PREVIOUS=0)"
        return [GateResult(name, True, "not compared", off) for name in ("rows_vs_previous", "model_vs_previous")]
    if previous is None:
        none = f"no snapshot of chart source {m.chart_source} loaded in the {max_age} days before {m.snapshot_date}"
        return [GateResult(name, True, none, rule) for name in ("rows_vs_previous", "model_vs_previous")]
    collapsed: list[str] = []
    compared: list[str] = []
    for market in sorted(set(previous.entries_per_market or {}) & set(m.entries_per_market)):
        now, before = m.entries_per_market[market], (previous.entries_per_market or {})[market]
        compared.append(f"{market} {now}/{before}")
        if now < ratio * before:
            collapsed.append(f"{market} has {now} entries, {before} on {previous.snapshot_date}")
    since = f"vs {previous.snapshot_date}: "
    rows = GateResult(
        "rows_vs_previous", not collapsed, "; ".join(collapsed) or since + (", ".join(compared) or "-"), rule
    )
    before_model = previous.model_features
    if before_model is None or set(previous.entries_per_market or {}) != set(m.entries_per_market):
        # Totals compare only over the same markets (a week may hold fewer markets on purpose).
        model = GateResult("model_vs_previous", True, since + "not compared (different markets)", rule)
    else:
        shrunk = m.model_features < ratio * before_model
        value = f"model_features has {m.model_features} rows, {before_model} on {previous.snapshot_date}"
        model = GateResult("model_vs_previous", not shrunk, value, rule)
    return [rows, model]


# ------------------------------------------------------------------------ the report


class GateFailed(DataError):
    """One or more chart gates failed: the run stops before anything is written (permanent)."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        super().__init__(report.message())


@dataclass(frozen=True)
class GateReport:
    snapshot_date: date
    results: tuple[GateResult, ...]
    forced: bool = False
    forced_by: str = ""
    next_step: str = ""  # the command that goes past the gates, as the user can paste it

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def chart(self) -> bool:
        return all(r.gate in CHART_GATES for r in self.results)

    def message(self) -> str:
        failed = self.failed
        day = self.snapshot_date.isoformat()
        if not failed:
            return f"data-quality gates passed for snapshot {day} ({len(self.results)} checks)"
        listed = " | ".join(str(r) for r in failed)
        if self.forced:
            return f"forced past failed gates ({self.forced_by}) for snapshot {day}: {listed}"
        names = f"gate{'s' if len(failed) > 1 else ''} {', '.join(r.gate for r in failed)}"
        if self.chart:
            return (
                f"data-quality {names} failed for snapshot {day}; nothing was written, the week keeps what it had: "
                f"{listed}. Fix the source and run again, or load it anyway: {self.next_step}"
            )
        return f"model skipped for snapshot {day} (chart data still loaded): {names} failed: {listed}. " + (
            f"Model it anyway: {self.next_step}" if self.next_step.startswith("spotify-pipeline") else self.next_step
        )

    def as_fields(self) -> dict[str, Any]:
        return {
            "gates": {r.gate: {"passed": r.passed, "value": r.value, "threshold": r.threshold} for r in self.results},
            "gates_failed": [r.gate for r in self.failed],
            "gates_forced": self.forced,
        }


def logged_report(
    snapshot: date, results: tuple[GateResult, ...], *, forced: bool, forced_by: str, next_step: str
) -> GateReport:
    report = GateReport(
        snapshot,
        results,
        forced=forced and any(not r.passed for r in results),
        forced_by=forced_by,
        next_step=next_step,
    )
    fields_ = {"snapshot_date": snapshot.isoformat(), **report.as_fields()}
    if report.passed:
        log.info(report.message(), extra={"fields": fields_})
    else:
        log.warning(report.message(), extra={"fields": fields_})
    return report
