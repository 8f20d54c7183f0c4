"""Data-quality gates: the checks a snapshot's clean tables must pass before they go any further.

Everything about the gates is declared here, in one place:

* :data:`GATES`: the checks, by name (the names appear in errors, logs and ``pipeline_runs``);
* :class:`GateThresholds`: their limits, as data, each with its default, its environment variable
  and its documentation (``config.Settings.gates`` reads them; ``config.ENVIRONMENT_VARIABLES``
  lists them from here);
* the documented range of every audio feature: :data:`spotify_pipeline.features.FEATURE_RANGES`.

Where they run, split by what they protect (:data:`CHART_GATES`, :data:`FEATURE_GATES`):

* **chart gates** check the chart data a run brings (its markets' entries) in extract, before
  anything is written: a failure is a permanent error, the run is recorded ``failed`` with a message
  naming each failed check, its value and its threshold, and the stored week (its other markets,
  its tables, its raw objects) stays exactly as it was;
* **feature gates** check the audio features of the week's tracks at the start of recommend: a
  failure stops only the model. Chart entries, tracks, artists and genres still load; the model
  tables of the week are empty and the reason is recorded (``pipeline_runs.error`` of recommend and
  load, the manifests' ``model`` summary, the dashboard). A week with fewer modelled tracks than
  clusters is skipped the same way, forced or not.

Forcing: a run request with ``"force_gates": true`` (``spotify-pipeline run --force-gates``), or
``spotify-pipeline replay ... --force``, evaluates the gates, logs the failures as a warning and
goes on; the stage's ``pipeline_runs`` row says ``forced past failed gates: ...`` in ``error``.

"Previous week" is the latest snapshot *loaded* (it has a load receipt) before this one, at most
``previous_max_age_days`` older, from the same chart source: what the dashboard shows now.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from spotify_pipeline import layout
from spotify_pipeline.config import ChartSource
from spotify_pipeline.errors import DataError
from spotify_pipeline.features import FEATURE_RANGES
from spotify_pipeline.manifest import LoadSummary, Manifest, ManifestError
from spotify_pipeline.store import StaleObject

if TYPE_CHECKING:
    import pandas as pd

    from spotify_pipeline.store import BucketStore

log = logging.getLogger(__name__)

# The checks, in the order they are evaluated and reported.
GATES: dict[str, str] = {
    "markets_present": "every expected market has chart entries (the run request's markets; for a chart file "
    "without a market filter, PIPELINE_GATE_EXPECTED_MARKETS)",
    "entries_per_market": "each market's chart entries are within the configured bounds",
    "unique_ranks": "no (snapshot_date, market, rank) appears twice in chart_entries",
    "features_in_range": "every audio feature present lies within its documented range (FEATURE_RANGES)",
    "feature_coverage": "the share of tracks without audio features is at most the threshold",
    "rows_vs_previous": "no market's chart entries collapsed against the previous loaded snapshot of the same "
    "chart source (or this week as loaded, on a re-run)",
    "model_vs_previous": "the modelled tracks (model_features) have not collapsed against the previous loaded "
    "snapshot of the same chart source",
}
CHART_GATES = ("markets_present", "entries_per_market", "unique_ranks", "rows_vs_previous")
FEATURE_GATES = ("features_in_range", "feature_coverage", "model_vs_previous")


def _threshold(env: str, doc: str) -> dict[str, str]:
    return {"env": env, "doc": doc}


@dataclass(frozen=True)
class GateThresholds:
    """The gates' limits. Defaults are chosen so that real weekly charts pass and broken weeks do not;
    each can be overridden by the environment variable in its metadata (``config.Settings.from_env``)."""

    expected_markets: tuple[str, ...] = field(
        default=(),
        metadata=_threshold(
            "PIPELINE_GATE_EXPECTED_MARKETS",
            "Data-quality gate markets_present: markets every snapshot must hold when its run request names none "
            "(a chart file without a market filter), comma separated; default none. A request's markets are "
            "always expected.",
        ),
    )
    min_entries_per_market: int = field(
        default=1,
        metadata=_threshold(
            "PIPELINE_GATE_MIN_ENTRIES_PER_MARKET",
            "Data-quality gate entries_per_market: fewest chart entries a market may have (default 1: no empty "
            "market; chart sizes differ by source, set 50 for Top 50 playlists).",
        ),
    )
    max_entries_per_market: int = field(
        default=200,
        metadata=_threshold(
            "PIPELINE_GATE_MAX_ENTRIES_PER_MARKET",
            "Data-quality gate entries_per_market: most chart entries a market may have (default 200, the size "
            "of a charts.spotify.com weekly chart).",
        ),
    )
    max_share_without_features: float = field(
        default=0.25,
        metadata=_threshold(
            "PIPELINE_GATE_MAX_SHARE_WITHOUT_FEATURES",
            "Data-quality gate feature_coverage: largest share (0..1) of a snapshot's tracks allowed without "
            "audio features (default 0.25; a failing feature provider shows up as a jump).",
        ),
    )
    min_ratio_vs_previous: float = field(
        default=0.5,
        metadata=_threshold(
            "PIPELINE_GATE_MIN_RATIO_VS_PREVIOUS",
            "Data-quality gates rows_vs_previous and model_vs_previous: a market's chart entries, and the "
            "week's model_features, must be at least this fraction of the previous loaded snapshot's "
            "(default 0.5; 0 turns the checks off).",
        ),
    )
    previous_max_age_days: int = field(
        default=14,
        metadata=_threshold(
            "PIPELINE_GATE_PREVIOUS_MAX_AGE_DAYS",
            "Data-quality gate rows_vs_previous: the previous loaded snapshot is looked for this many days back "
            "at most (default 14); older weeks are not compared.",
        ),
    )
    feature_ranges: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: dict(FEATURE_RANGES),
        metadata=_threshold(
            "PIPELINE_GATE_FEATURE_RANGES",
            "Data-quality gate features_in_range: JSON object overriding documented feature ranges, e.g. "
            '{"loudness": [-70, 5]}; features not named keep their defaults.',
        ),
    )


def threshold_variables() -> dict[str, str]:
    """Environment variable -> documentation, for ``config.ENVIRONMENT_VARIABLES``."""
    return {f.metadata["env"]: f.metadata["doc"] for f in fields(GateThresholds)}


def parse_thresholds(env: Mapping[str, str], names: tuple[str, ...]) -> GateThresholds:
    """The thresholds from ``env``; blank or missing variables keep their defaults.

    ``names`` are the variables the caller (``Settings.from_env``) reads, in declaration order;
    they must be exactly the declared ones, so a threshold cannot be added without being read.
    """
    from spotify_pipeline.config import ConfigError, parse_markets

    declared = tuple(f.metadata["env"] for f in fields(GateThresholds))
    if names != declared:
        raise ConfigError(f"gate thresholds read {names}, declared {declared}; keep config and gates in step")
    values: dict[str, Any] = {}
    for f in fields(GateThresholds):
        name = f.metadata["env"]
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if f.name == "expected_markets":
            values[f.name] = parse_markets(raw, name)
        elif f.name == "feature_ranges":
            values[f.name] = _parse_ranges(raw, name)
        elif f.name in ("min_entries_per_market", "max_entries_per_market", "previous_max_age_days"):
            try:
                number = int(raw)
            except ValueError:
                raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None
            if number < 0:
                raise ConfigError(f"environment variable {name}={number} must be >= 0")
            values[f.name] = number
        else:
            try:
                share = float(raw)
            except ValueError:
                raise ConfigError(f"environment variable {name}={raw!r} is not a number") from None
            if not 0.0 <= share <= 1.0:  # also rejects nan
                raise ConfigError(f"environment variable {name}={raw!r} must be between 0 and 1")
            values[f.name] = share
    thresholds = GateThresholds(**values)
    if thresholds.min_entries_per_market > thresholds.max_entries_per_market:
        raise ConfigError(
            f"PIPELINE_GATE_MIN_ENTRIES_PER_MARKET={thresholds.min_entries_per_market} is above "
            f"PIPELINE_GATE_MAX_ENTRIES_PER_MARKET={thresholds.max_entries_per_market}"
        )
    return thresholds


def _parse_ranges(raw: str, name: str) -> dict[str, tuple[float, float]]:
    import json

    from spotify_pipeline.config import ConfigError

    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"environment variable {name}: not valid JSON ({exc.msg})") from None
    if not isinstance(body, dict):
        raise ConfigError(f'environment variable {name}: expected a JSON object such as {{"loudness": [-70, 5]}}')
    ranges = dict(FEATURE_RANGES)
    for feature, bounds in body.items():
        if feature not in FEATURE_RANGES:
            raise ConfigError(f"environment variable {name}: unknown feature {feature!r}; known: {sorted(ranges)}")
        ok = isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, int | float) for b in bounds)
        if not ok or not bounds[0] <= bounds[1]:
            raise ConfigError(f"environment variable {name}: {feature} = {bounds!r}: expected [low, high], low <= high")
        ranges[feature] = (float(bounds[0]), float(bounds[1]))
    return ranges


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
    chart_entries: pd.DataFrame,
    tracks: pd.DataFrame,
    *,
    snapshot_date: date,
    chart_source: str,
    model_features: int,
    ranges: Mapping[str, tuple[float, float]] = FEATURE_RANGES,
) -> Measurements:
    """Pure: the measurements of one snapshot's ``chart_entries`` and ``tracks`` frames."""
    per_market = {str(m): int(n) for m, n in chart_entries.groupby("market").size().sort_index().items()}
    keys = chart_entries.groupby(["snapshot_date", "market", "rank"]).size().reset_index(name="times")
    dups = keys[keys["times"] > 1]
    duplicates = tuple(
        sorted((str(mk), int(r), int(t)) for mk, r, t in zip(dups["market"], dups["rank"], dups["times"], strict=True))
    )
    out: dict[str, OutOfRange] = {}
    ordered = tracks.sort_values("track_id", kind="stable")
    for feature, (low, high) in ranges.items():
        if feature not in ordered.columns:
            continue
        present = ordered[["track_id", feature]].dropna(subset=[feature])
        values = present[feature].astype("float64")
        bad = present[~(values.map(math.isfinite) & (values >= low) & (values <= high))]
        if len(bad):
            first = bad.iloc[0]
            out[feature] = OutOfRange(len(bad), str(first["track_id"]), float(first[feature]))
    has = tracks["has_features"].astype(bool) if "has_features" in tracks.columns else None
    without = int((~has).sum()) if has is not None else 0
    return Measurements(
        snapshot_date=snapshot_date,
        chart_source=chart_source,
        entries_per_market=per_market,
        duplicate_ranks=duplicates,
        tracks=len(tracks),
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


def _report(
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


# ------------------------------------------------------------------------ bucket side


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
    report = _report(snapshot, chart, forced=force, forced_by="run request force_gates", next_step=next_step)
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
    from spotify_pipeline.tabular import read_parquet

    request: Mapping[str, Any] = {}
    if clean.upstream is not None:
        try:
            raw, _, _ = store.read_manifest(clean.upstream.name, clean.upstream.generation)
            request = raw.request or {}
        except StaleObject:
            request = {}  # extract has moved on (a newer run of the week): its request is not this one's
    chart_source = clean.sources.get("chart_source", ChartSource.SPOTIFY_PLAYLIST)
    m = measure(
        read_parquet(store.read_verified(clean.file("chart_entries"))),
        read_parquet(store.read_verified(clean.file("tracks"))),
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
    return _report(
        clean.snapshot_date,
        tuple(r for r in results if r.gate in FEATURE_GATES),
        forced=forced,
        forced_by=by,
        next_step=next_step,
    )
