"""``spotify-pipeline stack up|down``: the whole suite on this machine.

Processes (all bound to 127.0.0.1, ports chosen at ``up`` and kept in ``state.json``):

* Google's Pub/Sub emulator (the Cloud SDK's jar, run directly so its PID is the java process);
* fake-gcs-server (GCS emulator; enforces generation preconditions, publishes OBJECT_FINALIZE
  notifications to the Pub/Sub emulator, as a bucket notification would);
* bqemulator (BigQuery emulator, DuckDB file under the state folder);
* the Spotify Web API stand-in with its synthetic demo catalogue;
* one functions-framework server per function;
* the Eventarc stand-in, turning bucket notifications into ``object.v1.finalized`` CloudEvents
  for transform, recommend and load, and a push subscription delivering ticks to extract.

State (objects, tables, the Eventarc stand-in's pending deliveries) persists in the state folder
until ``stack down --wipe``. ``stack up`` on a stack whose processes died brings back only those, on
their recorded ports (docs/local-stack.md: how the stack fails and heals).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from spotify_pipeline_tools.stack import launch, processes
from spotify_pipeline_tools.stack.settings import checked, describe_settings, eventarc_settings, function_settings
from spotify_pipeline_tools.stack.state import (
    BUCKET,
    BUCKET_TRIGGERED,
    DATASET,
    EMULATORS,
    FUNCTIONS,
    GCS_TOPIC,
    PROCESSES,
    PROJECT,
    START_GROUPS,
    StackState,
    pubsub_emulator_jar,
)


def _say(msg: str) -> None:
    print(msg, flush=True)


def up(
    root: Path, repo: Path, *, use_pubsub: bool = True, quiet: bool = False, environ: Mapping[str, str] | None = None
) -> StackState:
    """Start the stack; or, when one was started here and not brought down, bring back each of its
    processes that is missing (same port, same data) and leave the running ones alone. The functions
    get ``environ``'s pipeline settings (default: this process's environment); functions running with
    other settings are restarted with these."""
    environ = os.environ if environ is None else environ
    say = (lambda m: None) if quiet else _say
    existing = StackState.load(root)
    if existing is not None and existing.pids:
        return _heal(existing, environ, say)
    started = time.monotonic()
    jar = pubsub_emulator_jar() if use_pubsub else None
    state = StackState(root=root, repo=repo, pubsub=jar is not None)
    for name in (*PROCESSES, "bigquery_grpc"):
        state.ports[name] = processes.free_port()
    state.settings = checked(function_settings(state, environ))
    state.eventarc_settings = eventarc_settings(environ)
    state.save()
    if jar is None:
        say(
            "  pubsub emulator      MISSING (no Cloud SDK / Java): ticks go to extract directly as "
            "messagePublished CloudEvents; bucket events come from polling the GCS emulator"
        )
    try:
        for name, pid in _start(state, state.processes()):
            say(f"  {_describe(state, name, pid)}")
    except BaseException:
        down(root, quiet=True)
        raise
    say(describe_settings(state.settings))
    say(f"stack up in {time.monotonic() - started:.1f} s (state in {root})")
    return state


_DESCRIPTION = {  # name: (what, note) as `stack up` prints them
    "pubsub": ("pubsub emulator", "Cloud SDK jar"),
    "gcs": ("GCS emulator", "fake-gcs-server, data in {root}/gcs"),
    "bigquery": ("BigQuery emulator", "bqemulator, data in {root}/bigquery"),
    "spotify": ("Spotify stand-in", "synthetic demo catalogue; ReccoBeats under /reccobeats"),
    **{fn: (f"function {fn}", "functions-framework, cloudevent") for fn in FUNCTIONS},
    "eventarc": ("Eventarc stand-in", "bucket finalize -> ingest, transform, recommend, load"),
}


def _describe(state: StackState, name: str, pid: int) -> str:
    what, note = _DESCRIPTION[name]
    url = "" if name in launch.NO_PORT else state.url(name)
    return f"{what:<20} {url:<22}  ({note.format(root=state.root)}; pid {pid})"


def _start(state: StackState, names: Sequence[str]) -> list[tuple[str, int]]:
    """Start ``names`` (processes of ``state``) in dependency order, each group at once, and wait
    until each serves; the Pub/Sub topics and subscriptions after the emulator, the bucket and the
    dataset after the emulators. Returns (name, pid) in start order."""
    started: list[tuple[str, int]] = []
    for group in START_GROUPS:
        batch = [name for name in group if name in names]
        for name in batch:
            launch.check_ports_free(state, name)
        pids = {}
        for name in batch:
            pids[name] = state.pids[name] = launch.spawn(state, name)
            state.save()
        for name in batch:
            launch.wait_ready(state, name, pids[name])
            started.append((name, pids[name]))
        if group == ("pubsub",) and batch:
            launch.create_subscriptions(state)
        if group == EMULATORS:
            _provision(state)
    return started


def _heal(state: StackState, environ: Mapping[str, str], say: Callable[[str], None]) -> StackState:
    started = time.monotonic()
    missing = state.missing()
    wanted = checked(function_settings(state, environ))
    changed = sorted(k for k in {*wanted, *state.settings} if wanted.get(k) != state.settings.get(k))
    state.settings = wanted
    if missing:
        if "pubsub" in missing and pubsub_emulator_jar() is None:
            raise RuntimeError(
                "the Pub/Sub emulator is down and the Cloud SDK jar or Java is gone: `stack down`, `stack up`"
            )
        for name, pid in _start(state, missing):
            say(f"  restarted {_describe(state, name, pid)}")
        if "pubsub" in missing:
            count = republish_missed_notifications(state)
            say(f"  republished {count} bucket notifications finalized since the stand-in's last event")
    else:
        _provision(state)  # a table dropped by hand comes back (empty), as `terraform apply` would bring it
    if changed:
        restart_functions(state)
        say(f"settings changed ({', '.join(changed)}): restarted the functions")
    left = [name for name in state.processes() if name not in missing]
    if missing:
        say(
            f"stack healed in {time.monotonic() - started:.1f} s: restarted {', '.join(missing)}; "
            f"{len(left)} running processes left alone (state in {state.root})"
        )
    else:
        say(f"stack already up (state in {state.root})")
    say(describe_settings(state.settings))
    return state


def republish_missed_notifications(state: StackState, slack: float = 10.0) -> int:
    """After the Pub/Sub emulator restarted, its backlog is gone and notifications published while it
    was down went nowhere. Publish again the finalize notification of every object updated since the
    oldest of the Eventarc stand-in's latest events per function (less ``slack`` seconds, for
    notifications received out of order): at least once, as GCS notifies; the functions skip
    duplicates. The count published."""

    from spotify_pipeline.clients import publisher_client, storage_client
    from spotify_pipeline_tools.stack.eventarc import WATERMARK_FILE, object_resource

    path = state.root / WATERMARK_FILE
    marks = json.loads(path.read_text()) if path.exists() else {}
    since = min((marks.get(fn, 0.0) for fn in BUCKET_TRIGGERED), default=0.0) - slack
    publisher = publisher_client(state.env())
    topic = publisher.topic_path(PROJECT, GCS_TOPIC)
    futures = []
    for blob in storage_client(PROJECT, state.env()).list_blobs(BUCKET):
        if blob.updated is None or blob.updated.timestamp() < since:
            continue
        attributes = {
            "bucketId": BUCKET,
            "objectId": blob.name,
            "objectGeneration": str(blob.generation),
            "eventType": "OBJECT_FINALIZE",
            "eventTime": blob.updated.isoformat(),
            "payloadFormat": "JSON_API_V1",
        }
        futures.append(publisher.publish(topic, json.dumps(object_resource(blob)).encode(), **attributes))
    for future in futures:
        future.result(timeout=30)
    return len(futures)


def restart_functions(state: StackState) -> None:
    """Stop every function at once, then start them again on their ports with ``state.settings``."""
    processes.stop_all([state.pids.pop(fn) for fn in FUNCTIONS if fn in state.pids])
    _start(state, FUNCTIONS)


DOWN_GRACE_SECONDS = 2.5  # SIGTERM to SIGKILL in `stack down`: the whole down stays under 5 s


def stop_process(state: StackState, name: str, *, kill: bool = False) -> None:
    """Stop one process of a running stack: SIGTERM (then SIGKILL), or at once with ``kill``
    (``kill -9`` of its whole process group, as a crash or an out-of-memory kill would)."""
    pid = state.pids.pop(name, None)
    if pid is not None:
        processes.kill(pid) if kill else processes.stop(pid)
    state.save()


def start_process(state: StackState, name: str, *, extra_env: Mapping[str, str] | None = None) -> int:
    """Start one process of the stack again, on its recorded port and with its data folder;
    ``extra_env`` overrides the environment it would get (a test pointing a function at a
    fault-injecting proxy). ``stack up`` does this for every missing process."""
    if name not in state.processes():
        raise ValueError(f"no process {name!r} in this stack; its processes: {', '.join(state.processes())}")
    if name in state.pids and processes.alive(state.pids[name]):
        raise RuntimeError(f"{name} is running (pid {state.pids[name]}); stop it first")
    launch.check_ports_free(state, name)
    pid = launch.spawn(state, name, extra_env)
    launch.wait_ready(state, name, pid)
    state.pids[name] = pid
    state.save()
    return pid


def restart_process(
    state: StackState, name: str, *, kill: bool = False, extra_env: Mapping[str, str] | None = None
) -> int:
    """:func:`stop_process` then :func:`start_process`: same port, same data, new pid."""
    stop_process(state, name, kill=kill)
    return start_process(state, name, extra_env=extra_env)


def start_bigquery_only(root: Path) -> tuple[StackState, int]:
    """For ``query`` while the stack is down: the BigQuery emulator alone on the persisted tables."""
    state = StackState.load(root)
    if state is None:
        raise RuntimeError(f"no local warehouse in {root}: run `spotify-pipeline stack up` and a run first")
    state.ports["bigquery"] = processes.free_port()
    state.ports["bigquery_grpc"] = processes.free_port()
    pid = launch.spawn_bigquery(state)
    processes.wait_for_port(state.ports["bigquery"], pid, "bigquery", state.logs)
    return state, pid


def _provision(state: StackState) -> None:
    from google.api_core.exceptions import Conflict

    from spotify_pipeline.clients import bigquery_client, storage_client
    from spotify_pipeline_tools.provision import ensure_dataset

    env = state.env()
    with contextlib.suppress(Conflict):
        storage_client(PROJECT, env).create_bucket(BUCKET)
    ensure_dataset(bigquery_client(PROJECT, "US", env), DATASET)


def down(root: Path, *, wipe: bool = False, quiet: bool = False) -> None:
    state = StackState.load(root)
    if state is not None:
        # All at once (a few seconds at most, whatever the number of processes); SIGKILL after the grace.
        processes.stop_all(state.pids.values(), grace=DOWN_GRACE_SECONDS)
        state.pids = {}
        state.save()
        (root / "eventarc.ready").unlink(missing_ok=True)
        if not quiet:
            print(f"stack down (state kept in {root})" if not wipe else "stack down", flush=True)
    if wipe and root.exists():
        shutil.rmtree(root)
        if not quiet:
            print(f"wiped {root}", flush=True)
