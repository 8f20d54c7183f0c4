"""Each process of the local stack killed (SIGKILL, state.json left as a crash leaves it) during a
run, brought back with the real `spotify-pipeline stack up`, and the run compared with the clean
run by content hashes of every table and bucket prefix (tests/faults_support.py).

The moment of each kill is held by a proxy in front of an emulator (HoldingProxy); the function
that talks through it is restarted on the stack's own environment afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from faults_support import (
    BIGQUERY_JOB,
    HoldingProxy,
    content_hashes,
    crash,
    orphans,
    stack_up,
    upload_of,
    wait_loaded,
)
from helpers import query
from reliability_log import record

from spotify_pipeline import layout
from spotify_pipeline.schema import tables
from spotify_pipeline_tools.cli.publish import publish_tick
from spotify_pipeline_tools.stack import local

pytestmark = [pytest.mark.emulators, pytest.mark.e2e]

HEAL_BOUND_SECONDS = 90  # from the kill to the run loaded, asserted (recorded in docs/reliability.md)


@contextmanager
def held(state: Any, fn: str, upstream: str, pattern: Any, mode: str = "drop", nth: int = 1) -> Iterator[HoldingProxy]:
    """``fn`` restarted to talk to ``upstream`` (an emulator's variable) through a HoldingProxy; afterwards
    ``fn`` runs on the stack's own environment again (restarted if `stack up` did not already)."""
    variable = {"gcs": "STORAGE_EMULATOR_HOST", "bigquery": "BIGQUERY_EMULATOR_HOST"}[upstream]
    proxy = HoldingProxy(state.url(upstream), pattern, mode=mode, nth=nth)
    proxied_pid = local.restart_process(state, fn, extra_env={variable: proxy.url})
    try:
        yield proxy
    finally:
        proxy.close()
        if state.pids.get(fn) == proxied_pid:
            local.restart_process(state, fn)


def _others_untouched(before: dict[str, int], after: dict[str, int], restarted: list[str]) -> None:
    assert sorted(name for name in before if before[name] != after.get(name)) == sorted(restarted)


def _tables_with(state: Any, day: date) -> int:
    """How many data tables hold rows of ``day``."""
    names = [name for name in tables() if name != "pipeline_runs"]
    field = {name: spec.partition_field for name, spec in tables().items()}
    return sum(
        bool(query(state, f"SELECT COUNT(*) AS n FROM `{name}` WHERE {field[name]} = @d", d=day)[0]["n"])
        for name in names
    )


def _finish(state: Any, day: date, run_id: str, killed_at: float, clean: dict[str, str]) -> float:
    wait_loaded(state, run_id, timeout=HEAL_BOUND_SECONDS)
    seconds = time.monotonic() - killed_at
    assert content_hashes(state, day) == clean
    assert orphans(state, day) == []
    print(f"{run_id}: loaded {seconds:.1f} s after the kill")
    return seconds


def test_extract_killed_mid_write(stack: Any, clean: dict[str, str]) -> None:
    day, run_id = date(2025, 5, 5), "heal-extract"
    with held(stack, "extract", "gcs", upload_of(layout.manifest_name("extract", day))) as proxy:
        publish_tick(stack.env(), stack, {"snapshot_date": day.isoformat(), "run_id": run_id})
        assert proxy.held.wait(60), "extract never wrote its manifest"
        before = dict(stack.pids)
        killed_at = time.monotonic()
        crash(stack, "extract")  # its files written, its manifest upload in flight
        proxy.release()
        restarted = stack_up(stack)
    assert restarted == ["extract"]
    _others_untouched(before, stack.pids, restarted)
    _finish(stack, day, run_id, killed_at, clean)
    record(
        "fault",
        "heal-kill-extract",
        "`extract` killed with SIGKILL mid-write (its chart files written, its manifest upload held by a proxy), "
        "then `spotify-pipeline stack up`",
        "`stack up` restarted only `extract`, on its port (other PIDs unchanged); the Pub/Sub push subscription "
        f"redelivered the tick; the run loaded within {HEAL_BOUND_SECONDS} s of the kill; tables and bucket "
        "prefixes identical to the clean run, no orphans",
    )


def test_gcs_emulator_killed_during_extract(stack: Any, clean: dict[str, str]) -> None:
    day, run_id = date(2025, 5, 12), "heal-gcs"
    with held(stack, "extract", "gcs", upload_of(layout.manifest_name("extract", day))) as proxy:
        publish_tick(stack.env(), stack, {"snapshot_date": day.isoformat(), "run_id": run_id})
        assert proxy.held.wait(60), "extract never wrote its manifest"
        killed_at = time.monotonic()
        crash(stack, "gcs")
        proxy.release()  # the held upload is dropped; extract's retries now meet a dead emulator
        restarted = stack_up(stack)
        assert restarted == ["gcs"]
        wait_loaded(stack, run_id, timeout=HEAL_BOUND_SECONDS)
    _finish(stack, day, run_id, killed_at, clean)
    assert content_hashes(stack, date(2025, 3, 3)) == clean  # objects written before the kill are intact
    record(
        "fault",
        "heal-kill-gcs",
        "the GCS emulator killed with SIGKILL while `extract` was writing (its manifest upload held by a proxy), "
        "then `spotify-pipeline stack up`",
        "`stack up` restarted only the GCS emulator, on its port and data folder; extract's retried upload (or "
        f"the redelivered tick) completed the run, loaded within {HEAL_BOUND_SECONDS} s of the kill; tables and "
        "prefixes identical to the clean run, earlier weeks' objects intact",
    )


def test_load_killed_part_way_with_the_eventarc_standin(stack: Any, clean: dict[str, str]) -> None:
    day, run_id = date(2025, 5, 19), "heal-load"
    # The 7th BigQuery job load starts: part-way through its tables, whether it replaces them one at a
    # time (3 jobs each) or stages them all before replacing them together.
    with held(stack, "load", "bigquery", BIGQUERY_JOB, nth=7) as proxy:
        publish_tick(stack.env(), stack, {"snapshot_date": day.isoformat(), "run_id": run_id})
        assert proxy.held.wait(90), "load never sent its 7th job"
        replaced = _tables_with(stack, day)
        killed_at = time.monotonic()
        crash(stack, "load")
        crash(stack, "eventarc")  # holding load's event: only its pending file can bring it back
        pending = list((Path(stack.root) / "eventarc-pending").glob("load-*.json"))
        proxy.release()
        restarted = stack_up(stack)
    assert sorted(restarted) == ["eventarc", "load"]
    assert pending, "the stand-in kept no pending file for load's event"
    _finish(stack, day, run_id, killed_at, clean)
    assert "reloaded" in (Path(stack.root) / "logs" / "eventarc.log").read_text()
    record(
        "fault",
        "heal-kill-load-and-eventarc",
        "`load` killed with SIGKILL at its 7th BigQuery job (a proxy held it; "
        f"{replaced} of 9 tables then held the new snapshot) and the Eventarc stand-in killed with it, "
        "then `spotify-pipeline stack up`",
        "`stack up` restarted only `load` and the stand-in; the stand-in reloaded the event from its pending "
        f"folder (its Pub/Sub message was already acknowledged) and redelivered it; loaded within "
        f"{HEAL_BOUND_SECONDS} s of the kill; tables identical to the clean run",
    )


def test_bigquery_emulator_killed_during_load(stack: Any, clean: dict[str, str]) -> None:
    day, run_id = date(2025, 5, 26), "heal-bigquery"
    with held(stack, "load", "bigquery", BIGQUERY_JOB, nth=4) as proxy:
        publish_tick(stack.env(), stack, {"snapshot_date": day.isoformat(), "run_id": run_id})
        assert proxy.held.wait(90), "load never sent its 4th job"
        killed_at = time.monotonic()
        crash(stack, "bigquery")
        proxy.release()
        restarted = stack_up(stack)
        assert restarted == ["bigquery"]
        wait_loaded(stack, run_id, timeout=HEAL_BOUND_SECONDS)
    _finish(stack, day, run_id, killed_at, clean)
    assert content_hashes(stack, date(2025, 3, 3)) == clean  # the restarted warehouse kept its tables
    record(
        "fault",
        "heal-kill-bigquery",
        "the BigQuery emulator killed with SIGKILL at load's 4th BigQuery job (a proxy held it), "
        "then `spotify-pipeline stack up`",
        "`stack up` restarted only the BigQuery emulator, on its ports and data folder; load failed, was "
        f"redelivered with backoff and completed, within {HEAL_BOUND_SECONDS} s of the kill; tables identical "
        "to the clean run, earlier weeks intact",
    )


def test_pubsub_emulator_killed_mid_run(stack: Any, clean: dict[str, str]) -> None:
    day, run_id = date(2025, 6, 2), "heal-pubsub"
    with held(stack, "transform", "gcs", upload_of(layout.manifest_name("transform", day)), mode="pause") as proxy:
        publish_tick(stack.env(), stack, {"snapshot_date": day.isoformat(), "run_id": run_id})
        assert proxy.held.wait(60), "transform never wrote its manifest"
        eventarc = stack.pids["eventarc"]
        killed_at = time.monotonic()
        crash(stack, "pubsub")
        proxy.release()  # transform's manifest lands while Pub/Sub is down: its notification goes nowhere
        time.sleep(2)
        restarted = stack_up(stack)
        assert restarted == ["pubsub"]
        assert stack.pids["eventarc"] == eventarc  # the stand-in subscribed again by itself
        wait_loaded(stack, run_id, timeout=HEAL_BOUND_SECONDS)
    _finish(stack, day, run_id, killed_at, clean)
    record(
        "fault",
        "heal-kill-pubsub",
        "the Pub/Sub emulator killed with SIGKILL while `transform` wrote its manifest (held by a proxy, then "
        "let through with Pub/Sub down, so its notification was lost), then `spotify-pipeline stack up`",
        "`stack up` restarted only the Pub/Sub emulator, created its topics and subscriptions again and "
        "republished the notifications of objects finalized since the stand-in's last event; the stand-in "
        f"(same PID) subscribed again; recommend and load ran; loaded within {HEAL_BOUND_SECONDS} s of the "
        "kill; tables identical to the clean run",
    )
