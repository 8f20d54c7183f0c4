"""The gates' names and limits, as data: no environment is read here.

Each threshold carries its environment variable and documentation in its field metadata;
:func:`spotify_pipeline.config.parse_gate_thresholds` reads them (config imports this module, never
the reverse) and ``config.ENVIRONMENT_VARIABLES`` lists them from :func:`threshold_variables`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from spotify_pipeline.features import FEATURE_RANGES

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
