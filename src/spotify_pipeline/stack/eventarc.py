"""Eventarc stand-in: bucket notifications -> ``google.cloud.storage.object.v1.finalized`` CloudEvents.

Bucket-triggered functions: ingest (the extract source's second deployment, for inbox/ chart
files), transform, recommend and load. Like Eventarc, each has its own subscription on the bucket's
notification topic and receives every object's event (no prefix filter). An HTTP error from the
function (or none answering: a crashed instance) nacks the message after an exponential backoff
(0.5, 1, 2, 4, ... s, at most ``EVENTARC_STANDIN_MAX_BACKOFF_SECONDS``, default 16), so Pub/Sub
redelivers it (``RETRY_POLICY_RETRY``); after ``EVENTARC_STANDIN_MAX_ATTEMPTS`` deliveries
(default 9: a window of about a minute, long enough for a function or the warehouse to come
back) the message is acknowledged and dropped, with a log line, so no event loops forever.
Within the window, the function's other events wait (one event at a time per function).
Every delivery to transform, recommend and load is appended to
``deliveries.jsonl`` in the state folder (headers and body), which the end-to-end test replays to
prove redelivery is harmless; deliveries to ingest go to ``deliveries-ingest.jsonl``.

Without the Pub/Sub emulator, the stand-in polls the GCS emulator's listing instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from spotify_pipeline.stack.local import BUCKET, BUCKET_STAGES, BUCKET_TRIGGERED, PROJECT, StackState

log = logging.getLogger("eventarc-standin")
MAX_ATTEMPTS = 9
MAX_BACKOFF_SECONDS = 16.0
FINALIZED = "google.cloud.storage.object.v1.finalized"


def storage_cloud_event(obj: Mapping[str, Any], event_id: str, event_time: str) -> CloudEvent:
    """The CloudEvent Eventarc delivers for a finalized object (binary content mode)."""
    return CloudEvent(
        {
            "id": event_id,
            "source": f"//storage.googleapis.com/projects/_/buckets/{obj['bucket']}",
            "type": FINALIZED,
            "subject": f"objects/{obj['name']}",
            "time": event_time,
            "datacontenttype": "application/json",
        },
        dict(obj),
    )


def _setting(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    try:
        return max(minimum, float(raw)) if raw else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r}: expected a number") from None


class Deliverer:
    def __init__(self, state: StackState, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.max_attempts = int(_setting(env, "EVENTARC_STANDIN_MAX_ATTEMPTS", MAX_ATTEMPTS, 1))
        self.max_backoff = _setting(env, "EVENTARC_STANDIN_MAX_BACKOFF_SECONDS", MAX_BACKOFF_SECONDS, 0.0)
        self.targets = {fn: state.url(fn) + "/" for fn in BUCKET_TRIGGERED}
        self.journal = state.root / "deliveries.jsonl"
        self.journals = {
            fn: state.root / ("deliveries.jsonl" if fn in BUCKET_STAGES else f"deliveries-{fn}.jsonl")
            for fn in BUCKET_TRIGGERED
        }
        self.attempts: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()
        self.session = requests.Session()

    def deliver(self, fn: str, event: CloudEvent) -> bool:
        headers, body = to_binary(event)
        key = (fn, event["id"])
        with self.lock:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            attempt = self.attempts[key]
        try:
            status = self.session.post(self.targets[fn], headers=headers, data=body, timeout=600).status_code
        except requests.RequestException as exc:
            status = 0
            log.warning("%s: %s", fn, exc)
        with self.lock, self.journals[fn].open("a") as out:
            out.write(
                json.dumps(
                    {
                        "function": fn,
                        "status": status,
                        "attempt": attempt,
                        "headers": dict(headers),
                        "body": body.decode() if isinstance(body, bytes) else body,
                    }
                )
                + "\n"
            )
        if 200 <= status < 300:
            return True
        if attempt >= self.max_attempts:
            log.error("%s: giving up on %s after %d attempts (last HTTP %s)", fn, event["subject"], attempt, status)
            return True
        return False

    def backoff(self, fn: str, event_id: str) -> float:
        """Seconds to wait after the latest failed delivery of ``event_id`` to ``fn``."""
        with self.lock:
            attempt = self.attempts.get((fn, event_id), 1)
        return float(min(2**attempt * 0.25, self.max_backoff))


def run_with_pubsub(state: StackState) -> None:
    import google.cloud.pubsub_v1 as pubsub_v1

    from spotify_pipeline.clients import subscriber_client

    deliverer = Deliverer(state)
    subscriber = subscriber_client(state.env())
    futures = []
    for fn in BUCKET_TRIGGERED:

        def callback(message: Any, fn: str = fn) -> None:
            obj = json.loads(message.data)
            event = storage_cloud_event(
                obj, message.message_id, message.attributes.get("eventTime") or message.publish_time.isoformat()
            )
            if deliverer.deliver(fn, event):
                message.ack()
            else:
                time.sleep(deliverer.backoff(fn, event["id"]))  # before redelivery
                message.nack()

        flow = pubsub_v1.types.FlowControl(max_messages=1)  # one event at a time per function, in order received
        futures.append(
            subscriber.subscribe(subscriber.subscription_path(PROJECT, f"eventarc-{fn}"), callback, flow_control=flow)
        )
    (state.root / "eventarc.ready").write_text("pubsub\n")
    for future in futures:
        future.result()


def run_polling(state: StackState) -> None:
    """No Pub/Sub emulator: list the bucket and deliver each new (name, generation) once to each function."""
    from spotify_pipeline.clients import storage_client

    client = storage_client(PROJECT, state.env())
    deliverer = Deliverer(state)
    seen: set[tuple[str, int]] = {(b.name, int(b.generation)) for b in client.list_blobs(BUCKET)}
    (state.root / "eventarc.ready").write_text("polling\n")
    while True:
        for blob in sorted(client.list_blobs(BUCKET), key=lambda b: (b.updated, b.name)):
            key = (blob.name, int(blob.generation))
            if key in seen:
                continue
            seen.add(key)
            obj = {
                "bucket": BUCKET,
                "name": blob.name,
                "generation": str(blob.generation),
                "size": str(blob.size),
                "contentType": blob.content_type,
                "md5Hash": blob.md5_hash,
                "timeCreated": blob.time_created.isoformat() if blob.time_created else None,
            }
            event = storage_cloud_event(obj, f"{blob.name}#{blob.generation}", blob.updated.isoformat())
            for fn in BUCKET_TRIGGERED:
                while not deliverer.deliver(fn, event):
                    time.sleep(deliverer.backoff(fn, event["id"]))
        time.sleep(0.3)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    state = StackState.load(Path(sys.argv[1]))
    if state is None:
        raise SystemExit(f"no stack state in {sys.argv[1]}")
    if state.pubsub:
        run_with_pubsub(state)
    else:
        run_polling(state)


if __name__ == "__main__":
    main()
