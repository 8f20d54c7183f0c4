"""End to end on the emulators: a tick through Pub/Sub to rows in the BigQuery emulator,
then every event of the run delivered a second time, which must change nothing."""

from __future__ import annotations

import base64
import json
import time
from datetime import date
from pathlib import Path

import requests
from helpers import bucket_objects, query, run_pipeline, runs, snapshot_tables, wait_until

from spotify_pipeline import layout

SNAPSHOT = date(2026, 11, 23)
OTHER_SNAPSHOT = date(2026, 11, 16)


def _redeliver_everything(state, message_id: str, message: dict) -> int:
    """POST every CloudEvent the Eventarc stand-in delivered, and the tick, once more."""
    journal = Path(state.root) / "deliveries.jsonl"
    deliveries = [json.loads(line) for line in journal.read_text().splitlines()]
    for d in deliveries:
        r = requests.post(state.url(d["function"]) + "/", headers=d["headers"], data=d["body"].encode(), timeout=300)
        assert r.status_code == 200, (d["function"], r.status_code, r.text[:300])
    # The tick again, in Pub/Sub's push format with the same message id (a duplicate delivery).
    push = {
        "message": {
            "data": base64.b64encode(json.dumps(message).encode()).decode(),
            "messageId": message_id,
            "attributes": {},
        },
        "subscription": "projects/local-project/subscriptions/extract-push",
    }
    r = requests.post(state.url("extract") + "/", json=push, timeout=300)
    assert r.status_code == 200, r.text[:300]
    return len(deliveries)


def test_tick_to_bigquery_then_redelivery_changes_nothing(stack) -> None:
    run_pipeline(stack, OTHER_SNAPSHOT, "e2e-other")
    other_before = snapshot_tables(stack, OTHER_SNAPSHOT)

    message = {"snapshot_date": SNAPSHOT.isoformat(), "run_id": "e2e-first"}
    message_id = run_pipeline(stack, SNAPSHOT, "e2e-first")
    first = snapshot_tables(stack, SNAPSHOT)

    # What an analyst checks: the seed's shape, without its defects.
    n = query(stack, "SELECT COUNT(*) AS n FROM model_features WHERE snapshot_date = @d", d=SNAPSHOT)[0]["n"]
    assert n == 142  # 143 distinct demo tracks, one without audio features
    pairs = query(
        stack,
        "SELECT COUNT(*) AS n, COUNTIF(track_id = neighbor_track_id) AS self_pairs, "
        "COUNT(DISTINCT CONCAT(track_id, '>', neighbor_track_id)) AS distinct_pairs "
        "FROM recommendations WHERE snapshot_date = @d",
        d=SNAPSHOT,
    )[0]
    assert pairs == {"n": n * (n - 1), "self_pairs": 0, "distinct_pairs": n * (n - 1)}
    per_market = query(
        stack,
        "SELECT market, COUNT(*) AS n, MIN(`rank`) AS lo, MAX(`rank`) AS hi, "
        "COUNT(DISTINCT `rank`) AS ranks FROM chart_entries WHERE snapshot_date = @d "
        "GROUP BY market ORDER BY market",
        d=SNAPSHOT,
    )
    assert per_market == [{"market": m, "n": 50, "lo": 1, "hi": 50, "ranks": 50} for m in ("BR", "GLOBAL", "KR")]
    assert len(first["tracks"]) == 143
    assert [r["stage"] for r in runs(stack, "e2e-first")] == ["extract", "transform", "recommend", "load"]

    # Every event of the whole history delivered again, plus the tick: the tables must not change.
    before_loads = len([r for r in runs(stack, "e2e-first") if r["stage"] == "load"])
    delivered = _redeliver_everything(stack, message_id, message)
    assert delivered >= 3 * 8  # at least every manifest of two runs, to each of three functions
    wait_until(lambda: len([r for r in runs(stack, "e2e-first") if r["stage"] == "load"]) > before_loads, 120)
    wait_until(lambda: not _busy(stack), 60)
    assert snapshot_tables(stack, SNAPSHOT) == first
    assert snapshot_tables(stack, OTHER_SNAPSHOT) == other_before
    assert all(r["status"] == "succeeded" for r in runs(stack, "e2e-first"))


def _busy(state) -> bool:
    """True while the Eventarc stand-in is still delivering (its journal grew in the last 2 s)."""
    journal = Path(state.root) / "deliveries.jsonl"
    size = journal.stat().st_size
    time.sleep(2)
    return journal.stat().st_size != size


def test_two_runs_of_a_snapshot_leave_identical_tables(stack) -> None:
    day = date(2026, 11, 9)
    run_pipeline(stack, day, "e2e-twice-1")
    first = snapshot_tables(stack, day)
    objects_first = _transform_objects(stack, day)
    run_pipeline(stack, day, "e2e-twice-2")
    assert snapshot_tables(stack, day) == first
    # The same files again, in the second run's folder; the first run's folder is gone.
    objects_second = _transform_objects(stack, day)
    assert {rel for _, rel in objects_second} == {rel for _, rel in objects_first}
    folders_second = {folder for folder, _ in objects_second} - {""}
    assert len(folders_second) == 1
    assert folders_second.isdisjoint(folder for folder, _ in objects_first)
    # Each week keeps its own prefix: both runs wrote under this snapshot's folders only.
    assert any(k.startswith("extract/snapshot_date=2026-11-09/") for k in bucket_objects(stack))


def test_a_failing_stage_fails_the_run_with_its_error(stack, capsys) -> None:
    from helpers import bq, settings

    from spotify_pipeline_tools.cli.follow import wait_for_run
    from spotify_pipeline_tools.cli.publish import publish_tick

    day = date(2026, 9, 7)
    before = bucket_objects(stack)
    # A playlist the stand-in does not have: Spotify's 404, as a new app gets for the Top 50 playlists.
    message = {"snapshot_date": day.isoformat(), "run_id": "e2e-fails", "playlists": {"BR": "0" * 22}}
    publish_tick(stack.env(), stack, message)
    assert wait_for_run(bq(stack), settings(stack), "e2e-fails", 60, env=stack.env()) == 1
    err = capsys.readouterr().err
    assert "failed at extract" in err and "404" in err and "0" * 22 in err
    recorded = runs(stack, "e2e-fails")
    assert [(r["stage"], r["status"]) for r in recorded] == [("extract", "failed")]
    assert "market BR" in recorded[0]["error"] and "PIPELINE_PLAYLISTS" in recorded[0]["error"]  # says what to do
    assert bucket_objects(stack) == before  # nothing partial written


def test_trigger_publishes_a_run_that_completes(stack, capsys) -> None:
    from spotify_pipeline_tools.cli.main import main

    day = date(2026, 8, 3)
    assert main(["--stack-dir", str(stack.root), "trigger", "--snapshot-date", day.isoformat(), "--markets", "KR"]) == 0
    assert "published" in capsys.readouterr().out
    wait_until(lambda: layout.manifest_name("load", day) in bucket_objects(stack), 120)
    markets = query(stack, "SELECT DISTINCT market FROM chart_entries WHERE snapshot_date = @d", d=day)
    assert markets == [{"market": "KR"}]
    # 50 KR tracks, of which the featureless one (if charting in KR) is left out of the model.
    n = query(stack, "SELECT COUNT(*) AS n FROM model_features WHERE snapshot_date = @d", d=day)[0]["n"]
    pairs = query(stack, "SELECT COUNT(*) AS n FROM recommendations WHERE snapshot_date = @d", d=day)[0]["n"]
    assert n in (49, 50) and pairs == n * (n - 1)


def _transform_objects(state, day: date) -> set[tuple[str, str]]:
    """(run folder, name within it) of every transform object of ``day``; the manifest's folder is ''."""
    out = set()
    for name in bucket_objects(state):
        if not name.startswith(layout.prefix("transform", day)):
            continue
        folder = layout.parse_run_folder(name)
        out.add((folder.path, name[len(folder.path) :]) if folder else ("", name))
    return out
