"""The retry policy, ReccoBeats href matching, the bucket cache's merge-on-conflict, and the new
settings and run-request fields (precedence: message > environment > default)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import requests

from spotify_pipeline.config import ConfigError, Settings
from spotify_pipeline.errors import DataError, RateLimited
from spotify_pipeline.events import InvalidEvent, ObjectRef, parse_run_request
from spotify_pipeline.sources.cache import Cache, MemoryCacheBackend
from spotify_pipeline.sources.http import HttpError, MalformedResponse, RetryPolicy, parse_retry_after
from spotify_pipeline.sources.reccobeats import match_by_href, spotify_id_of

TID = "3n3Ppam7vgaVa1iaRUc9Lp"


def flaky(*failures: Exception) -> Any:
    queue = list(failures)

    def call() -> str:
        if queue:
            raise queue.pop(0)
        return "ok"

    return call


def policy(**kw: Any) -> tuple[RetryPolicy, list[float]]:
    sleeps: list[float] = []
    return RetryPolicy(sleep=sleeps.append, **kw), sleeps


def test_retry_after_header_forms() -> None:
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None


def test_429_without_retry_after_uses_backoff() -> None:
    p, sleeps = policy()
    assert p.call("x", flaky(HttpError(429, "u", None), HttpError(429, "u", None))) == "ok"
    assert sleeps == [1.0, 2.0]


def test_429_still_there_after_every_attempt_is_a_clear_failure() -> None:
    p, sleeps = policy(max_attempts=3)
    with pytest.raises(RateLimited, match=r"x: Spotify still answers 429 .* after 3 attempts"):
        p.call("x", flaky(*[HttpError(429, "u", None, 1.0)] * 3), service="Spotify")
    assert sleeps == [1.0, 1.0]


def test_cap_is_checked_before_any_sleep() -> None:
    p, sleeps = policy(retry_after_cap=10.0)
    with pytest.raises(RateLimited, match=r"asks to wait 11 s .* more than the 10 s"):
        p.call("x", flaky(HttpError(429, "u", None, 11.0)))
    assert sleeps == []


def test_client_errors_are_not_retried() -> None:
    p, sleeps = policy()
    with pytest.raises(HttpError):
        p.call("x", flaky(HttpError(403, "u", None)))
    assert sleeps == []


def test_timeouts_and_malformed_answers_back_off() -> None:
    p, sleeps = policy(max_attempts=4)
    assert p.call("x", flaky(requests.Timeout(), requests.ConnectionError(), MalformedResponse("m"))) == "ok"
    assert sleeps == [1.0, 2.0, 4.0]
    p, _ = policy(max_attempts=2)
    with pytest.raises(DataError, match="x: the API answered 2 times with a body that is not the expected JSON"):
        p.call("x", flaky(MalformedResponse("m"), MalformedResponse("m")))


def test_reccobeats_results_match_by_href_not_position() -> None:
    body = {
        "content": [
            {"id": "uuid-2", "href": "https://open.spotify.com/track/0VjIjW4GlUZAMYd2vXMi3b", "energy": 0.2},
            {"id": "uuid-1", "href": f"https://open.spotify.com/track/{TID}?si=abc", "energy": 0.1},
            {"id": "uuid-x", "href": "https://example.com/nothing"},
            "junk",
        ]
    }
    assert {k: v["id"] for k, v in match_by_href(body).items()} == {
        "0VjIjW4GlUZAMYd2vXMi3b": "uuid-2",
        TID: "uuid-1",
    }
    assert spotify_id_of(None) is None


def test_cache_merges_when_another_run_wrote_first() -> None:
    backend = MemoryCacheBackend()
    a, b = Cache(backend), Cache(backend)
    assert a.get("artists", ["x"]) == {} and b.get("artists", ["y"]) == {}
    a.put("artists", "x", {"id": "x"}, "t1")
    b.put("artists", "y", None, "t2")  # a negative answer is cached too
    a.flush()
    b.flush()  # conflicts with a's write, re-reads, merges
    assert set(backend.objects["artists"][0]) == {"x", "y"}
    fresh = Cache(backend)
    assert fresh.get("artists", ["x", "y", "z"]) == {
        "x": {"fetched_at": "t1", "value": {"id": "x"}},
        "y": {"fetched_at": "t2", "value": None},
    }
    assert fresh.hits == {"artists": 2}


def test_new_settings_from_env() -> None:
    s = Settings.from_env(
        {
            "PIPELINE_CHART_SOURCE": "charts-csv",
            "PIPELINE_FEATURE_PROVIDERS": "reccobeats, spotify",
            "PIPELINE_DATASET_FEATURES": "false",
            "RECCOBEATS_API_BASE": "http://127.0.0.1:1/reccobeats/v1",
            "PIPELINE_RETRY_AFTER_CAP_SECONDS": "5",
            "PIPELINE_RETRY_BUDGET_SECONDS": "30.5",
            "PIPELINE_CACHE": "off",
        }
    )
    assert (s.chart_source, s.feature_providers, s.dataset_features) == ("charts-csv", ("reccobeats", "spotify"), False)
    assert s.reccobeats_api_base == "http://127.0.0.1:1/reccobeats/v1/"
    assert (s.retry_after_cap_seconds, s.retry_budget_seconds, s.cache_enabled) == (5.0, 30.5, False)


@pytest.mark.parametrize(
    ("env", "text"),
    [
        ({"PIPELINE_CHART_SOURCE": "kaggle"}, "PIPELINE_CHART_SOURCE: chart source 'kaggle'"),
        ({"PIPELINE_FEATURE_PROVIDERS": "spotify,lastfm"}, "feature provider 'lastfm'"),
        ({"PIPELINE_DATASET_FEATURES": "maybe"}, "PIPELINE_DATASET_FEATURES='maybe'"),
        ({"PIPELINE_RETRY_AFTER_CAP_SECONDS": "soon"}, "PIPELINE_RETRY_AFTER_CAP_SECONDS='soon'"),
        ({"PIPELINE_RETRY_BUDGET_SECONDS": "-1"}, "PIPELINE_RETRY_BUDGET_SECONDS=-1.0 must be >= 0"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], text: str) -> None:
    with pytest.raises(ConfigError, match=text.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def parse(payload: dict[str, Any], settings: Settings | None = None) -> Any:
    return parse_run_request(payload, settings or Settings(), default_run_id="r", today=date(2026, 11, 23))


def test_chart_file_request_defaults_and_round_trip() -> None:
    req = parse({"charts_csv": "gs://spotify-pipeline-local/inbox/a.csv#42"})
    assert req.chart_source == "charts-csv" and req.charts_csv == ObjectRef("inbox/a.csv", 42)
    assert req.markets == () and not req.snapshot_date_given and req.playlists == {}
    assert req.provider_chain(True) == ("dataset", "spotify") and req.provider_chain(False) == ("spotify",)
    assert parse(req.to_message()) == req
    req = parse({"charts_csv": "inbox/a.csv", "markets": ["mx"], "feature_providers": ["spotify", "dataset"]})
    assert req.markets == ("MX",) and req.provider_chain(True) == ("spotify", "dataset")
    assert parse({"charts_csv": "inbox/a.csv", "dataset_features": False}).provider_chain(True) == ("spotify",)


def test_environment_default_chart_source_and_message_override() -> None:
    env = Settings.from_env({"PIPELINE_CHART_SOURCE": "charts-csv", "PIPELINE_FEATURE_PROVIDERS": "reccobeats"})
    assert parse({"chart_source": "spotify-playlist"}, env).feature_providers == ("reccobeats",)
    assert parse({"chart_source": "spotify-playlist", "feature_providers": ["spotify"]}, env).feature_providers == (
        "spotify",
    )


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"chart_source": "charts-csv"}, "charts_csv", "needs the chart file"),
        ({"charts_csv": "gs://other-bucket/a.csv"}, "charts_csv", "must be in the data bucket"),
        ({"charts_csv": 5}, "charts_csv", "expected an object name"),
        (
            {"charts_csv": "inbox/a.csv", "chart_source": "spotify-playlist"},
            "charts_csv",
            "needs chart_source charts-csv",
        ),
        ({"feature_providers": []}, "feature_providers", "expected a list"),
        ({"dataset_features": "yes"}, "dataset_features", "expected true or false"),
    ],
)
def test_invalid_source_fields_are_named(payload: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse(payload)
    assert info.value.field == field and text in str(info.value)
