"""Settings.from_env: defaults, precedence, normalisation and the error messages."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import spotify_pipeline
from spotify_pipeline import config
from spotify_pipeline.config import DEFAULT_PLAYLISTS, ENVIRONMENT_VARIABLES, ConfigError, Settings

PACKAGE = Path(spotify_pipeline.__file__).resolve().parent
INT_VARIABLES = {  # variable -> (field, smallest accepted value)
    "SPOTIFY_TIMEOUT_SECONDS": ("spotify_timeout_seconds", 1),
    "PIPELINE_MAX_EVENT_AGE_SECONDS": ("max_event_age_seconds", 60),
    "PIPELINE_CLUSTERS": ("n_clusters", 1),
    "PIPELINE_RANDOM_STATE": ("random_state", 0),
    "PIPELINE_TOP_K": ("top_k", 1),
    "PIPELINE_ALL_PAIRS_MAX_TRACKS": ("all_pairs_max_tracks", 2),
}
PID_A, PID_B = "A" * 22, "0123456789abcdefABCDEF"


def test_empty_environment_gives_the_defaults() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.markets == ("GLOBAL", "BR", "KR")
    assert dict(s.playlists) == DEFAULT_PLAYLISTS
    assert s.spotify_api_base == "https://api.spotify.com/v1/"
    assert (s.spotify_client_id, s.spotify_client_secret) == ("", "")


def test_blank_values_mean_default() -> None:
    blank = dict.fromkeys(ENVIRONMENT_VARIABLES, "   ")
    assert Settings.from_env(blank) == Settings()


def test_environment_overrides_defaults() -> None:
    env = {
        "GOOGLE_CLOUD_PROJECT": " my-project ",
        "PIPELINE_BUCKET": "my-bucket",
        "PIPELINE_DATASET": "charts",
        "PIPELINE_BQ_LOCATION": "EU",
        "SPOTIFY_CLIENT_ID": "id",
        "SPOTIFY_CLIENT_SECRET": "secret",
        "SPOTIFY_API_BASE": "http://127.0.0.1:8080/v1",
        "SPOTIFY_TOKEN_URL": "http://127.0.0.1:8080/api/token",
        "SPOTIFY_TIMEOUT_SECONDS": "3",
        "PIPELINE_MAX_EVENT_AGE_SECONDS": "600",
        "PIPELINE_CLUSTERS": "8",
        "PIPELINE_RANDOM_STATE": "0",
        "PIPELINE_TOP_K": " 25 ",
        "PIPELINE_ALL_PAIRS_MAX_TRACKS": "2",
    }
    s = Settings.from_env(env)
    assert (s.project, s.bucket, s.dataset, s.bq_location) == ("my-project", "my-bucket", "charts", "EU")
    assert (s.spotify_client_id, s.spotify_client_secret) == ("id", "secret")
    assert s.spotify_api_base == "http://127.0.0.1:8080/v1/"  # a trailing slash is added
    assert s.spotify_token_url == "http://127.0.0.1:8080/api/token"
    assert (s.spotify_timeout_seconds, s.max_event_age_seconds, s.n_clusters) == (3, 600, 8)
    assert (s.random_state, s.top_k, s.all_pairs_max_tracks) == (0, 25, 2)


def test_secret_is_not_in_repr() -> None:
    assert "s3cr3t-value" not in repr(Settings.from_env({"SPOTIFY_CLIENT_SECRET": "s3cr3t-value"}))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("global, br", ("GLOBAL", "BR")),
        ("KR", ("KR",)),
        (" kr ,GLOBAL,kr ", ("KR", "GLOBAL")),  # order kept, duplicates dropped
    ],
)
def test_markets_are_normalised(raw: str, expected: tuple[str, ...]) -> None:
    assert Settings.from_env({"PIPELINE_MARKETS": raw}).markets == expected


@pytest.mark.parametrize("raw", ["GLOBAL,XX1", "usa", "GLOBAL,,BR", "g1"])
def test_invalid_market_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^PIPELINE_MARKETS: market "):
        Settings.from_env({"PIPELINE_MARKETS": raw})


@pytest.mark.parametrize(
    "raw",
    [
        f"GLOBAL={PID_A}, br={PID_B}",
        f'{{"GLOBAL": "{PID_A}", "br": "{PID_B}"}}',
        f' {{"global":"{PID_A}","BR":"{PID_B}"}} ',
    ],
    ids=["pairs", "json", "json-padded"],
)
def test_playlists_both_formats_override_defaults(raw: str) -> None:
    s = Settings.from_env({"PIPELINE_PLAYLISTS": raw})
    assert dict(s.playlists) == {"GLOBAL": PID_A, "BR": PID_B, "KR": DEFAULT_PLAYLISTS["KR"]}


def test_playlists_for_new_markets_are_added() -> None:
    s = Settings.from_env({"PIPELINE_PLAYLISTS": f"us={PID_A}", "PIPELINE_MARKETS": "US,GLOBAL"})
    assert dict(s.playlists)["US"] == PID_A
    assert s.markets == ("US", "GLOBAL")


@pytest.mark.parametrize(
    "raw",
    ["GLOBAL", "GLOBAL=", f"XX1={PID_A}", '{"GLOBAL": ', '["GLOBAL"]', '{"GLOBAL": 5}'],
)
def test_invalid_playlists_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^PIPELINE_PLAYLISTS: "):
        Settings.from_env({"PIPELINE_PLAYLISTS": raw})


@pytest.mark.parametrize("variable", sorted(INT_VARIABLES))
@pytest.mark.parametrize("raw", ["ten", "1.5", "0x10"])
def test_non_integer_names_the_variable_and_value(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: raw})
    assert variable in str(info.value) and repr(raw) in str(info.value)


@pytest.mark.parametrize("variable", sorted(INT_VARIABLES))
def test_integer_below_minimum_names_the_variable(variable: str) -> None:
    field, minimum = INT_VARIABLES[variable]
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: str(minimum - 1)})
    assert variable in str(info.value) and str(minimum - 1) in str(info.value)
    assert getattr(Settings.from_env({variable: str(minimum)}), field) == minimum


def _sources() -> str:
    return "\n".join(
        [
            inspect.getsource(Settings.from_env),
            (PACKAGE / "clients.py").read_text(encoding="utf-8"),
            (PACKAGE.parent / "spotify_pipeline_tools" / "cli" / "main.py").read_text(encoding="utf-8"),
        ]
    )


@pytest.mark.parametrize("variable", sorted(ENVIRONMENT_VARIABLES))
def test_every_documented_variable_is_read(variable: str) -> None:
    assert re.search(rf"[\"']{variable}[\"']", _sources()), f"{variable} is documented but never read"
    assert ENVIRONMENT_VARIABLES[variable].strip(), f"{variable} has no description"


def test_every_variable_from_env_reads_is_documented() -> None:
    read = set(re.findall(r"[\"']([A-Z][A-Z0-9_]+)[\"']", inspect.getsource(Settings.from_env)))
    assert read, "found no variable names in Settings.from_env"
    assert read <= set(ENVIRONMENT_VARIABLES), read - set(ENVIRONMENT_VARIABLES)


def test_int_variables_cover_every_integer_setting() -> None:
    int_fields = {f for f, t in Settings.__annotations__.items() if t == "int"}
    assert int_fields == {field for field, _ in INT_VARIABLES.values()}
    assert set(INT_VARIABLES) <= set(config.ENVIRONMENT_VARIABLES)


def test_a_playlist_id_that_is_not_a_string_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^PIPELINE_PLAYLISTS: market 'bogus' = 1: expected a playlist id string$"):
        Settings.from_env({"PIPELINE_PLAYLISTS": f'{{"GLOBAL": "{PID_A}", "bogus": 1}}'})
