"""Chart sources and feature providers on the local stack (session ``stack`` fixture): the inbox
trigger, ``spotify-pipeline run --charts-csv``, the stand-in's 2026 modes with exact request
counts, and a 429 that must fail the run instead of hanging it."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import requests
from helpers import bucket_objects, gcs, query, run_pipeline, runs, settings, wait_until

from spotify_pipeline_tools.cli.follow import wait_for_run
from spotify_pipeline_tools.cli.main import main as cli_main
from spotify_pipeline_tools.cli.publish import publish_tick
from spotify_pipeline_tools.standin import build_demo_catalogue
from spotify_pipeline_tools.standin.catalogue import USER_PLAYLISTS

pytestmark = [pytest.mark.emulators]
CHARTS = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "charts"
BUCKET = "spotify-pipeline-local"
USER = {m: pid for m, (pid, _) in USER_PLAYLISTS.items()}


@pytest.fixture()
def standin(stack: Any) -> Iterator[str]:
    """The stack's stand-in, counters zeroed and the bucket cache emptied; back to ``extended`` after."""
    url = stack.url("spotify")
    bucket = gcs(stack).bucket(BUCKET)
    for blob in list(gcs(stack).list_blobs(BUCKET, prefix="cache/")):
        bucket.blob(blob.name).delete()
    requests.post(url + "/_standin/reset", timeout=5).raise_for_status()
    yield url
    requests.post(url + "/_standin/mode", json={"mode": "extended"}, timeout=5).raise_for_status()


def stats(url: str) -> dict[str, int]:
    return dict(requests.get(url + "/_standin/stats", timeout=5).json()["by_route"])


def bq_client(stack: Any) -> Any:
    from spotify_pipeline.clients import bigquery_client

    return bigquery_client("local-project", "US", stack.env())


def test_chart_file_dropped_in_inbox_starts_a_run(stack: Any, standin: str) -> None:
    name = "inbox/weekly/regional-global-weekly-2026-11-19.csv"
    inbox_before = {k: g for k, g in bucket_objects(stack).items() if k.startswith("inbox/")}
    blob = gcs(stack).bucket(BUCKET).blob(name)
    blob.upload_from_string((CHARTS / "regional-global-weekly-2026-11-19.csv").read_bytes(), content_type="text/csv")
    run_id = "gcs-" + hashlib.sha256(f"{name}#{blob.generation}".encode()).hexdigest()[:16]
    assert wait_for_run(bq_client(stack), settings(stack), run_id, 120, env=stack.env()) == 0
    day = date(2026, 11, 19)
    chart = query(stack, "SELECT market, `rank`, chart_source FROM chart_entries WHERE snapshot_date = @d", d=day)
    assert len(chart) == 50 and {(r["market"], r["chart_source"]) for r in chart} == {("GLOBAL", "charts-csv")}
    n = query(stack, "SELECT COUNT(*) AS n FROM model_features WHERE snapshot_date = @d", d=day)[0]["n"]
    assert n == 50  # every track of the GLOBAL demo chart has Spotify features
    assert [r["stage"] for r in runs(stack, run_id)] == ["extract", "transform", "recommend", "load"]
    objects = bucket_objects(stack)
    assert objects[name] == blob.generation  # never deleted, never rewritten
    inbox_after = {k: g for k, g in objects.items() if k.startswith("inbox/")}
    assert inbox_after == {**inbox_before, name: blob.generation}  # nothing else written to inbox/


def test_cli_run_with_a_kaggle_file_and_a_market_filter(stack: Any, standin: str) -> None:
    path = CHARTS / "kaggle-top-songs-mdy.csv"
    code = cli_main(["--stack-dir", str(stack.root), "run", "--charts-csv", str(path), "--markets", "GLOBAL,KR,MX"])
    assert code == 0
    for day in (date(2026, 11, 5), date(2026, 11, 12)):
        chart = query(
            stack, "SELECT market, `rank`, track_id FROM chart_entries WHERE snapshot_date = @d ORDER BY 1, 2", d=day
        )
        assert len(chart) == 12 and {r["market"] for r in chart} == {"GLOBAL", "KR", "MX"}
        tracks = {r["track_id"] for r in chart}
        feats = query(stack, "SELECT track_id, feature_source FROM model_features WHERE snapshot_date = @d", d=day)
        assert len(tracks) == 9 and len(feats) == 8 and {r["feature_source"] for r in feats} == {"dataset"}
        rec = query(
            stack,
            "SELECT COUNT(*) AS n, COUNT(DISTINCT track_id) AS t FROM recommendations WHERE snapshot_date = @d",
            d=day,
        )[0]
        assert rec == {"n": 8 * 7, "t": 8}  # exactly the file's distinct tracks with features


def test_dev2026_editorial_fails_fast_then_user_playlists_complete(stack: Any, standin: str) -> None:
    requests.post(standin + "/_standin/mode", json={"mode": "dev-2026"}, timeout=5).raise_for_status()
    run_id = "src-dev2026-editorial"
    publish_tick(stack.env(), stack, {"snapshot_date": "2026-09-07", "run_id": run_id})
    started = time.monotonic()
    rows = wait_until(lambda: runs(stack, run_id), 30)
    assert time.monotonic() - started < 30
    assert rows[0]["status"] == "failed" and "editorial Top 50" in rows[0]["error"]
    assert "charts-csv" in rows[0]["error"] and "PIPELINE_PLAYLISTS" in rows[0]["error"]
    assert stats(standin) == {"token": 1, "playlist_items": 1}

    requests.post(standin + "/_standin/reset", timeout=5).raise_for_status()
    run_pipeline(stack, date(2026, 9, 7), "src-dev2026-user", playlists=USER, feature_providers=["reccobeats"])
    cat = build_demo_catalogue()
    artists = {a["id"] for t in cat.tracks.values() for a in t["artists"]}
    assert stats(standin) == {
        "token": 1,
        "playlist_items": 3,
        "artists": 1,
        "artist": len(artists),
        "reccobeats_audio_features": math.ceil(len(cat.tracks) / 40),
    }
    n = query(stack, "SELECT COUNT(*) AS n FROM model_features WHERE snapshot_date = @d", d=date(2026, 9, 7))[0]["n"]
    assert n == len(cat.reccobeats)


def test_extended_demo_run_sends_the_minimum_and_the_next_week_only_new(stack: Any, standin: str) -> None:
    cat = build_demo_catalogue()
    run_pipeline(stack, date(2026, 9, 14), "src-min-1")
    artists = {a["id"] for t in cat.tracks.values() for a in t["artists"]}
    assert (len(cat.tracks), len(artists)) == (143, 60)  # the demo numbers the docs quote
    assert stats(standin) == {
        "token": 1,
        "playlist_items": 3,  # one page of 50 per market
        "artists": math.ceil(len(artists) / 50),
        "audio_features": math.ceil(len(cat.tracks) / 100),
    }
    requests.post(standin + "/_standin/reset", timeout=5).raise_for_status()
    run_pipeline(stack, date(2026, 9, 21), "src-min-2")
    assert stats(standin) == {"token": 1, "playlist_items": 3}  # every artist and feature came from the cache


def test_retry_after_an_hour_fails_the_run_within_the_cap(stack: Any, standin: str) -> None:
    spec = {"route": "playlist_items", "status": 429, "retry_after": 3600}
    requests.post(standin + "/_standin/faults", json=spec, timeout=5).raise_for_status()
    run_id = "src-429"
    started = time.monotonic()
    publish_tick(stack.env(), stack, {"snapshot_date": "2026-09-28", "run_id": run_id, "markets": ["KR"]})
    rows = wait_until(lambda: runs(stack, run_id), 30)
    assert time.monotonic() - started < 30
    assert rows[0]["status"] == "failed"
    assert "3600 s" in rows[0]["error"] and "PIPELINE_RETRY_AFTER_CAP_SECONDS" in rows[0]["error"]
