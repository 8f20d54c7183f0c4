"""Where the weekly data comes from: chart sources, feature providers, the request cache.

* chart sources (``chart_source``): ``spotify-playlist`` (one playlist per market through the
  Web API) and ``charts-csv`` (a chart file, :mod:`.charts_csv`);
* feature providers (``feature_providers``, in order): ``dataset`` (features inside the chart
  file), ``spotify`` (``/audio-features``), ``reccobeats`` (:mod:`.reccobeats`);
* :mod:`.http`: the one bounded retry policy; :mod:`.cache`: what earlier weeks already fetched.
"""

from spotify_pipeline.config import CHART_SOURCES, FEATURE_PROVIDERS

__all__ = ["CHART_SOURCES", "FEATURE_PROVIDERS"]
