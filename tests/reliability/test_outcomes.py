"""Every run ends with exactly one recorded outcome: superseded, loaded while the warehouse was down
(rows waiting in the bucket), abandoned (events aged out, or nothing left to carry the week on), and
the `run` command following a run through a warehouse crash and honouring --timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from faults_support import (
    content_hashes,
    crash,
    deliver,
    generation,
    log_lines,
    push_tick,
    quiet,
    runs_of,
    stack_up,
    wait_loaded,
    wait_until,
)
from helpers import gcs, outcomes_of, query
from reliability_log import record

from spotify_pipeline import entrypoints, layout
from spotify_pipeline.outcomes import PENDING_PREFIX, REQUEST
from spotify_pipeline_tools.cli.publish import publish_tick
from spotify_pipeline_tools.stack import local
from spotify_pipeline_tools.stack.local import BUCKET

pytestmark = [pytest.mark.emulators, pytest.mark.e2e]


def outcome_rows(state: Any, run_id: str) -> list[dict[str, Any]]:
    return query(
        state,
        "SELECT snapshot_date, outcome, stage, superseded_by, reason FROM run_outcomes WHERE run_id = @r",
        r=run_id,
    )


def pending(state: Any) -> list[str]:
    return [b.name for b in gcs(state).list_blobs(BUCKET, prefix=PENDING_PREFIX)]


def test_a_run_replaced_market_for_market_is_superseded_by_the_later_one(stack: Any, clean: dict[str, str]) -> None:
    day = date(2025, 8, 4)
    name = layout.manifest_name("extract", day)
    local.stop_process(stack, "eventarc")  # the chain waits: the earlier run's events are delivered by hand
    try:
        assert push_tick(stack, {"snapshot_date": day.isoformat(), "run_id": "rel-sup-a"}, "rel-sup-a") == 200
        first = generation(stack, name)
        assert push_tick(stack, {"snapshot_date": day.isoformat(), "run_id": "rel-sup-b"}, "rel-sup-b") == 200
        assert deliver(stack, "transform", name, first) == 200  # A's own event, now stale
        assert deliver(stack, "transform", name, first) == 200  # and again: still one outcome
    finally:
        local.start_process(stack, "eventarc")
    wait_loaded(stack, "rel-sup-b")
    quiet(stack)
    assert outcome_rows(stack, "rel-sup-a") == [
        {
            "snapshot_date": day,
            "outcome": "superseded",
            "stage": "extract",
            "superseded_by": "rel-sup-b",
            "reason": "run rel-sup-b replaced or removed every market this run brought to the week",
        }
    ]
    assert [(r["outcome"], r["stage"]) for r in outcome_rows(stack, "rel-sup-b")] == [("succeeded", "load")]
    assert content_hashes(stack, day) == clean
    # `run`'s follower ends on it at once: the run's markets are in the tables, brought by the later run.
    wait_loaded(stack, "rel-sup-a", timeout=10)
    record(
        "fault",
        "outcome-superseded",
        "run A of a week, then run B of the same week and markets before A's chain went on; A's transform "
        "event delivered (twice) after B published",
        "A: exactly one outcome, `superseded` by B (decided by B's extract, with the reason), in the bucket and in "
        "run_outcomes; B `succeeded`; `run` for A ends at once (exit 0); tables identical to the clean run",
    )


def test_rows_due_while_the_warehouse_is_down_wait_in_the_bucket(stack: Any, clean: dict[str, str]) -> None:
    day, run_id = date(2025, 8, 11), "rel-outbox"
    quiet(stack, seconds=3)
    before = len(log_lines(stack, "load"))
    local.stop_process(stack, "bigquery")
    try:
        publish_tick(stack.env(), stack, {"snapshot_date": day.isoformat(), "run_id": run_id})
        refused = {"snapshot_date": day.isoformat(), "run_id": "rel-outbox-refused", "markets": ["ZZ"]}
        assert push_tick(stack, refused, "rel-outbox-refused") == 200

        def load_failed() -> bool:
            return any(
                line.get("run_id") == run_id and "failed; the event will be redelivered" in line["message"]
                for line in log_lines(stack, "load")[before:]
            )

        wait_until(load_failed, 240, what="load to fail against the stopped warehouse")
        waiting = pending(stack)
        # Outcome marks and rows of extract, transform, recommend and load's failed attempts.
        assert any(".rel-outbox-refused." in n for n in waiting) and any(f"row.{run_id}." in n for n in waiting)
        # The refused run's outcome is decided already, in the bucket: `run` would end on it now.
        assert outcomes_of(stack, "rel-outbox-refused")[REQUEST][0] == "failed"
    finally:
        local.start_process(stack, "bigquery")
    wait_loaded(stack, run_id)
    wait_until(lambda: not pending(stack), 60, what="the waiting rows to be written")
    quiet(stack)
    rows = runs_of(stack, run_id)
    done = [(r["stage"], r["status"]) for r in rows if r["status"] != "retrying"]
    assert done == [
        ("extract", "succeeded"),
        ("transform", "succeeded"),
        ("recommend", "succeeded"),
        ("load", "succeeded"),
    ]
    retried = [r for r in rows if r["status"] == "retrying"]
    assert retried and all(r["stage"] == "load" for r in retried)
    keys = query(
        stack,
        "SELECT stage, status, started_at, COUNT(*) AS n FROM pipeline_runs WHERE run_id = @r "
        "GROUP BY stage, status, started_at",
        r=run_id,
    )
    assert all(k["n"] == 1 for k in keys), keys  # written once each, late or not
    assert [(r["outcome"], r["stage"]) for r in outcome_rows(stack, run_id)] == [("succeeded", "load")]
    assert [(r["outcome"], r["snapshot_date"]) for r in outcome_rows(stack, "rel-outbox-refused")] == [("failed", None)]
    assert [r["status"] for r in runs_of(stack, "rel-outbox-refused")] == ["failed"]
    assert content_hashes(stack, day) == clean
    record(
        "fault",
        "outcome-rows-wait-for-the-warehouse",
        "the BigQuery emulator stopped before a run and a refused run request; restarted once load had failed",
        "every row due meanwhile (stage rows, load's retrying rows, both outcomes) waited under runs/pending/ "
        "and was written by the load that succeeded once the warehouse was back; each exactly once; the "
        "refused run's outcome was readable from the bucket at once; tables identical to the clean run",
    )


def test_runs_whose_events_aged_out_are_abandoned(stack: Any, clean: dict[str, str]) -> None:
    swept, aged = date(2025, 8, 18), date(2025, 8, 25)
    # A tick too old to act on: its run is abandoned, before any week.
    message = {"snapshot_date": swept.isoformat(), "run_id": "rel-old-request"}
    assert push_tick(stack, message, "rel-old-request", age=timedelta(hours=25)) == 200
    assert [(r["outcome"], r["stage"], r["snapshot_date"]) for r in outcome_rows(stack, "rel-old-request")] == [
        ("abandoned", "extract", None)
    ]
    local.stop_process(stack, "eventarc")  # nothing carries these weeks on
    try:
        assert push_tick(stack, {"snapshot_date": swept.isoformat(), "run_id": "rel-swept"}, "rel-swept") == 200
        assert push_tick(stack, {"snapshot_date": aged.isoformat(), "run_id": "rel-aged"}, "rel-aged") == 200
        # The current manifest's event arrives too old: no execution is left to carry the week on.
        name = layout.manifest_name("extract", aged)
        assert deliver(stack, "transform", name, generation(stack, name), age=timedelta(hours=25)) == 200
        assert [(r["outcome"], r["stage"]) for r in outcome_rows(stack, "rel-aged")] == [("abandoned", "transform")]
        # A week nothing touched for longer than the bound (+ margin) is abandoned by the sweep that every
        # extract and load execution runs: here one run two days from now.
        later = datetime.now(UTC) + timedelta(days=2)
        rt = entrypoints.Runtime(env=stack.env(), now=lambda: later)
        abandoned = rt.outcomes.sweep(rt.settings.max_event_age_seconds)
        assert ("rel-swept", swept.isoformat()) in abandoned
        assert ("rel-aged", aged.isoformat()) not in abandoned  # decided already
    finally:
        local.start_process(stack, "eventarc")
    quiet(stack)
    # The backlog delivered late (as Eventarc would not, past the bound) changes no outcome.
    for run_id, stage in (("rel-swept", "sweep"), ("rel-aged", "transform")):
        rows = outcome_rows(stack, run_id)
        assert [(r["outcome"], r["stage"]) for r in rows] == [("abandoned", stage)], rows
        assert "PIPELINE_MAX_EVENT_AGE_SECONDS" in rows[0]["reason"]
    assert not gcs(stack).list_blobs(BUCKET, prefix=f"runs/open/{swept.isoformat()}/", max_results=1).num_results
    record(
        "fault",
        "outcome-abandoned",
        "a tick 25 h old; a current extract manifest whose transform event arrives 25 h old; a week nothing "
        "worked on, swept with the clock two days ahead (the Eventarc stand-in stopped meanwhile)",
        "each run `abandoned` exactly once, with the reason naming PIPELINE_MAX_EVENT_AGE_SECONDS (the tick's "
        "before any week, stage extract; the manifest's at transform; the swept week's at sweep); the late "
        "backlog delivered afterwards changed no outcome",
    )


def _cli(state: Any, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "GOOGLE_")) and "EMULATOR" not in k}
    return subprocess.Popen(
        [sys.executable, "-m", "spotify_pipeline_tools.cli.main", "--stack-dir", str(state.root), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_follows_through_a_warehouse_crash_and_honours_its_timeout(stack: Any, clean: dict[str, str]) -> None:
    quiet(stack, seconds=3)
    # The warehouse killed while `run` follows; healed by `stack up`: `run` ends with the outcome.
    follow = _cli(stack, "run", "--snapshot-date", "2025-07-07", "--run-id", "rel-follow", "--timeout", "240")
    assert follow.stdout is not None
    assert follow.stdout.readline().startswith("published run rel-follow")
    crash(stack, "bigquery")
    time.sleep(3)
    assert stack_up(stack) == ["bigquery"]
    out, err = follow.communicate(timeout=300)
    assert follow.returncode == 0, out + err
    assert "run rel-follow complete" in out and "Traceback" not in err
    # The warehouse killed for good: `run --timeout 10` gives up at its timeout and says why.
    began = time.monotonic()
    bounded = _cli(stack, "run", "--snapshot-date", "2025-07-14", "--run-id", "rel-bounded", "--timeout", "10")
    assert bounded.stdout is not None
    assert bounded.stdout.readline().startswith("published run rel-bounded")
    crash(stack, "bigquery")
    out, err = bounded.communicate(timeout=120)
    seconds = time.monotonic() - began
    assert bounded.returncode == 1 and seconds < 40, (seconds, out, err)
    assert "did not finish within 10 s" in err and "Traceback" not in err
    assert stack_up(stack) == ["bigquery"]
    wait_loaded(stack, "rel-bounded")  # and the run itself finished once the warehouse was back
    record(
        "fault",
        "run-follows-a-crash",
        "`spotify-pipeline run` following a run while the BigQuery emulator is SIGKILLed and brought back by "
        "`stack up`; then `run --timeout 10` with the warehouse killed until after it gave up",
        "the first `run` ended with `complete` (exit 0, no traceback); the second exited 1 within its "
        "timeout (under 40 s) naming it, and its run loaded once `stack up` brought the warehouse back",
    )
