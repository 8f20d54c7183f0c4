"""Where the weekly data comes from: chart sources, feature providers, the request cache.

* chart sources (``chart_source``): ``spotify-playlist`` (one playlist per market through the
  Web API) and ``charts-csv`` (a chart file, :mod:`.charts_csv`);
* feature providers (``feature_providers``, in order): ``dataset`` (features inside the chart
  file), ``spotify`` (``/audio-features``), ``reccobeats`` (:mod:`.reccobeats`);
* :mod:`.http`: the one bounded retry policy; :mod:`.cache`: what earlier weeks already fetched.
"""

from enum import StrEnum

# Declared here, with no imports of the package, so config, the stages and the gates can all use them.


class ChartSource(StrEnum):
    """Where a run's chart entries come from: each market's chart playlist, or a chart file."""

    SPOTIFY_PLAYLIST = "spotify-playlist"
    CHARTS_CSV = "charts-csv"


class FeatureProvider(StrEnum):
    """Who supplies a track's audio features; a run asks them in its order."""

    DATASET = "dataset"  # the chart file's own feature columns
    SPOTIFY = "spotify"
    RECCOBEATS = "reccobeats"


CHART_SOURCES: tuple[ChartSource, ...] = tuple(ChartSource)
FEATURE_PROVIDERS: tuple[FeatureProvider, ...] = tuple(FeatureProvider)
