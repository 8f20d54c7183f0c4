"""Eventarc stand-in: bucket notifications -> ``google.cloud.storage.object.v1.finalized`` CloudEvents.

Bucket-triggered functions: ingest (the extract source's second deployment, for inbox/ chart
files), transform, recommend and load. Like Eventarc, each has its own subscription on the bucket's
notification topic and receives every object's event (no prefix filter).

Retries as Eventarc's with a retry policy: each event received is first written to
``eventarc-pending/`` in the state folder, then its Pub/Sub message is acknowledged, so an event
the stand-in has received survives a restart of the stand-in (pending events are reloaded on
start) and of the Pub/Sub emulator. A worker per function delivers the due events one at a time;
a failed delivery (an HTTP error, or no answer: a crashed or stopped function) is retried after
``min * 2**(n-1)`` seconds, at most ``max`` (Eventarc: 10 s up to 600 s), until the event is older
than the event-age bound (Eventarc: 24 h), then dropped with one ERROR line. The three are the
``EVENTARC_STANDIN_*`` settings of stack/settings.py. The latest event time received per function
is kept in ``eventarc-watermark.json``: after a restart of the Pub/Sub emulator, ``stack up``
republishes the notifications of objects finalized since then (their notifications were lost).

Every delivery to transform, recommend and load is appended to ``deliveries.jsonl`` in the state
folder (headers and body), which the end-to-end test replays to prove redelivery is harmless;
deliveries to ingest go to ``deliveries-ingest.jsonl``.

Without the Pub/Sub emulator, the stand-in polls the GCS emulator's listing instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from spotify_pipeline_tools.stack.settings import EVENTARC_DEFAULTS
from spotify_pipeline_tools.stack.state import BUCKET, BUCKET_STAGES, BUCKET_TRIGGERED, PROJECT, StackState

log = logging.getLogger("eventarc-standin")
FINALIZED = "google.cloud.storage.object.v1.finalized"
PENDING_FOLDER = "eventarc-pending"
WATERMARK_FILE = "eventarc-watermark.json"
RESUBSCRIBE_SECONDS = 1.0


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


@dataclass(frozen=True)
class RetryPolicy:
    min_backoff: float = EVENTARC_DEFAULTS["EVENTARC_STANDIN_MIN_BACKOFF_SECONDS"]
    max_backoff: float = EVENTARC_DEFAULTS["EVENTARC_STANDIN_MAX_BACKOFF_SECONDS"]
    max_event_age: float = EVENTARC_DEFAULTS["EVENTARC_STANDIN_MAX_EVENT_AGE_SECONDS"]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        def get(name: str) -> float:
            raw = env.get(name, "").strip()
            return float(raw) if raw else EVENTARC_DEFAULTS[name]

        return cls(
            get("EVENTARC_STANDIN_MIN_BACKOFF_SECONDS"),
            get("EVENTARC_STANDIN_MAX_BACKOFF_SECONDS"),
            get("EVENTARC_STANDIN_MAX_EVENT_AGE_SECONDS"),
        )

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed delivery of an event."""
        return float(min(self.min_backoff * 2 ** (failures - 1), self.max_backoff))


@dataclass
class Pending:
    """One event not yet delivered to one function, as kept on disk."""

    fn: str
    attributes: dict[str, Any]
    data: dict[str, Any]
    received: float  # wall-clock time the stand-in received it: delivery order
    attempts: int = 0
    due: float = 0.0  # wall-clock time of the next delivery
    last_status: int | None = None

    @property
    def event(self) -> CloudEvent:
        return CloudEvent(dict(self.attributes), dict(self.data))

    @property
    def time(self) -> float:
        """The event's time (when the object was finalized), else when the stand-in received it."""
        try:
            return datetime.fromisoformat(str(self.attributes["time"])).timestamp()
        except (KeyError, ValueError):
            return self.received

    def age(self, now: float) -> float:
        return now - self.time


@dataclass
class PendingStore:
    """Pending events, one JSON file each (written whole, then renamed), named by function and event id."""

    folder: Path
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, fn: str, event_id: str) -> Path:
        return self.folder / f"{fn}-{hashlib.sha256(event_id.encode()).hexdigest()[:24]}.json"

    def add(self, pending: Pending) -> bool:
        """Keep ``pending``; False when that event is already pending for that function (a redelivered message)."""
        with self.lock:
            if self._path(pending.fn, pending.attributes["id"]).exists():
                return False
            self._write(pending)
            return True

    def save(self, pending: Pending) -> None:
        with self.lock:
            self._write(pending)

    def _write(self, pending: Pending) -> None:
        path = self._path(pending.fn, pending.attributes["id"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(pending)))
        os.replace(tmp, path)

    def remove(self, pending: Pending) -> None:
        with self.lock:
            self._path(pending.fn, pending.attributes["id"]).unlink(missing_ok=True)

    def load(self) -> list[Pending]:
        return [Pending(**json.loads(p.read_text())) for p in sorted(self.folder.glob("*.json"))]


class Deliverer:
    """Keeps every received event until its function took it (or it aged out); one worker per function."""

    def __init__(self, state: StackState, env: Mapping[str, str] | None = None) -> None:
        self.policy = RetryPolicy.from_env(os.environ if env is None else env)
        self.targets = {fn: state.url(fn) + "/" for fn in BUCKET_TRIGGERED}
        self.journals = {
            fn: state.root / ("deliveries.jsonl" if fn in BUCKET_STAGES else f"deliveries-{fn}.jsonl")
            for fn in BUCKET_TRIGGERED
        }
        self.store = PendingStore(state.root / PENDING_FOLDER)
        self.watermark_file = state.root / WATERMARK_FILE
        self.watermark: dict[str, float] = (
            json.loads(self.watermark_file.read_text()) if self.watermark_file.exists() else {}
        )
        self.cond = threading.Condition()
        self.queues: dict[str, list[Pending]] = {fn: [] for fn in BUCKET_TRIGGERED}
        for pending in self.store.load():
            self.queues[pending.fn].append(pending)
        reloaded = sum(len(q) for q in self.queues.values())
        if reloaded:
            log.info("reloaded %d pending deliveries from %s", reloaded, self.store.folder)

    def receive(self, fn: str, event: CloudEvent) -> None:
        """Keep ``event`` for ``fn`` on disk (the caller acknowledges its message afterwards) and queue it."""
        pending = Pending(fn, dict(event.get_attributes()), dict(event.get_data() or {}), received=time.time())
        with self.cond:
            if pending.time > self.watermark.get(fn, 0.0):
                self.watermark[fn] = pending.time
                tmp = self.watermark_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.watermark))
                os.replace(tmp, self.watermark_file)
            if self.store.add(pending):
                self.queues[fn].append(pending)
                self.cond.notify_all()

    def start(self) -> None:
        for fn in BUCKET_TRIGGERED:
            threading.Thread(target=self._work, args=(fn,), name=f"deliver-{fn}", daemon=True).start()

    def _next_due(self, fn: str) -> Pending:
        with self.cond:
            while True:
                queue = self.queues[fn]
                if queue:
                    first = min(queue, key=lambda p: (p.due, p.received))
                    wait = first.due - time.time()
                    if wait <= 0:
                        queue.remove(first)
                        return first
                    self.cond.wait(wait)
                else:
                    self.cond.wait()

    def _work(self, fn: str) -> None:
        session = requests.Session()
        while True:
            pending = self._next_due(fn)
            if self._aged_out(pending, time.time()):
                continue
            if not self.deliver(pending, session):
                with self.cond:
                    self.queues[fn].append(pending)

    def deliver(self, pending: Pending, session: requests.Session) -> bool:
        """One delivery attempt: True when done with the event (delivered, or dropped as too old)."""
        headers, body = to_binary(pending.event)
        headers = {k: _header_value(v) for k, v in headers.items()}
        pending.attempts += 1
        try:
            status = session.post(self.targets[pending.fn], headers=headers, data=body, timeout=600).status_code
        except requests.RequestException as exc:
            status = 0  # no answer: the function is down or crashed; retried like an error
            log.warning("%s: %s", pending.fn, exc)
        except Exception as exc:  # never let one event end this function's deliveries
            status = 0
            log.exception("%s: could not deliver event %s: %s", pending.fn, pending.attributes.get("id"), exc)
        with self.store.lock, self.journals[pending.fn].open("a") as out:
            record = {"function": pending.fn, "status": status, "attempt": pending.attempts}
            out.write(json.dumps({**record, "headers": dict(headers), "body": _text(body)}) + "\n")
        pending.last_status = status
        if 200 <= status < 300:
            self.store.remove(pending)
            return True
        pending.due = time.time() + self.policy.backoff(pending.attempts)
        if self._aged_out(pending, pending.due):
            return True
        self.store.save(pending)
        return False

    def _aged_out(self, pending: Pending, at: float) -> bool:
        """Drop ``pending`` (one ERROR line) if it would be older than the event-age bound at ``at``."""
        age = pending.age(at)
        if age <= self.policy.max_event_age:
            return False
        log.error(
            "%s: dropping event %s (%s): older than the event-age bound EVENTARC_STANDIN_MAX_EVENT_AGE_SECONDS=%g "
            "at its next delivery (%.0f s old, %d attempts, last HTTP %s); no more retries",
            pending.fn,
            pending.attributes["id"],
            pending.attributes.get("subject"),
            self.policy.max_event_age,
            age,
            pending.attempts,
            pending.last_status,
        )
        self.store.remove(pending)
        return True


# What an HTTP header value may hold as is (CloudEvents HTTP binding, 3.1.3.2): printable ASCII
# but `%` and `"`; anything else (an object name with U+202E or a newline) is percent-encoded.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '%"')


def _header_value(value: str) -> str:
    return quote(value, safe=_HEADER_SAFE)


def _text(body: Any) -> str:
    return body.decode() if isinstance(body, bytes) else str(body)


def run_with_pubsub(state: StackState, deliverer: Deliverer) -> None:
    """Pull every function's subscription; subscribe again whenever a stream ends (the Pub/Sub
    emulator restarted: its subscriptions come back with ``stack up``)."""
    import google.cloud.pubsub_v1 as pubsub_v1

    from spotify_pipeline.clients import subscriber_client

    subscriber = subscriber_client(state.env())

    def subscribe(fn: str) -> Any:
        def callback(message: Any) -> None:
            obj = json.loads(message.data)
            when = message.attributes.get("eventTime") or message.publish_time.isoformat()
            deliverer.receive(fn, storage_cloud_event(obj, message.message_id, when))
            message.ack()  # after the event is on disk: a received event is never lost

        path = subscriber.subscription_path(PROJECT, f"eventarc-{fn}")
        return subscriber.subscribe(path, callback, flow_control=pubsub_v1.types.FlowControl(max_messages=1))

    streams = {fn: subscribe(fn) for fn in BUCKET_TRIGGERED}
    deliverer.start()
    (state.root / "eventarc.ready").write_text("pubsub\n")
    while True:
        time.sleep(RESUBSCRIBE_SECONDS)
        for fn, stream in streams.items():
            if stream.done():
                log.warning("%s: subscription stream ended (%s); subscribing again", fn, stream.exception())
                streams[fn] = subscribe(fn)


def run_polling(state: StackState, deliverer: Deliverer) -> None:
    """No Pub/Sub emulator: list the bucket and hand each new (name, generation) once to each function."""
    from spotify_pipeline.clients import storage_client

    client = storage_client(PROJECT, state.env())
    seen: set[tuple[str, int]] = {(b.name, int(b.generation)) for b in client.list_blobs(BUCKET)}
    deliverer.start()
    (state.root / "eventarc.ready").write_text("polling\n")
    while True:
        for blob in sorted(client.list_blobs(BUCKET), key=lambda b: (b.updated, b.name)):
            key = (blob.name, int(blob.generation))
            if key in seen:
                continue
            seen.add(key)
            event = storage_cloud_event(
                object_resource(blob), f"{blob.name}#{blob.generation}", blob.updated.isoformat()
            )
            for fn in BUCKET_TRIGGERED:
                deliverer.receive(fn, event)
        time.sleep(0.3)


def object_resource(blob: Any) -> dict[str, Any]:
    """The JSON object resource a finalize notification carries (the fields the functions read)."""
    return {
        "kind": "storage#object",
        "bucket": BUCKET,
        "name": blob.name,
        "generation": str(blob.generation),
        "size": str(blob.size),
        "contentType": blob.content_type,
        "md5Hash": blob.md5_hash,
        "timeCreated": blob.time_created.isoformat() if blob.time_created else None,
        "updated": blob.updated.isoformat() if blob.updated else None,
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    state = StackState.load(Path(sys.argv[1]))
    if state is None:
        raise SystemExit(f"no stack state in {sys.argv[1]}")
    deliverer = Deliverer(state)
    if state.pubsub:
        run_with_pubsub(state, deliverer)
    else:
        run_polling(state, deliverer)


if __name__ == "__main__":
    main()
