"""The four entry points, driven with real CloudEvents through functions-framework's test client
(and, for the bad-tick case, through the Pub/Sub emulator's push delivery)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from functions_framework import create_app
from helpers import bucket_objects, gcs, outcomes_of, query, run_pipeline, wait_until

from spotify_pipeline import layout

REPO = Path(__file__).resolve().parents[2]


def client(fn: str) -> Any:
    return create_app(fn, str(REPO / "functions" / fn / "main.py"), "cloudevent").test_client()


def tick_event(payload: Any, message_id: str, age: timedelta = timedelta(0)) -> CloudEvent:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "id": message_id,
            "source": "//pubsub.googleapis.com/projects/local-project/topics/spotify-pipeline-ticks",
            "time": (datetime.now(UTC) - age).isoformat(),
        },
        {"message": {"data": base64.b64encode(data).decode(), "messageId": message_id}, "subscription": "test"},
    )


def object_event(name: str, generation: int, age: timedelta = timedelta(0)) -> CloudEvent:
    return CloudEvent(
        {
            "type": "google.cloud.storage.object.v1.finalized",
            "id": f"{name}#{generation}",
            "source": "//storage.googleapis.com/projects/_/buckets/spotify-pipeline-local",
            "subject": f"objects/{name}",
            "time": (datetime.now(UTC) - age).isoformat(),
        },
        {"bucket": "spotify-pipeline-local", "name": name, "generation": str(generation)},
    )


def post(fn: str, event: CloudEvent) -> Any:
    headers, body = to_binary(event)
    return client(fn).post("/", headers=headers, data=body)


def run_count(stack: Any) -> int:
    return int(query(stack, "SELECT COUNT(*) AS n FROM pipeline_runs")[0]["n"])


@pytest.mark.parametrize(
    ("payload", "field", "value"),
    [
        ({"snapshot_date": "not-a-date"}, "snapshot_date", "not-a-date"),
        ({"markets": ["GLOBAL", "Brazil"]}, "markets", "Brazil"),
        ({"snapshot": "2026-11-23"}, "snapshot", "2026-11-23"),
        (b"this is not json", "message.data", "this is not json"),
        ({"markets": ["GLOBAL", "MX"], "run_id": "refused-mx"}, "markets", "MX"),
    ],
)
def test_invalid_tick_is_acknowledged_named_and_recorded_as_failed(stack, caplog, payload, field, value) -> None:
    from spotify_pipeline.handlers import tick_run_id

    objects = bucket_objects(stack)
    message_id = f"bad-{field}-{time.time_ns()}"
    response = post("extract", tick_event(payload, message_id))
    assert response.status_code == 200  # acknowledged: Pub/Sub will not redeliver it
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    # One clear error naming the message, the field and the value.
    assert any(f"Pub/Sub message {message_id}" in m and f"'{field}'" in m and value in m for m in errors), errors
    assert bucket_objects(stack) == objects
    # A failed extract row under the request's run id (else the message's), saying why: what `run` follows.
    given = payload.get("run_id") if isinstance(payload, dict) else None
    run_id = given or tick_run_id(message_id, "")  # the test's event carries no publish time
    rows = query(stack, "SELECT stage, status, error FROM pipeline_runs WHERE run_id = @r", r=run_id)
    assert [(r["stage"], r["status"]) for r in rows] == [("extract", "failed")]
    assert f"'{field}'" in rows[0]["error"] and value in rows[0]["error"]
    # Its one outcome, decided before any week: failed, with the reason; in the bucket and the warehouse.
    ((outcome, reason),) = outcomes_of(stack, run_id).values()
    assert outcome == "failed" and reason == f"refused: {rows[0]['error']}"
    recorded = query(stack, "SELECT outcome, snapshot_date FROM run_outcomes WHERE run_id = @r", r=run_id)
    assert recorded == [{"outcome": "failed", "snapshot_date": None}]


def test_invalid_tick_through_pubsub_is_not_redelivered(stack) -> None:
    from spotify_pipeline.clients import publisher_client

    publisher = publisher_client(stack.env())
    objects = bucket_objects(stack)
    topic = publisher.topic_path("local-project", "spotify-pipeline-ticks")
    message_id = publisher.publish(topic, json.dumps({"snapshot_date": "not-a-date"}).encode()).result(30)
    log_file = Path(stack.root) / "logs" / "function-extract.log"

    def rejections() -> int:
        return sum(
            1
            for line in log_file.read_text().splitlines()
            if f"Pub/Sub message {message_id}" in line and "not-a-date" in line
        )

    wait_until(rejections, 30)
    time.sleep(5)  # the emulator would have redelivered an unacknowledged push by now
    assert rejections() == 1
    assert bucket_objects(stack) == objects


def test_unrelated_objects_start_nothing(stack) -> None:
    recorded, before = run_count(stack), set(bucket_objects(stack))
    bucket = gcs(stack).bucket("spotify-pipeline-local")
    names = ["inbox/notes.txt", "extract/snapshot_date=2026-01-05/readme.txt", "transform/x/_manifest.json"]
    for name in names:
        bucket.blob(name).upload_from_string(b"not for the pipeline")
    journal = Path(stack.root) / "deliveries.jsonl"

    def delivered() -> bool:
        seen = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
        return all(sum(1 for d in seen if name in d["body"] and d["status"] == 200) == 3 for name in names)

    wait_until(delivered, 30)  # each of the three bucket-triggered functions got and acknowledged each event
    assert set(bucket_objects(stack)) == before | set(names)  # nothing written in response
    assert run_count(stack) == recorded


def test_superseded_and_stale_events_are_ignored(stack) -> None:
    day = date(2026, 10, 5)
    run_pipeline(stack, day, "fn-supersede")
    name = layout.manifest_name("extract", day)
    current = bucket_objects(stack)[name]
    objects, recorded = bucket_objects(stack), run_count(stack)
    # An older generation of the manifest (an earlier run's event arriving late): nothing happens.
    assert post("transform", object_event(name, current - 1)).status_code == 200
    # An event older than PIPELINE_MAX_EVENT_AGE_SECONDS: dropped, ending Eventarc's retries.
    assert post("transform", object_event(name, current, age=timedelta(days=2))).status_code == 200
    # The right manifest for the wrong function: recommend ignores extract's manifest.
    assert post("recommend", object_event(name, current)).status_code == 200
    assert bucket_objects(stack) == objects
    assert run_count(stack) == recorded


def test_malformed_storage_event_is_acknowledged(stack) -> None:
    event = CloudEvent(
        {"type": "google.cloud.storage.object.v1.finalized", "source": "//storage.googleapis.com/x", "id": "broken"},
        {"bucket": "spotify-pipeline-local"},
    )
    assert post("load", event).status_code == 200
