"""Settings, read once at the edge (entry points, CLI) and injected everywhere else.

Precedence, highest first: a field of the run's Pub/Sub message (markets, snapshot date,
playlist ids, chart source, chart file, feature providers), then an environment variable, then
the default below. Nothing under ``spotify_pipeline`` reads ``os.environ`` except the edge: the
entry points (into :meth:`Settings.from_env`) and, for the CLI, :func:`process_environment`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from spotify_pipeline.features import FEATURE_RANGES
from spotify_pipeline.gates.thresholds import GateThresholds, threshold_variables
from spotify_pipeline.sources import CHART_SOURCES, FEATURE_PROVIDERS, ChartSource, FeatureProvider

DEFAULT_MARKETS: tuple[str, ...] = ("GLOBAL", "BR", "KR")

# The editorial "Top 50" playlists the seed used. Spotify answers 404 for these to apps
# created after Nov 2024 without extended quota; any playlist id can replace them.
DEFAULT_PLAYLISTS: dict[str, str] = {
    "GLOBAL": "37i9dQZEVXbNG2KDcFcKOF",
    "BR": "37i9dQZEVXbMXbN3EUUhlg",
    "KR": "37i9dQZEVXbNxXF4SkHj9F",
}

MARKET_RE = re.compile(r"^(GLOBAL|[A-Z]{2})$")


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the variable and what to do."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"environment variable {name}={value} must be >= {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a number of seconds") from None
    if not value >= minimum:  # also rejects nan
        raise ConfigError(f"environment variable {name}={value} must be >= {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"environment variable {name}={raw!r} is not a boolean (true/false)")


def parse_chart_source(raw: str, origin: str) -> ChartSource:
    value = raw.strip()
    if value not in CHART_SOURCES:
        raise ConfigError(f"{origin}: chart source {value!r} is not one of {', '.join(CHART_SOURCES)}")
    return ChartSource(value)


def parse_feature_providers(raw: str | list[str] | tuple[str, ...], origin: str) -> tuple[FeatureProvider, ...]:
    """``reccobeats,spotify`` or a list; order matters (first provider with a track's features wins)."""
    items = [p.strip() for p in raw.split(",")] if isinstance(raw, str) else list(raw)
    providers: list[FeatureProvider] = []
    for item in items:
        if not isinstance(item, str) or item.strip().lower() not in FEATURE_PROVIDERS:
            raise ConfigError(f"{origin}: feature provider {item!r} is not one of {', '.join(FEATURE_PROVIDERS)}")
        if item.strip().lower() not in providers:
            providers.append(FeatureProvider(item.strip().lower()))
    if not providers:
        raise ConfigError(f"{origin}: at least one feature provider is required")
    return tuple(providers)


def parse_markets(raw: str | list[str] | tuple[str, ...], origin: str) -> tuple[str, ...]:
    """Normalise ``GLOBAL, br`` to ``("GLOBAL", "BR")``; ``origin`` names the field for errors."""
    items = [m.strip() for m in raw.split(",")] if isinstance(raw, str) else list(raw)
    markets: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{origin}: market {item!r} is not a string")
        code = item.strip().upper()
        if not MARKET_RE.match(code):
            raise ConfigError(
                f"{origin}: market {item!r} is neither GLOBAL nor an ISO 3166-1 alpha-2 code (e.g. BR, KR)"
            )
        if code not in markets:
            markets.append(code)
    if not markets:
        raise ConfigError(f"{origin}: at least one market is required")
    return tuple(markets)


def parse_playlists(raw: str, origin: str) -> dict[str, str]:
    """``GLOBAL=id,BR=id`` or a JSON object ``{"GLOBAL": "id"}``."""
    raw = raw.strip()
    if not raw:
        return {}
    pairs: dict[str, str]
    if raw.startswith("{"):
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{origin}: not valid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{origin}: expected a JSON object of market to playlist id")
        bad = next((k for k, v in loaded.items() if not isinstance(v, str)), None)
        if bad is not None:
            raise ConfigError(f"{origin}: market {bad!r} = {loaded[bad]!r}: expected a playlist id string")
        pairs = {str(k): v for k, v in loaded.items()}
    else:
        pairs = {}
        for part in raw.split(","):
            market, sep, pid = part.partition("=")
            if not sep or not pid.strip():
                raise ConfigError(f"{origin}: {part!r} is not MARKET=PLAYLIST_ID")
            pairs[market] = pid.strip()
    return {parse_markets([m], origin)[0]: pid for m, pid in pairs.items()}


@dataclass(frozen=True)
class Settings:
    """Everything a stage needs to know about its environment."""

    project: str = "local-project"
    bucket: str = "spotify-pipeline-local"
    dataset: str = "spotify_charts"
    bq_location: str = "US"
    markets: tuple[str, ...] = DEFAULT_MARKETS
    playlists: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PLAYLISTS))
    spotify_client_id: str = ""
    spotify_client_secret: str = field(default="", repr=False)
    # Secret Manager secret ids holding the two credentials (Terraform sets them); read at run time
    # by sources.credentials only when the values above are empty.
    spotify_client_id_secret_id: str = ""
    spotify_client_secret_secret_id: str = ""
    spotify_api_base: str = "https://api.spotify.com/v1/"
    spotify_token_url: str = "https://accounts.spotify.com/api/token"
    spotify_timeout_seconds: int = 10
    chart_source: ChartSource = ChartSource.SPOTIFY_PLAYLIST
    feature_providers: tuple[FeatureProvider, ...] = (FeatureProvider.SPOTIFY,)
    dataset_features: bool = True
    reccobeats_api_base: str = "https://api.reccobeats.com/v1/"
    retry_after_cap_seconds: float = 60.0
    retry_budget_seconds: float = 180.0
    cache_enabled: bool = True
    max_event_age_seconds: int = 24 * 3600  # Eventarc retries for up to 24 h; this ends them
    n_clusters: int = 5
    random_state: int = 42
    top_k: int = 100
    all_pairs_max_tracks: int = 2000
    gates: GateThresholds = field(default_factory=GateThresholds)  # data-quality gates (gates/thresholds.py)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        playlists = dict(DEFAULT_PLAYLISTS)
        playlists.update(parse_playlists(env.get("PIPELINE_PLAYLISTS", ""), "PIPELINE_PLAYLISTS"))
        api_base = env.get("SPOTIFY_API_BASE", "").strip() or cls.spotify_api_base
        recco_base = env.get("RECCOBEATS_API_BASE", "").strip() or cls.reccobeats_api_base
        source = env.get("PIPELINE_CHART_SOURCE", "").strip()
        providers = env.get("PIPELINE_FEATURE_PROVIDERS", "").strip()
        return cls(
            project=env.get("GOOGLE_CLOUD_PROJECT", "").strip() or cls.project,
            bucket=env.get("PIPELINE_BUCKET", "").strip() or cls.bucket,
            dataset=env.get("PIPELINE_DATASET", "").strip() or cls.dataset,
            bq_location=env.get("PIPELINE_BQ_LOCATION", "").strip() or cls.bq_location,
            markets=parse_markets(env["PIPELINE_MARKETS"], "PIPELINE_MARKETS")
            if env.get("PIPELINE_MARKETS", "").strip()
            else DEFAULT_MARKETS,
            playlists=playlists,
            spotify_client_id=env.get("SPOTIFY_CLIENT_ID", "").strip(),
            spotify_client_secret=env.get("SPOTIFY_CLIENT_SECRET", "").strip(),
            spotify_client_id_secret_id=env.get("SPOTIFY_CLIENT_ID_SECRET_ID", "").strip(),
            spotify_client_secret_secret_id=env.get("SPOTIFY_CLIENT_SECRET_SECRET_ID", "").strip(),
            spotify_api_base=api_base if api_base.endswith("/") else api_base + "/",
            spotify_token_url=env.get("SPOTIFY_TOKEN_URL", "").strip() or cls.spotify_token_url,
            spotify_timeout_seconds=_int(env, "SPOTIFY_TIMEOUT_SECONDS", cls.spotify_timeout_seconds, 1),
            chart_source=parse_chart_source(source, "PIPELINE_CHART_SOURCE") if source else cls.chart_source,
            feature_providers=parse_feature_providers(providers, "PIPELINE_FEATURE_PROVIDERS")
            if providers
            else cls.feature_providers,
            dataset_features=_bool(env, "PIPELINE_DATASET_FEATURES", cls.dataset_features),
            reccobeats_api_base=recco_base if recco_base.endswith("/") else recco_base + "/",
            retry_after_cap_seconds=_float(env, "PIPELINE_RETRY_AFTER_CAP_SECONDS", cls.retry_after_cap_seconds),
            retry_budget_seconds=_float(env, "PIPELINE_RETRY_BUDGET_SECONDS", cls.retry_budget_seconds),
            cache_enabled=_bool(env, "PIPELINE_CACHE", cls.cache_enabled),
            max_event_age_seconds=_int(env, "PIPELINE_MAX_EVENT_AGE_SECONDS", cls.max_event_age_seconds, 60),
            n_clusters=_int(env, "PIPELINE_CLUSTERS", cls.n_clusters, 1),
            random_state=_int(env, "PIPELINE_RANDOM_STATE", cls.random_state),
            top_k=_int(env, "PIPELINE_TOP_K", cls.top_k, 1),
            all_pairs_max_tracks=_int(env, "PIPELINE_ALL_PAIRS_MAX_TRACKS", cls.all_pairs_max_tracks, 2),
            gates=parse_gate_thresholds(
                env,
                (  # declared, with defaults and meaning, in spotify_pipeline.gates.GateThresholds
                    "PIPELINE_GATE_EXPECTED_MARKETS",
                    "PIPELINE_GATE_MIN_ENTRIES_PER_MARKET",
                    "PIPELINE_GATE_MAX_ENTRIES_PER_MARKET",
                    "PIPELINE_GATE_MAX_SHARE_WITHOUT_FEATURES",
                    "PIPELINE_GATE_MIN_RATIO_VS_PREVIOUS",
                    "PIPELINE_GATE_PREVIOUS_MAX_AGE_DAYS",
                    "PIPELINE_GATE_FEATURE_RANGES",
                ),
            ),
        )


def process_environment() -> dict[str, str]:
    """A copy of the process environment, for ``Settings.from_env`` and the clients' emulator
    hosts: the functions' one read of it (``runtime.runtime``, once per instance), and the
    command line's (its targets; its own variables are click options' ``envvar``)."""
    return dict(os.environ)


def parse_gate_thresholds(env: Mapping[str, str], names: tuple[str, ...]) -> GateThresholds:
    """The gates' thresholds from ``env``; blank or missing variables keep their defaults.

    ``names`` are the variables the caller (``Settings.from_env``) reads, in declaration order;
    they must be exactly the declared ones, so a threshold cannot be added without being read.
    """
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
            values[f.name] = _feature_ranges(raw, name)
        elif f.name in ("min_entries_per_market", "max_entries_per_market", "previous_max_age_days"):
            values[f.name] = _int(env, name, 0)
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


def _feature_ranges(raw: str, name: str) -> dict[str, tuple[float, float]]:
    """``{"loudness": [-70, 5]}``: documented feature ranges overridden; features not named keep theirs."""
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


# Documented in README's configuration table; infra/ and a test cross-check these names.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "GOOGLE_CLOUD_PROJECT": "Project of the bucket, dataset and topic.",
    "PIPELINE_BUCKET": "Data bucket (raw, clean and model objects).",
    "PIPELINE_DATASET": "BigQuery dataset of the tables and views.",
    "PIPELINE_BQ_LOCATION": "BigQuery location for load and query jobs.",
    "PIPELINE_MARKETS": "Default markets, comma separated (GLOBAL or ISO 3166-1 alpha-2).",
    "PIPELINE_TICKS_TOPIC": "Pub/Sub topic of run requests (the CLI publishes there; Terraform creates it).",
    "PIPELINE_PLAYLISTS": "Chart playlist per market, MARKET=ID,... or JSON; overrides the Top 50 ids.",
    "SPOTIFY_CLIENT_ID": "Spotify app client id (local stack, developer); wins over SPOTIFY_CLIENT_ID_SECRET_ID.",
    "SPOTIFY_CLIENT_SECRET": "Spotify app client secret (local stack, developer); wins over "
    "SPOTIFY_CLIENT_SECRET_SECRET_ID.",
    "SPOTIFY_CLIENT_ID_SECRET_ID": "Secret Manager secret (in GOOGLE_CLOUD_PROJECT) whose latest version is the "
    "client id, read when a run first calls Spotify and kept for the instance (Terraform sets it).",
    "SPOTIFY_CLIENT_SECRET_SECRET_ID": "Secret Manager secret whose latest version is the client secret (as above).",
    "SPOTIFY_API_BASE": "Web API base URL; the local stack points it at the stand-in.",
    "SPOTIFY_TOKEN_URL": "Client-credentials token endpoint.",
    "SPOTIFY_TIMEOUT_SECONDS": "Per-request timeout for Spotify and ReccoBeats calls.",
    "PIPELINE_CHART_SOURCE": "Default chart source: spotify-playlist (default) or charts-csv (a chart file per run).",
    "PIPELINE_FEATURE_PROVIDERS": "Audio-feature providers in order, comma separated, among dataset, spotify, "
    "reccobeats (default spotify).",
    "PIPELINE_DATASET_FEATURES": "true (default): features inside a chart file are used first, before the providers "
    "listed; false: only the listed providers.",
    "RECCOBEATS_API_BASE": "ReccoBeats API base URL; the local stack points it at the stand-in.",
    "PIPELINE_RETRY_AFTER_CAP_SECONDS": "Longest Retry-After a 429 may make a run wait (default 60); longer fails "
    "the run with a clear error.",
    "PIPELINE_RETRY_BUDGET_SECONDS": "Total seconds one run may spend waiting on 429s and backoff (default 180); keep "
    "it below the extract function's timeout.",
    "PIPELINE_CACHE": "true (default): reuse features, artists and track metadata fetched in earlier weeks "
    "(bucket objects under cache/); false: fetch everything every run.",
    "PIPELINE_MAX_EVENT_AGE_SECONDS": "Events older than this (default 86400: 24 h) are acknowledged and dropped "
    "with one log line, ending retries.",
    "PIPELINE_CLUSTERS": "KMeans clusters.",
    "PIPELINE_RANDOM_STATE": "KMeans seed.",
    "PIPELINE_TOP_K": "Neighbours per track when a snapshot has more tracks than the all-pairs limit.",
    "PIPELINE_ALL_PAIRS_MAX_TRACKS": "Up to this many tracks, every pair is written (the seed's output).",
}

# The data-quality gates' thresholds, documented where they are declared (gates.GateThresholds).
ENVIRONMENT_VARIABLES.update(threshold_variables())
