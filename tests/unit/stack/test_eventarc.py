"""The Eventarc stand-in's retries: exponential backoff, a function that is down is retried (not given
up on), an event past the event-age bound is dropped with one ERROR line, and pending events survive
a restart of the stand-in. The functions are small HTTP servers answering the statuses a test sets."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline_tools.stack import processes
from spotify_pipeline_tools.stack.eventarc import PENDING_FOLDER, Deliverer, RetryPolicy, storage_cloud_event
from spotify_pipeline_tools.stack.local import BUCKET, BUCKET_TRIGGERED, StackState

FAST = {"EVENTARC_STANDIN_MIN_BACKOFF_SECONDS": "0.1", "EVENTARC_STANDIN_MAX_BACKOFF_SECONDS": "0.4"}


class Function:
    """A function on ``port`` answering ``status``; counts the requests."""

    def __init__(self, port: int, status: int) -> None:
        self.status, self.requests = status, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests += 1
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def state(tmp_path: Path) -> StackState:
    return StackState(root=tmp_path, repo=tmp_path, ports={fn: processes.free_port() for fn in BUCKET_TRIGGERED})


@pytest.fixture
def functions() -> Iterator[list[Function]]:
    started: list[Function] = []
    yield started
    for f in started:
        f.close()


def _event(name: str = "transform/2025-03-03/_MANIFEST.json", event_id: str = "42") -> Any:
    when = datetime.now(UTC).isoformat()
    return storage_cloud_event({"bucket": BUCKET, "name": name, "generation": "7"}, event_id, when)


def _pending(state: StackState) -> list[Path]:
    return sorted((state.root / PENDING_FOLDER).glob("*.json"))


def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


def test_backoff_doubles_from_the_minimum_up_to_the_maximum() -> None:
    assert [RetryPolicy().backoff(n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 320, 600, 600]  # Eventarc's
    assert RetryPolicy().max_event_age == 86400
    fast = RetryPolicy.from_env(FAST)
    assert [fast.backoff(n) for n in range(1, 5)] == [0.1, 0.2, 0.4, 0.4]


def test_a_function_that_is_down_is_retried_until_it_answers(state: StackState, functions: list[Function]) -> None:
    deliverer = Deliverer(state, FAST)
    deliverer.start()
    deliverer.receive("load", _event())
    time.sleep(1.2)  # nothing listens on load's port: connection refused, retried with backoff
    functions.append(Function(state.ports["load"], 200))
    _until(lambda: not _pending(state))
    journal = (state.root / "deliveries.jsonl").read_text().splitlines()
    statuses = [json.loads(line)["status"] for line in journal]
    assert statuses[-1] == 200 and set(statuses[:-1]) == {0}
    # 0.1 + 0.2 + 0.4 + 0.4 ...: about 4 to 5 refused attempts in 1.2 s, not a tight loop, not given up.
    assert 3 <= len(statuses) - 1 <= 6
    assert functions[0].requests == 1


def test_an_event_past_the_age_bound_is_dropped_with_one_error_line(
    state: StackState, functions: list[Function], caplog: pytest.LogCaptureFixture
) -> None:
    functions.append(Function(state.ports["recommend"], 500))
    deliverer = Deliverer(state, {**FAST, "EVENTARC_STANDIN_MAX_EVENT_AGE_SECONDS": "1"})
    deliverer.start()
    with caplog.at_level(logging.INFO, logger="eventarc-standin"):
        deliverer.receive("recommend", _event(event_id="old-1"))
        _until(lambda: not _pending(state))
        attempts = functions[0].requests
        time.sleep(0.6)
    assert functions[0].requests == attempts >= 3  # retried while young, never after the drop
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("recommend: dropping event old-1 (objects/transform/2025-03-03/_MANIFEST.json)")
    assert "EVENTARC_STANDIN_MAX_EVENT_AGE_SECONDS=1 " in errors[0] and "last HTTP 500" in errors[0]


def test_pending_events_survive_a_restart_of_the_standin(state: StackState, functions: list[Function]) -> None:
    first = Deliverer(state, FAST)  # receives (and would acknowledge) but dies before delivering
    first.receive("transform", _event(event_id="kept"))
    first.receive("transform", _event(event_id="kept"))  # Pub/Sub redelivered the message: kept once
    assert len(_pending(state)) == 1
    functions.append(Function(state.ports["transform"], 200))
    second = Deliverer(state, FAST)
    second.start()
    _until(lambda: not _pending(state))
    time.sleep(0.3)
    assert functions[0].requests == 1


def test_an_object_name_no_http_header_can_hold_is_delivered_and_later_events_still_are(
    state: StackState, functions: list[Function]
) -> None:
    """A name with U+202E or a newline (an inbox file) goes in the ce-subject header: percent-encoded,
    as the CloudEvents HTTP binding says, and the events after it are delivered too."""
    functions.append(Function(state.ports["ingest"], 200))
    deliverer = Deliverer(state, FAST)
    deliverer.start()
    deliverer.receive("ingest", _event(name="inbox/x\u202evsc.csv", event_id="odd-1"))
    deliverer.receive("ingest", _event(name="inbox/a\nb.csv", event_id="odd-2"))
    deliverer.receive("ingest", _event(name="inbox/plain.csv", event_id="plain"))
    _until(lambda: not _pending(state) and functions[0].requests == 3)
    journal = [json.loads(line) for line in (state.root / "deliveries-ingest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in journal] == [200, 200, 200]
    assert journal[0]["headers"]["ce-subject"] == "objects/inbox/x%E2%80%AEvsc.csv"
