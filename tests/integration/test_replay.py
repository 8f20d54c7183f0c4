"""Replay on the local stack: after a change to the number of clusters, replaying one stored snapshot
rewrites exactly that snapshot's model tables, with no request to the Spotify stand-in; replaying it
again with the original settings gives back the tables of the fresh run, byte for byte."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import ensure_loaded, ops, query, snapshot_tables

pytestmark = [pytest.mark.emulators]

WEEK_A = date(2025, 3, 3)  # replayed
WEEK_B = date(2025, 3, 10)  # must not change
MODEL_TABLES = ("recommendations", "track_clusters", "clusters")


def standin_requests(stack: Any) -> int:
    return int(requests.get(stack.url("spotify") + "/_standin/stats", timeout=5).json()["total"])


def deliveries(stack: Any) -> int:
    journal = Path(stack.root) / "deliveries.jsonl"
    return len(journal.read_text().splitlines()) if journal.exists() else 0


def settle(stack: Any, quiet: float = 2.0, timeout: float = 60.0) -> None:
    """Wait until the Eventarc stand-in has delivered nothing for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    seen = deliveries(stack)
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = deliveries(stack)
        if now != seen:
            seen, calm_since = now, time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return
    raise AssertionError("the Eventarc stand-in kept delivering")


def test_replay_after_a_cluster_change_rewrites_only_that_snapshots_model_tables(
    stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_loaded(stack, WEEK_A, "replay-base-a")
    ensure_loaded(stack, WEEK_B, "replay-base-b")
    settle(stack)
    fresh_a, fresh_b = snapshot_tables(stack, WEEK_A), snapshot_tables(stack, WEEK_B)
    assert len(fresh_a["clusters"]) == 5
    spotify_before = standin_requests(stack)

    monkeypatch.setenv("PIPELINE_CLUSTERS", "3")
    assert ops(stack, "replay", "--from", str(WEEK_A), "--to", str(WEEK_A), "--stage", "transform") == 0
    out = capsys.readouterr().out
    assert "model PIPELINE_CLUSTERS=3" in out and "[1/1] snapshot 2025-03-03" in out
    for stage in ("transform", "recommend", "load"):
        assert f"    {stage:<9} succeeded" in out, out

    replayed_a = snapshot_tables(stack, WEEK_A)
    assert len(replayed_a["clusters"]) == 3
    assert {json.loads(r)["cluster"] for r in replayed_a["track_clusters"]} == {0, 1, 2}
    for name in ("track_clusters", "clusters"):
        assert fresh_a[name] != replayed_a[name], f"{name} should have changed"
    # Neighbours are euclidean on the z-scores, independent of KMeans: rewritten, same rows.
    assert len(replayed_a["recommendations"]) == len(fresh_a["recommendations"])
    for name, rows in fresh_a.items():
        if name not in MODEL_TABLES:
            assert rows == replayed_a[name], f"{name} changed, but only the model tables may"
    assert snapshot_tables(stack, WEEK_B) == fresh_b  # another week: untouched
    assert standin_requests(stack) == spotify_before  # not a single request to Spotify

    # The functions saw the replay's manifests and left them alone: nothing overwrote the replay.
    settle(stack)
    assert snapshot_tables(stack, WEEK_A) == replayed_a
    recorded = query(
        stack,
        "SELECT run_id, stage, status, `trigger` FROM pipeline_runs WHERE snapshot_date = @d "
        "AND STARTS_WITH(run_id, 'replay-') ORDER BY finished_at",
        d=WEEK_A,
    )
    assert [(r["stage"], r["status"]) for r in recorded[-3:]] == [
        ("transform", "succeeded"),
        ("recommend", "succeeded"),
        ("load", "succeeded"),
    ]
    assert len({r["run_id"] for r in recorded[-3:]}) == 1
    assert recorded[-1]["trigger"].startswith("spotify-pipeline replay (gs://spotify-pipeline-local/extract/")

    # The model change undone, a replay from the clean tables leaves exactly the fresh run's tables.
    monkeypatch.delenv("PIPELINE_CLUSTERS")
    assert ops(stack, "replay", "--from", str(WEEK_A), "--stage", "recommend") == 0
    assert snapshot_tables(stack, WEEK_A) == fresh_a
    assert snapshot_tables(stack, WEEK_B) == fresh_b
    assert standin_requests(stack) == spotify_before


def test_replay_plans_only_stored_snapshots(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ensure_loaded(stack, WEEK_A, "replay-base-a")
    ensure_loaded(stack, WEEK_B, "replay-base-b")
    assert ops(stack, "replay", "--from", "2025-03-01", "--to", "2025-03-12", "--dry-run") == 0
    assert "2 snapshot(s) to replay from transform: 2025-03-03, 2025-03-10" in capsys.readouterr().out
    assert ops(stack, "replay", "--from", "1999-01-01", "--to", "1999-12-31", "--stage", "load") == 1
    assert "nothing to replay: no stored load input between 1999-01-01 and 1999-12-31" in capsys.readouterr().err
