"""Faults injected on the local stack, each run compared with a clean run by content hashes of
every table and every bucket prefix (tests/faults_support.py: rows and files with the snapshot
date masked, so runs of different weeks of the same demo data compare equal)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import pytest
import requests
from faults_support import (
    CLEAN,
    HoldingProxy,
    content_hashes,
    crash,
    deliver,
    deliveries,
    generation,
    log_lines,
    manifest,
    orphans,
    push_tick,
    quiet,
    run_folders,
    runs_of,
    stack_up,
    upload_of,
    wait_loaded,
    wait_until,
)
from helpers import bucket_objects
from reliability_log import record

from spotify_pipeline import layout
from spotify_pipeline_tools.cli.publish import publish_tick
from spotify_pipeline_tools.stack import local

pytestmark = [pytest.mark.emulators, pytest.mark.e2e]


def _complete(state: Any, day: date) -> bool:
    """Every stage's manifest of ``day`` was computed from the current upstream manifest."""
    for stage, upstream in layout.UPSTREAM.items():
        m = manifest(state, stage, day)
        if m is None or m.upstream is None:
            return False
        if m.upstream.generation != generation(state, layout.manifest_name(upstream, day)):
            return False
    return True


def test_every_event_delivered_twice(stack: Any, clean: dict[str, str]) -> None:
    day, run_id = date(2025, 3, 10), "rel-dup"
    start = len(deliveries(stack))
    stop, duplicated = threading.Event(), []

    def duplicate_every_delivery() -> None:
        seen = start
        while not stop.is_set():
            ds = deliveries(stack)
            for d in ds[seen:]:
                r = requests.post(stack.url(d["function"]) + "/", headers=d["headers"], data=d["body"], timeout=300)
                duplicated.append(r.status_code)
            seen = len(ds)
            time.sleep(0.05)

    thread = threading.Thread(target=duplicate_every_delivery, daemon=True)
    thread.start()
    message = {"snapshot_date": day.isoformat(), "run_id": run_id}
    message_id = publish_tick(stack.env(), stack, message)
    assert push_tick(stack, message, message_id) == 200  # the tick itself, delivered twice
    wait_loaded(stack, run_id)
    quiet(stack)
    time.sleep(1)
    stop.set()
    thread.join(30)
    assert content_hashes(stack, day) == clean
    assert orphans(stack, day) == []
    assert len(duplicated) >= 3 * 4  # at least each stage manifest, to each bucket-triggered function
    assert set(duplicated) <= {200, 500}  # 500: a transient conflict, redelivered by the stand-in
    record(
        "fault",
        "duplicate-every-event",
        "every event delivered twice: the tick pushed again with the same message id while Pub/Sub "
        "pushes it, and each CloudEvent the Eventarc stand-in delivered POSTed again at once",
        "tables and bucket prefixes identical to the clean run; no orphan objects; a duplicate of an "
        "event already done is skipped (`already computed from`), a concurrent one loses the "
        "manifest's generation precondition and is acknowledged",
    )


@pytest.mark.parametrize(
    ("stage", "day", "files"), [("transform", date(2025, 3, 31), 6), ("recommend", date(2025, 4, 7), 3)]
)
def test_function_killed_mid_stage(stack: Any, clean: dict[str, str], stage: str, day: date, files: int) -> None:
    run_id = f"rel-kill-{stage}"
    manifest_name = layout.manifest_name(stage, day)  # type: ignore[arg-type]
    proxy = HoldingProxy(stack.url("gcs"), upload_of(manifest_name), mode="drop")
    try:
        local.restart_process(stack, stage, extra_env={"STORAGE_EMULATOR_HOST": proxy.url})
        publish_tick(stack.env(), stack, {"snapshot_date": day.isoformat(), "run_id": run_id})
        assert proxy.held.wait(90), f"{stage} never wrote its manifest"
        # After its outputs, before its manifest: kill -9.
        written = [n for n in bucket_objects(stack) if n.startswith(layout.prefix(stage, day))]  # type: ignore[arg-type]
        assert len(written) == files and manifest_name not in written
        killed_folders = run_folders(stack, stage, day)  # type: ignore[arg-type]
        crash(stack, stage)
        proxy.release()
    finally:
        proxy.close()
    assert stack_up(stack) == [stage]  # the real `stack up`: only the dead function, on its port
    wait_loaded(stack, run_id)
    quiet(stack)
    assert content_hashes(stack, day) == clean
    assert orphans(stack, day) == []
    assert run_folders(stack, stage, day).isdisjoint(killed_folders)  # type: ignore[arg-type]
    # Downstream started only on the complete manifest, once.
    downstream = layout.STAGES[layout.STAGES.index(stage) + 1]  # type: ignore[arg-type]
    rows = [r for r in runs_of(stack, run_id) if r["stage"] == downstream]
    assert [r["status"] for r in rows] == ["succeeded"]
    final = generation(stack, manifest_name)
    acted = {
        int(d["data"]["generation"])
        for d in deliveries(stack)
        if d["function"] == downstream and d["data"]["name"] == manifest_name
    }
    assert acted == {final}
    upstream = layout.manifest_name(layout.UPSTREAM[stage], day)  # type: ignore[index]
    attempts = [d for d in deliveries(stack) if d["function"] == stage and d["data"]["name"] == upstream]
    assert attempts[0]["status"] == 0 and attempts[-1]["status"] == 200
    assert not [line for line in log_lines(stack, stage) if "Exception on" in line.get("message", "")]
    record(
        "fault",
        f"kill-{stage}",
        f"`{stage}` killed with SIGKILL after writing its {files} files and before its manifest (a proxy in front "
        "of the GCS emulator held the manifest upload), then `spotify-pipeline stack up`",
        f"`stack up` restarted only `{stage}`, on its port; the Eventarc stand-in redelivered the event until "
        f"the restarted `{stage}` completed it; the killed "
        f"execution's {files} files were deleted by the next publish; `{downstream}` ran once, on the complete "
        "manifest; tables identical to the clean run",
    )


def test_two_ticks_for_one_snapshot_at_once(stack: Any, clean: dict[str, str]) -> None:
    day = date(2025, 4, 14)
    manifest_name = layout.manifest_name("extract", day)
    proxy = HoldingProxy(stack.url("gcs"), upload_of(manifest_name), mode="reorder")
    try:
        local.restart_process(stack, "extract", extra_env={"STORAGE_EMULATOR_HOST": proxy.url})
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(push_tick, stack, {"snapshot_date": day.isoformat(), "run_id": "rel-tick-a"}, "rel-a")
            assert proxy.held.wait(60)  # A wrote its files and waits at its manifest; B runs through
            second = pool.submit(push_tick, stack, {"snapshot_date": day.isoformat(), "run_id": "rel-tick-b"}, "rel-b")
            statuses = (first.result(120), second.result(120))
    finally:
        proxy.close()
        local.restart_process(stack, "extract")
    assert statuses == (200, 200)  # both acknowledged
    # B published; A's precondition failed, so A merged again with B's week, in a fresh folder, and published.
    assert proxy.statuses == [200, 412, 200]
    wait_loaded(stack, "rel-tick-a")
    quiet(stack)
    extract = manifest(stack, "extract", day)
    assert extract is not None and extract.run_id == "rel-tick-a"
    # Both named every market: A's markets replaced B's, so the week is A's part alone.
    assert [(p.run_id, p.markets) for p in extract.parts] == [("rel-tick-a", ("BR", "GLOBAL", "KR"))]
    assert {
        f.run_id for f in map(layout.parse_run_folder, bucket_objects(stack)) if f and f.prefix.endswith(f"{day}/")
    } == {"rel-tick-a"}
    assert ("extract", "succeeded") in [(r["stage"], r["status"]) for r in runs_of(stack, "rel-tick-b")]
    assert content_hashes(stack, day) == clean
    assert orphans(stack, day) == []
    record(
        "fault",
        "two-ticks-at-once",
        "two ticks for one snapshot at once: run A's manifest upload held until run B (started after A "
        "had written its files) published",
        "A's manifest write failed its generation precondition (HTTP 412); A merged again with B's manifest "
        "in a fresh folder and published (its markets replace B's); B's folder removed once unreferenced; "
        "tables identical to the clean run",
    )


def test_events_older_than_the_bound_are_dropped_with_one_line(stack: Any, clean: dict[str, str]) -> None:
    from cloudevents.http import CloudEvent

    from spotify_pipeline import entrypoints

    name = layout.manifest_name("extract", CLEAN)
    gen = generation(stack, name)
    objects = bucket_objects(stack)
    before = len(log_lines(stack, "transform"))
    assert deliver(stack, "transform", name, gen, age=timedelta(hours=25)) == 200
    assert deliver(stack, "transform", name, gen, age=timedelta(hours=23)) == 200  # within the bound
    lines = [
        line
        for line in log_lines(stack, "transform")[before:]
        if line.get("object") == f"gs://spotify-pipeline-local/{name}#{gen}"
    ]
    dropped = [line for line in lines if "dropping" in line["message"]]
    assert len(dropped) == 1 and dropped[0]["severity"] == "ERROR"
    assert "PIPELINE_MAX_EVENT_AGE_SECONDS=86400" in dropped[0]["message"]
    assert dropped[0]["stage"] == "transform" and dropped[0]["snapshot_date"] == CLEAN.isoformat()
    assert any("already computed" in line["message"] for line in lines)  # the 23 h old one was handled
    # A tick too: the same bound.
    before = len(log_lines(stack, "extract"))
    message = {"snapshot_date": CLEAN.isoformat(), "run_id": "rel-old-tick"}
    assert push_tick(stack, message, "rel-old-tick", age=timedelta(hours=25)) == 200
    tick_lines = [line for line in log_lines(stack, "extract")[before:] if "rel-old-tick" in line.get("object", "")]
    assert [line["severity"] for line in tick_lines] == ["ERROR", "INFO"] and "dropping" in tick_lines[0]["message"]
    assert tick_lines[1]["message"] == "run rel-old-tick abandoned for request"  # its one outcome
    # Configurable: an instance with PIPELINE_MAX_EVENT_AGE_SECONDS=3600 drops a two-hour-old event.
    rt = entrypoints.Runtime(env={**stack.env(), "PIPELINE_MAX_EVENT_AGE_SECONDS": "3600"})
    from datetime import UTC, datetime

    event = CloudEvent(
        {
            "type": "google.cloud.storage.object.v1.finalized",
            "source": "//storage.googleapis.com/projects/_/buckets/spotify-pipeline-local",
            "id": "rel-age",
            "time": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        },
        {"bucket": "spotify-pipeline-local", "name": name, "generation": str(gen)},
    )
    entrypoints.handle_object("transform", event, rt)
    assert bucket_objects(stack) == objects
    assert runs_of(stack, "rel-old-tick") == []
    record(
        "fault",
        "event-too-old",
        "a manifest event 25 h old (and one 23 h old), a tick 25 h old; an instance configured with "
        "PIPELINE_MAX_EVENT_AGE_SECONDS=3600 given a 2 h old event",
        "each too-old event acknowledged (HTTP 200) and dropped with exactly one ERROR line naming the "
        "object and PIPELINE_MAX_EVENT_AGE_SECONDS (default 86400); the 23 h old one was handled; no data "
        "written (the tick's run recorded as `abandoned`)",
    )


def test_warehouse_unavailable_during_load(stack: Any, clean: dict[str, str]) -> None:
    day, run_id = date(2025, 4, 21), "rel-warehouse"
    quiet(stack, seconds=3)  # nothing of earlier cases still in flight
    before = len(log_lines(stack, "load"))
    local.stop_process(stack, "bigquery")
    try:
        publish_tick(stack.env(), stack, {"snapshot_date": day.isoformat(), "run_id": run_id})

        def load_failures() -> list[dict[str, Any]]:
            return [
                line
                for line in log_lines(stack, "load")[before:]
                if line.get("snapshot_date") == day.isoformat()
                and "failed; the event will be redelivered" in line["message"]
            ]

        wait_until(load_failures, 240, what="load to fail against the stopped warehouse")
    finally:
        local.start_process(stack, "bigquery")
    wait_loaded(stack, run_id)
    quiet(stack)
    lines = [line for line in log_lines(stack, "load")[before:] if line.get("snapshot_date") == day.isoformat()]
    failed = [line for line in lines if "failed; the event will be redelivered" in line["message"]]
    assert failed and all(line["severity"] == "ERROR" and line.get("run_id") == run_id for line in failed)
    assert all(line["stage"] == "load" and line["object"].startswith("gs://") and line["time"] for line in lines)
    # Each failed attempt reported exactly once: one ERROR line per delivery answered 500.
    recommend_manifest = layout.manifest_name("recommend", day)
    answered_500 = [
        d
        for d in deliveries(stack)
        if d["function"] == "load" and d["data"]["name"] == recommend_manifest and d["status"] == 500
    ]
    assert len(failed) == len(answered_500)
    assert not [line for line in log_lines(stack, "load")[before:] if "Exception on" in line.get("message", "")]
    assert any("load succeeded" in line["message"] for line in lines)
    assert content_hashes(stack, day) == clean
    assert content_hashes(stack, CLEAN) == clean  # the restarted warehouse kept its tables
    record(
        "fault",
        "warehouse-down",
        "the BigQuery emulator stopped before a run, then restarted on the same port and data folder "
        "once load had failed",
        "load answered HTTP 500 (one ERROR line per attempt, with the run id), the Eventarc stand-in "
        "redelivered with backoff, and the run completed when the warehouse returned; tables identical to "
        "the clean run, earlier weeks intact",
    )


def test_two_snapshots_interleaved_reordered_and_late(stack: Any, clean: dict[str, str]) -> None:
    day_a, day_b = date(2025, 3, 17), date(2025, 3, 24)
    local.stop_process(stack, "eventarc")  # events now wait in the subscriptions: delivered by hand
    try:
        assert push_tick(stack, {"snapshot_date": day_a.isoformat(), "run_id": "rel-order-a1"}, "rel-order-a1") == 200
        stale = (layout.manifest_name("extract", day_a), generation(stack, layout.manifest_name("extract", day_a)))
        assert push_tick(stack, {"snapshot_date": day_b.isoformat(), "run_id": "rel-order-b"}, "rel-order-b") == 200
        assert push_tick(stack, {"snapshot_date": day_a.isoformat(), "run_id": "rel-order-a2"}, "rel-order-a2") == 200
        assert generation(stack, stale[0]) != stale[1]
        known: dict[str, set[int]] = {stale[0]: {stale[1]}}
        statuses: list[int] = []
        rounds = 0
        while not (_complete(stack, day_a) and _complete(stack, day_b)):
            rounds += 1
            assert rounds <= 8, "the two snapshots did not complete under reordered delivery"
            for day in (day_a, day_b):
                for stage in ("extract", "transform", "recommend"):
                    name = layout.manifest_name(stage, day)
                    if gen := generation(stack, name):
                        known.setdefault(name, set()).add(gen)
            # Newest first, both snapshots at once, every earlier event again (late and duplicated).
            events = sorted(((n, g) for n, gens in known.items() for g in gens), key=lambda e: -e[1])

            def send(event: tuple[str, int]) -> list[int]:
                return [deliver(stack, fn, *event) for fn in ("load", "recommend", "transform")]

            with ThreadPoolExecutor(4) as pool:
                statuses += [s for batch in pool.map(send, events) for s in batch]
    finally:
        local.start_process(stack, "eventarc")  # and now the backlog of every notification, late
    backlog_start = len(deliveries(stack))
    quiet(stack, seconds=3)
    late = len(deliveries(stack)) - backlog_start
    assert content_hashes(stack, day_a) == clean
    assert content_hashes(stack, day_b) == clean
    assert orphans(stack, day_a) == [] and orphans(stack, day_b) == []
    assert [r["stage"] for r in runs_of(stack, "rel-order-a1")] == ["extract"]  # its later stages never ran
    assert set(statuses) <= {200, 500}
    record(
        "fault",
        "interleave-reorder-late",
        "two snapshots (one run twice) with the Eventarc stand-in stopped; every manifest event delivered "
        "by hand newest first, both snapshots concurrently, each round repeating all earlier events "
        "(including the superseded run's); then the stand-in restarted on the whole backlog",
        "both snapshots identical to the clean run, no orphans; the superseded run never got past "
        "extract; the late backlog changed nothing",
    )
    assert late >= 0
