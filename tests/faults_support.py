"""Tools of the fault-injection suite: content hashes, hand-made deliveries, a fault-injecting
proxy in front of an emulator, crashing a process and healing the stack with the real `stack up`,
and the functions' own JSON log lines."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import requests
from cloudevents.conversion import to_binary
from helpers import bq, gcs, query, run_pipeline, settings

from spotify_pipeline import layout
from spotify_pipeline.manifest import Manifest
from spotify_pipeline.schema import tables
from spotify_pipeline_tools.cli.follow import wait_for_run
from spotify_pipeline_tools.stack import processes
from spotify_pipeline_tools.stack.eventarc import storage_cloud_event
from spotify_pipeline_tools.stack.local import BUCKET, StackState

STAGES_WITH_FILES = ("extract", "transform", "recommend")
CLEAN = date(2025, 3, 3)  # the week of the reference run every fault case compares with


# -- comparing a run with a clean run --------------------------------------------------------------


def _canonical(rows: list[dict[str, Any]], snapshot: date) -> list[str]:
    out = []
    for row in rows:
        clean = {k: ("<snapshot>" if k == "snapshot_date" else v) for k, v in row.items()}
        out.append(json.dumps(clean, default=str, sort_keys=True))
    return out


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def table_hashes(state: StackState, snapshot: date) -> dict[str, str]:
    """Per data table: SHA-256 of the snapshot's rows, canonical JSON, sorted (the date itself masked)."""
    out = {}
    for name, spec in tables().items():
        if name == "pipeline_runs":
            continue
        rows = query(state, f"SELECT * FROM `{name}` WHERE {spec.partition_field} = @d", d=snapshot)
        out[f"table:{name}"] = _digest(sorted(_canonical(rows, snapshot)))
    return out


def prefix_hashes(state: StackState, snapshot: date) -> dict[str, str]:
    """Per stage prefix: SHA-256 over the files its current manifest lists (name within the run
    folder, content with the snapshot date masked), and every other object under the prefix
    (an orphan would change the hash). The load prefix: its receipt's row counts."""
    bucket = gcs(state).bucket(BUCKET)
    out = {}
    for stage in (*STAGES_WITH_FILES, "load"):
        prefix = layout.prefix(stage, snapshot)
        names = sorted(b.name for b in bucket.list_blobs(prefix=prefix))
        manifest_name = layout.manifest_name(stage, snapshot)
        if manifest_name not in names:
            out[f"prefix:{stage}"] = "no manifest"
            continue
        manifest = Manifest.from_bytes(bucket.blob(manifest_name).download_as_bytes(), manifest_name)
        lines = []
        if stage == "load":
            lines.append(json.dumps(manifest.summary.get("row_counts"), sort_keys=True))
        listed = {f.name for f in manifest.files}
        for entry in manifest.files:
            data = bucket.blob(entry.name).download_as_bytes()
            folder = layout.parse_run_folder(entry.name)
            rel = entry.name[len(folder.path) :] if folder else entry.name[len(prefix) :]
            lines.append(f"{rel}\t{_content_digest(data, entry.name, snapshot)}")
        lines += [f"orphan\t{n[len(prefix) :]}" for n in names if n not in listed and n != manifest_name]
        out[f"prefix:{stage}"] = _digest(lines)
    return out


def _content_digest(data: bytes, name: str, snapshot: date) -> str:
    if name.endswith(".parquet"):
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        return _digest(_canonical(rows, snapshot))  # file order kept: the files are deterministic
    return hashlib.sha256(data.replace(snapshot.isoformat().encode(), b"<snapshot>")).hexdigest()


def content_hashes(state: StackState, snapshot: date) -> dict[str, str]:
    return {**table_hashes(state, snapshot), **prefix_hashes(state, snapshot)}


def orphans(state: StackState, snapshot: date) -> list[str]:
    """Objects under the snapshot's stage prefixes that no current manifest lists."""
    bucket = gcs(state).bucket(BUCKET)
    out = []
    for stage in STAGES_WITH_FILES:
        name = layout.manifest_name(stage, snapshot)
        blob = bucket.get_blob(name)
        listed = {f.name for f in Manifest.from_bytes(blob.download_as_bytes(), name).files} if blob else set()
        out += [
            b.name
            for b in bucket.list_blobs(prefix=layout.prefix(stage, snapshot))
            if b.name != name and b.name not in listed
        ]
    return out


def run_folders(state: StackState, stage: layout.Stage, snapshot: date) -> set[str]:
    return {
        f.path
        for b in gcs(state).list_blobs(BUCKET, prefix=layout.prefix(stage, snapshot))
        if (f := layout.parse_run_folder(b.name)) is not None
    }


# -- driving the functions by hand ------------------------------------------------------------------


def deliver(state: StackState, fn: str, name: str, generation: int, age: timedelta = timedelta(0)) -> int:
    """POST the finalize CloudEvent of ``name#generation`` to ``fn``, as Eventarc would; the HTTP status."""
    when = (datetime.now(UTC) - age).isoformat()
    event = storage_cloud_event(
        {"bucket": BUCKET, "name": name, "generation": str(generation)}, f"test-{name}#{generation}-{time.time()}", when
    )
    headers, body = to_binary(event)
    return requests.post(state.url(fn) + "/", headers=headers, data=body, timeout=300).status_code


def push_tick(state: StackState, message: dict[str, Any], message_id: str, age: timedelta = timedelta(0)) -> int:
    """POST a tick to extract in Pub/Sub's push format (what the push subscription sends)."""
    push = {
        "message": {
            "data": base64.b64encode(json.dumps(message).encode()).decode(),
            "messageId": message_id,
            "publishTime": (datetime.now(UTC) - age).isoformat().replace("+00:00", "Z"),
            "attributes": {},
        },
        "subscription": "projects/local-project/subscriptions/extract-push",
    }
    return requests.post(state.url("extract") + "/", json=push, timeout=300).status_code


def generation(state: StackState, name: str) -> int:
    blob = gcs(state).bucket(BUCKET).get_blob(name)
    return int(blob.generation) if blob is not None else 0


def manifest(state: StackState, stage: layout.Stage, snapshot: date) -> Manifest | None:
    name = layout.manifest_name(stage, snapshot)
    blob = gcs(state).bucket(BUCKET).get_blob(name)
    return Manifest.from_bytes(blob.download_as_bytes(), name) if blob is not None else None


def wait_loaded(state: StackState, run_id: str, timeout: float = 120.0) -> None:
    assert wait_for_run(bq(state), settings(state), run_id, timeout, env=state.env()) == 0, f"run {run_id} did not load"


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what or predicate}")


def clean_run(state: StackState, snapshot: date = CLEAN, run_id: str = "rel-clean") -> dict[str, str]:
    """A clean run's content hashes, with a warm cache (as every later run of the session has)."""
    run_pipeline(state, snapshot, f"{run_id}-1")
    extract = manifest(state, "extract", snapshot)
    assert extract is not None
    if any("/artists/" in f.name or "/audio_features/" in f.name for f in extract.files):
        run_pipeline(state, snapshot, f"{run_id}-2")  # the first run of the session filled the cache
    quiet(state)
    hashes = content_hashes(state, snapshot)
    assert "no manifest" not in hashes.values()
    return hashes


def quiet(state: StackState, seconds: float = 2.0, timeout: float = 120.0) -> None:
    """Wait until the Eventarc stand-in has delivered nothing for ``seconds``."""
    journal = Path(state.root) / "deliveries.jsonl"
    deadline = time.monotonic() + timeout
    size = -1
    while time.monotonic() < deadline:
        now = journal.stat().st_size if journal.exists() else 0
        if now == size:
            return
        size = now
        time.sleep(seconds)
    raise AssertionError("the Eventarc stand-in kept delivering")


def deliveries(state: StackState) -> list[dict[str, Any]]:
    journal = Path(state.root) / "deliveries.jsonl"
    out = []
    for line in journal.read_text().splitlines() if journal.exists() else []:
        d = json.loads(line)
        d["data"] = json.loads(d["body"])
        out.append(d)
    return out


def log_lines(state: StackState, fn: str) -> list[dict[str, Any]]:
    """The JSON lines a function process wrote (its stdout); other lines are skipped."""
    out = []
    for line in (Path(state.root) / "logs" / f"function-{fn}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


def runs_of(state: StackState, run_id: str) -> list[dict[str, Any]]:
    return query(
        state,
        "SELECT stage, status, error, snapshot_date FROM pipeline_runs WHERE run_id = @r ORDER BY finished_at",
        r=run_id,
    )


# -- crashing a process, healing the stack ----------------------------------------------------------


def crash(state: StackState, name: str) -> int:
    """SIGKILL process ``name`` of the stack (its whole group), leaving state.json as a crash leaves it."""
    pid = state.pids[name]
    processes.kill(pid)
    return pid


def stack_up_command(state: StackState) -> subprocess.CompletedProcess[str]:
    """`spotify-pipeline stack up` through the real command, with no pipeline setting (as the session's
    stack was started)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "GOOGLE_")) and "EMULATOR" not in k}
    return subprocess.run(
        [sys.executable, "-m", "spotify_pipeline_tools.cli.main", "--stack-dir", str(state.root), "stack", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def stack_up(state: StackState) -> list[str]:
    """:func:`stack_up_command`, which must succeed; ``state`` takes the PIDs it recorded. Returns the
    processes it restarted."""
    out = stack_up_command(state)
    assert out.returncode == 0, out.stdout + out.stderr
    reloaded = StackState.load(Path(state.root))
    assert reloaded is not None
    state.pids = reloaded.pids
    healed = re.search(r"^stack healed in [\d.]+ s: restarted (.+?);", out.stdout, re.M)
    return healed[1].split(", ") if healed else []


# -- a fault-injecting proxy in front of an emulator ------------------------------------------------

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


def upload_of(name: str) -> re.Pattern[bytes]:
    """Matches the body of a simple or multipart upload of object ``name``."""
    return re.compile(rb'"name":\s*"' + re.escape(name.encode()) + rb'"')


BIGQUERY_JOB = re.compile(rb'"configuration"\s*:')  # the body of a BigQuery jobs.insert (load or query)


class HoldingProxy:
    """Forwards everything to an emulator (GCS or BigQuery), except that the ``nth`` request whose
    body matches ``hold`` waits:

    * ``mode="drop"``: it waits until :meth:`release`, then is dropped (the connection closes
      unanswered): a process killed while sending it;
    * ``mode="pause"``: it waits until :meth:`release`, then is forwarded (a slow request);
    * ``mode="reorder"``: it waits until the next matching one has been forwarded, then is
      forwarded itself: two writers racing, the first to start finishing last.
    """

    def __init__(self, upstream: str, hold: re.Pattern[bytes], mode: str = "drop", nth: int = 1) -> None:
        self.upstream, self.hold, self.mode, self.nth = upstream.rstrip("/"), hold, mode, nth
        self.held = threading.Event()
        self.released = threading.Event()
        self.second_done = threading.Event()
        self.statuses: list[int] = []  # of the matching uploads, in the order answered
        self._matched = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.hold.search(body):
                    with proxy._lock:
                        proxy._matched += 1
                        first = proxy._matched == proxy.nth
                    if first and proxy.mode in ("drop", "pause"):
                        proxy.held.set()
                        proxy.released.wait(120)
                        if proxy.mode == "drop":
                            self.close_connection = True
                            return  # dropped: never reaches the emulator, never answered
                    if first and proxy.mode == "reorder":
                        proxy.held.set()
                        proxy.second_done.wait(60)
                    status = self._forward(body)
                    with proxy._lock:
                        proxy.statuses.append(status)
                    if proxy._matched > proxy.nth:
                        proxy.second_done.set()
                    return
                self._forward(body)

            def _forward(self, body: bytes) -> int:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP | {"host"}}
                resp = requests.request(
                    self.command, proxy.upstream + self.path, headers=headers, data=body, stream=True, timeout=120
                )
                content = resp.raw.read(decode_content=False)
                self.send_response(resp.status_code)
                for k, v in resp.raw.headers.items():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
                return resp.status_code

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.second_done.set()
        self.server.shutdown()
        self.server.server_close()
