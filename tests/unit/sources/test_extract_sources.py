"""extract against the stand-in in every mode: what succeeds, what fails and how, and the exact
number of requests each run sends (the minimum: playlist pages + metadata + feature batches)."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from unit.sources.harness import CHARTS, NOW, Harness, MemoryStore, Standin

from spotify_pipeline.config import DEFAULT_PLAYLISTS
from spotify_pipeline.errors import DataError, RateLimited, SourceUnavailable
from spotify_pipeline.events import RunRequest, parse_run_request
from spotify_pipeline.extract import run_extract
from spotify_pipeline.manifest import Manifest
from spotify_pipeline_tools.standin.catalogue import USER_PLAYLISTS, Catalogue

SNAPSHOT = date(2026, 11, 23)
USER = {m: pid for m, (pid, _) in USER_PLAYLISTS.items()}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def request(h: Harness, **payload: Any) -> RunRequest:
    return parse_run_request(
        {"snapshot_date": SNAPSHOT.isoformat(), **payload}, h.settings, default_run_id="unit-run", today=SNAPSHOT
    )


def extract(h: Harness, req: RunRequest) -> tuple[list[Manifest], MemoryStore]:
    store = MemoryStore()
    results = run_extract(req, store, h.sources(), lambda: NOW, bucket="test-bucket")
    return [m for m, _ in results], store


def tracks_and_artists(cat: Catalogue, markets: tuple[str, ...]) -> tuple[set[str], set[str]]:
    playlists = {p.market: p for p in cat.playlists.values()}
    tracks = {t for m in markets for t in playlists[m].track_ids}
    artists = {a["id"] for t in tracks for a in cat.tracks[t]["artists"]}
    return tracks, artists


# -- extended: the seed's path, at its minimum cost ----------------------------------------------------


def test_extended_app_full_path_minimum_requests(harness: Callable[..., Harness], catalogue: Catalogue) -> None:
    h = harness()
    (manifest,), _ = extract(h, request(h))
    tracks, artists = tracks_and_artists(catalogue, ("GLOBAL", "BR", "KR"))
    assert (len(tracks), len(artists)) == (143, 60)
    expected = {
        "token": 1,
        "playlist_items": 3,  # one page of 50 per market
        "artists": math.ceil(len(artists) / 50),
        "audio_features": math.ceil(len(tracks) / 100),
    }
    assert h.standin.stats() == expected
    assert manifest.summary["requests"] == {"spotify": sum(expected.values()) - 1, "reccobeats": 0}
    assert manifest.summary["features_by_provider"] == {"spotify": 142}
    assert manifest.summary["tracks_without_features"] == 1
    assert manifest.sources["feature_source"] == "spotify"
    assert manifest.sources["chart_source"] == "spotify-playlist"


# -- dev-2024: editorial playlists 404, audio features 403 ---------------------------------------------


def test_dev2024_editorial_playlist_fails_fast_naming_the_fix(harness: Callable[..., Harness]) -> None:
    h = harness()
    h.standin.mode("dev-2024")
    with pytest.raises(SourceUnavailable) as info:
        extract(h, request(h))
    message = str(info.value)
    assert DEFAULT_PLAYLISTS["GLOBAL"] in message and "404" in message
    assert "charts-csv" in message and "PIPELINE_PLAYLISTS" in message and "extended quota" in message
    assert h.standin.stats() == {"token": 1, "playlist_items": 1}  # detected once, nothing retried


def test_dev2024_user_playlists_spotify_then_reccobeats(harness: Callable[..., Harness], catalogue: Catalogue) -> None:
    h = harness()
    h.standin.mode("dev-2024")
    (manifest,), _ = extract(h, request(h, playlists=USER, feature_providers=["spotify", "reccobeats"]))
    tracks, artists = tracks_and_artists(catalogue, ("GLOBAL", "BR", "KR"))
    assert h.standin.stats() == {
        "token": 1,
        "playlist_items": 3,
        "artists": math.ceil(len(artists) / 50),
        "audio_features": 1,  # the 403, once: the provider is skipped for the rest of the run
        "reccobeats_audio_features": math.ceil(len(tracks) / 40),
    }
    assert "spotify" in manifest.summary["unavailable"]
    assert "reccobeats" in manifest.summary["unavailable"]["spotify"]
    assert manifest.summary["features_by_provider"] == {"reccobeats": len(catalogue.reccobeats)}
    assert manifest.sources["feature_source"] == "spotify,reccobeats"


def test_dev2024_user_playlists_reccobeats_only(harness: Callable[..., Harness], catalogue: Catalogue) -> None:
    h = harness()
    h.standin.mode("dev-2024")
    (manifest,), _ = extract(h, request(h, playlists=USER, feature_providers=["reccobeats"]))
    tracks, artists = tracks_and_artists(catalogue, ("GLOBAL", "BR", "KR"))
    expected = {
        "token": 1,
        "playlist_items": 3,
        "artists": math.ceil(len(artists) / 50),  # the 2024 rules keep the bulk endpoint
        "reccobeats_audio_features": math.ceil(len(tracks) / 40),
    }
    assert h.standin.stats() == expected
    assert manifest.summary["requests"] == {
        "spotify": expected["playlist_items"] + expected["artists"],  # the token is not an API request
        "reccobeats": expected["reccobeats_audio_features"],
    }
    assert manifest.sources["feature_source"] == "reccobeats"


def test_dev2024_spotify_features_only_still_writes_the_chart(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    h.standin.mode("dev-2024")
    (manifest,), _ = extract(h, request(h, playlists=USER))
    assert h.standin.stats()["audio_features"] == 1
    assert manifest.summary["features_by_provider"] == {}
    assert manifest.summary["tracks_without_features"] == manifest.summary["distinct_tracks"] > 0
    assert "reccobeats" in manifest.summary["unavailable"]["spotify"]  # says what to do


# -- dev-2026: bulk endpoints gone, fields removed, /items only ---------------------------------------


def test_dev2026_editorial_fails_fast(harness: Callable[..., Harness]) -> None:
    h = harness()
    h.standin.mode("dev-2026")
    with pytest.raises(SourceUnavailable, match="editorial Top 50"):
        extract(h, request(h, feature_providers=["reccobeats"]))
    assert h.standin.stats() == {"token": 1, "playlist_items": 1}


def test_dev2026_user_playlist_and_reccobeats_completes(harness: Callable[..., Harness], catalogue: Catalogue) -> None:
    h = harness()
    h.standin.mode("dev-2026")
    (manifest,), store = extract(h, request(h, playlists=USER, feature_providers=["reccobeats"]))
    tracks, artists = tracks_and_artists(catalogue, ("GLOBAL", "BR", "KR"))
    assert h.standin.stats() == {
        "token": 1,
        "playlist_items": 3,
        "artists": 1,  # the bulk endpoint's 403, detected once
        "artist": len(artists),  # then each artist exactly once
        "reccobeats_audio_features": math.ceil(len(tracks) / 40),
    }
    assert "GET /artists?ids=" in manifest.summary["unavailable"]
    # Fields removed in 2026 are absent, never a crash: the artists' objects carry no genres.
    batches = [json.loads(v) for k, v in store.objects.items() if "/artists/" in k]
    assert all("genres" not in a and "popularity" not in a for b in batches for a in b["artists"])
    # rows only under `item` (the 2026 name)
    pages = [json.loads(v) for k, v in store.objects.items() if "/playlists/" in k]
    assert all("track" not in row and "item" in row for p in pages for row in p["items"])


# -- charts-csv ---------------------------------------------------------------------------------------


def test_charts_file_metadata_and_features_minimum(harness: Callable[..., Harness], catalogue: Catalogue) -> None:
    h = harness()
    name = "inbox/regional-global-weekly-2026-11-19.csv"
    h.files[name] = (CHARTS / "regional-global-weekly-2026-11-19.csv").read_bytes()
    (manifest,), store = extract(h, request(h, charts_csv=name, snapshot_date=None))
    assert manifest.snapshot_date == date(2026, 11, 19)  # from the file name
    tracks, artists = tracks_and_artists(catalogue, ("GLOBAL",))
    assert h.standin.stats() == {
        "token": 1,
        "tracks": math.ceil(len(tracks) / 50),
        "artists": math.ceil(len(artists) / 50),
        "audio_features": math.ceil(len(tracks) / 100),
    }
    assert manifest.summary["entries_per_market"] == {"GLOBAL": 50}
    assert manifest.sources["chart_file"] == f"gs://test-bucket/{name}#7"
    assert [k.rsplit("/", 2)[-2:] for k in store.objects if "/charts/" in k] == [["charts", "GLOBAL.json"]]


def test_dev2026_charts_file_single_item_fallback(harness: Callable[..., Harness], catalogue: Catalogue) -> None:
    h = harness()
    h.standin.mode("dev-2026")
    name = "inbox/regional-global-weekly-2026-11-19.csv"
    h.files[name] = (CHARTS / "regional-global-weekly-2026-11-19.csv").read_bytes()
    extract(h, request(h, charts_csv=name, snapshot_date=None, feature_providers=["reccobeats"]))
    tracks, artists = tracks_and_artists(catalogue, ("GLOBAL",))
    assert h.standin.stats() == {
        "token": 1,
        "tracks": 1,
        "track": len(tracks),
        "artists": 1,
        "artist": len(artists),
        "reccobeats_audio_features": math.ceil(len(tracks) / 40),
    }


def test_kaggle_file_dataset_features_several_dates(harness: Callable[..., Harness], catalogue: Catalogue) -> None:
    h = harness()
    name = "uploads/kaggle-top-songs-iso.csv"
    h.files[name] = (CHARTS / "kaggle-top-songs-iso.csv").read_bytes()
    manifests, store = extract(h, request(h, charts_csv=name, snapshot_date=None, markets=["GLOBAL", "KR", "MX"]))
    assert [m.snapshot_date for m in manifests] == [date(2026, 11, 12), date(2026, 11, 19)]
    assert all(m.summary["entries_per_market"] == {"GLOBAL": 10, "KR": 10, "MX": 8} for m in manifests)
    assert not any("/charts/BR.json" in k for k in store.objects)  # filtered out
    distinct = {e for m in manifests for e in _chart_tracks(store, m)}
    artists = {a["id"] for t in distinct for a in catalogue.tracks[t]["artists"]}
    # Features come from the file (dataset), so only the file's one featureless track is asked for.
    assert h.standin.stats() == {
        "token": 1,
        "tracks": math.ceil(len(distinct) / 50),
        "artists": math.ceil(len(artists) / 50),
        "audio_features": 1,
    }
    assert manifests[0].sources["feature_source"] == "dataset,spotify"
    assert manifests[0].summary["features_by_provider"] == {"dataset": len(distinct) - 1}
    assert manifests[0].summary["tracks_without_features"] == 1  # Spotify has none for it either


def test_unknown_tracks_without_credentials_use_the_file_alone(harness: Callable[..., Harness]) -> None:
    h = harness(spotify_client_id="", spotify_client_secret="")
    name = "inbox/kaggle-top-songs-mdy.csv"
    h.files[name] = (CHARTS / "kaggle-top-songs-mdy.csv").read_bytes()
    manifests, _ = extract(h, request(h, charts_csv=name, snapshot_date=None))
    assert [m.snapshot_date for m in manifests] == [date(2026, 11, 5), date(2026, 11, 12)]
    assert h.standin.stats() == {}
    assert manifests[0].summary["metadata"] == "chart file only"
    assert "SPOTIFY_CLIENT_ID" in manifests[0].summary["unavailable"]["spotify-metadata"]


def _chart_tracks(store: MemoryStore, manifest: Manifest) -> list[str]:
    return [
        e["track_id"]
        for f in manifest.files
        if "/charts/" in f.name
        for e in json.loads(store.objects[f.name])["entries"]
    ]


# -- failures: 429, 5xx, timeouts, malformed answers ---------------------------------------------------


def test_retry_after_beyond_the_cap_fails_at_once(harness: Callable[..., Harness]) -> None:
    h = harness()
    h.standin.fault(route="playlist_items", status=429, retry_after=3600)
    started = time.monotonic()
    with pytest.raises(RateLimited) as info:
        extract(h, request(h))
    assert time.monotonic() - started < 5
    assert h.sleeps == []  # never slept
    assert (
        "3600 s" in str(info.value)
        and "60 s" in str(info.value)
        and "PIPELINE_RETRY_AFTER_CAP_SECONDS" in str(info.value)
    )


def test_short_retry_after_is_honoured(harness: Callable[..., Harness]) -> None:
    h = harness()
    h.standin.fault(route="artists", status=429, retry_after=2)
    extract(h, request(h))
    assert h.sleeps == [2.0]
    assert h.standin.stats()["artists"] == 3  # 2 batches + the one retried


def test_server_errors_back_off_then_succeed(harness: Callable[..., Harness]) -> None:
    h = harness()
    h.standin.fault(route="audio_features", status=503, count=2)
    h.standin.fault(route="playlist_items", kind="malformed")
    extract(h, request(h))
    assert h.sleeps == [1.0, 1.0, 2.0]  # malformed page: 1 s; 503 twice: 1 s, 2 s
    stats = h.standin.stats()
    assert stats["audio_features"] == 4 and stats["playlist_items"] == 4


def test_malformed_audio_features_answer_is_retried(harness: Callable[..., Harness]) -> None:
    """spotipy unwraps the audio-features body itself; a body that is not JSON is still a retried malformed answer."""
    h = harness()
    h.standin.fault(route="audio_features", kind="malformed")
    (manifest,), _ = extract(h, request(h, markets=["KR"]))
    assert h.sleeps == [1.0]
    assert h.standin.stats()["audio_features"] == 2
    assert manifest.summary["features_by_provider"] == {"spotify": 50}


def test_slow_answer_times_out_and_is_retried(harness: Callable[..., Harness]) -> None:
    h = harness(spotify_timeout_seconds=1)
    h.standin.fault(route="playlist_items", kind="slow", delay=1.5)
    extract(h, request(h, markets=["KR"]))
    assert h.sleeps == [1.0]


def test_persistent_server_errors_are_raised_for_redelivery(harness: Callable[..., Harness]) -> None:
    h = harness()
    h.standin.fault(route="playlist_items", status=500, count=4)
    with pytest.raises(Exception, match="HTTP 500") as info:
        extract(h, request(h, markets=["KR"]))
    assert not isinstance(info.value, SourceUnavailable | RateLimited)  # transient: the event is redelivered
    assert h.sleeps == [1.0, 2.0, 4.0]
    assert h.standin.stats() == {"token": 1, "playlist_items": 4}  # 4 attempts of the one call, no more


def test_retry_budget_bounds_the_total_wait(harness: Callable[..., Harness]) -> None:
    h = harness(retry_budget_seconds=3.0)
    h.standin.fault(route="playlist_items", status=429, retry_after=2, count=2)
    with pytest.raises(RateLimited, match="retry budget of 3 s"):
        extract(h, request(h, markets=["KR"]))
    assert h.sleeps == [2.0]


# -- the bucket cache: the second week asks only about what is new -------------------------------------


def test_second_week_asks_only_about_new_tracks_and_artists(
    harness: Callable[..., Harness], catalogue: Catalogue
) -> None:
    h = harness()
    extract(h, request(h, markets=["BR", "KR"]))
    seen_tracks, seen_artists = tracks_and_artists(catalogue, ("BR", "KR"))
    h.standin.reset()
    (week2,), store = extract(h, request(h, snapshot_date="2026-11-30"))
    all_tracks, all_artists = tracks_and_artists(catalogue, ("GLOBAL", "BR", "KR"))
    new_tracks, new_artists = all_tracks - seen_tracks, all_artists - seen_artists
    assert 0.25 < len(seen_tracks & all_tracks) / len(all_tracks) < 0.8  # most of week 2 was already seen
    assert h.standin.stats() == {
        "token": 1,
        "playlist_items": 3,
        "artists": math.ceil(len(new_artists) / 50),
        "audio_features": math.ceil(len(new_tracks) / 100),
    }
    assert week2.summary["cache_hits"] == {"artists": len(seen_artists), "features-spotify": len(seen_tracks)}
    assert week2.summary["features_by_provider"] == {"spotify": 142}
    # What the cache gave is stored with the snapshot, so transform never reads the mutable cache.
    cached = json.loads(store.objects["extract/snapshot_date=2026-11-30/cached/features-spotify.json"])
    assert set(cached["entries"]) == seen_tracks


def test_cache_off_fetches_everything_again(harness: Callable[..., Harness]) -> None:
    h = harness(cache_enabled=False)
    extract(h, request(h, markets=["KR"]))
    first = h.standin.stats()
    h.standin.reset()
    extract(h, request(h, markets=["KR"]))
    assert h.standin.stats() == first


def test_standin_modes_are_what_docs_say(standin: Standin) -> None:
    standin.mode("dev-2026")
    import requests

    body = requests.get(standin.url + "/_standin/mode", timeout=5).json()
    assert body["mode"] == "dev-2026" and "bulk_artists" in body["restricted"]


def test_a_chart_file_dated_in_the_future_is_refused_like_a_request(harness: Callable[..., Harness]) -> None:
    """A request's snapshot_date may lie at most a week ahead; a chart file's dates are held to the same."""
    h = harness()
    name = "uploads/kaggle-future.csv"
    text = (CHARTS / "kaggle-top-songs-iso.csv").read_text(encoding="utf-8")
    latest = max(re.findall(r"\d{4}-\d{2}-\d{2}", text))
    h.files[name] = text.replace(latest, "2027-01-01").encode()
    with pytest.raises(DataError, match=r"snapshot_date 2027-01-01 is in the future \(today is 2026-11-23 UTC\)"):
        extract(h, request(h, charts_csv=name, snapshot_date=None))
    assert not h.standin.stats()  # refused before any request
