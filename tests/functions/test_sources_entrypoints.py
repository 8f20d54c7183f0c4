"""The extract source's two entry points through functions-framework: ``extract`` (ticks) and
``ingest`` (bucket events; only ``inbox/*.csv`` starts a run). Both accept both event types."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from functions_framework import create_app
from helpers import bucket_objects, query

from spotify_pipeline.runtime import is_inbox_chart

REPO = Path(__file__).resolve().parents[2]
SOURCE = str(REPO / "functions" / "extract" / "main.py")


def post(target: str, event: CloudEvent) -> Any:
    headers, body = to_binary(event)
    return create_app(target, SOURCE, "cloudevent").test_client().post("/", headers=headers, data=body)


def storage_event(
    name: str, generation: int = 1, age: timedelta = timedelta(0), bucket: str = "spotify-pipeline-local"
) -> CloudEvent:
    return CloudEvent(
        {
            "type": "google.cloud.storage.object.v1.finalized",
            "id": f"{name}#{generation}",
            "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
            "time": (datetime.now(UTC) - age).isoformat(),
        },
        {"bucket": bucket, "name": name, "generation": str(generation)},
    )


def run_count(stack: Any) -> int:
    return int(query(stack, "SELECT COUNT(*) AS n FROM pipeline_runs")[0]["n"])


@pytest.mark.parametrize(
    ("name", "yes"),
    [
        ("inbox/regional-global-weekly-2026-11-19.csv", True),
        ("inbox/2026/kaggle.CSV", True),
        ("inbox/notes.txt", False),
        ("inbox/.csv", False),
        ("uploads/cli-1/chart.csv", False),
        ("extract/snapshot_date=2026-11-19/charts/GLOBAL.json", False),
        ("cache/tracks.json", False),
        ("xinbox/chart.csv", False),
    ],
)
def test_inbox_rule_is_by_name(name: str, yes: bool) -> None:
    assert is_inbox_chart(name) is yes


@pytest.mark.parametrize("target", ["ingest", "extract"])
@pytest.mark.parametrize(
    "event",
    [
        storage_event("inbox/notes.txt"),
        storage_event("uploads/cli-x/chart.csv"),
        storage_event("extract/snapshot_date=2026-11-19/_manifest.json"),
        storage_event("inbox/chart.csv", bucket="someone-elses-bucket"),
        storage_event("inbox/old.csv", age=timedelta(days=3)),  # older than PIPELINE_MAX_EVENT_AGE_SECONDS
        storage_event("inbox/gone.csv", generation=123),  # no such object at that generation: superseded
    ],
    ids=["not-csv", "uploads", "manifest", "other-bucket", "too-old", "superseded"],
)
def test_foreign_or_stale_objects_start_nothing(stack: Any, target: str, event: CloudEvent) -> None:
    objects, recorded = bucket_objects(stack), run_count(stack)
    assert post(target, event).status_code == 200  # acknowledged
    assert bucket_objects(stack) == objects
    assert run_count(stack) == recorded


def test_ingest_also_takes_a_tick_and_rejects_a_bad_one(stack: Any, caplog: pytest.LogCaptureFixture) -> None:
    data = base64.b64encode(json.dumps({"chart_source": "charts-csv"}).encode()).decode()
    event = CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "id": "src-1", "source": "//pubsub/x"},
        {"message": {"data": data, "messageId": "src-1"}},
    )
    objects = bucket_objects(stack)
    assert post("ingest", event).status_code == 200
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("'charts_csv'" in m and "inbox/" in m for m in errors), errors
    assert bucket_objects(stack) == objects
