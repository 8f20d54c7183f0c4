"""The local stack's names and its state file: what every part of the stack (and the CLI) reads
about a stack without starting anything. :mod:`.local` starts and stops it; :mod:`.launch`,
:mod:`.settings` and :mod:`.eventarc` import from here, so none of them imports :mod:`.local`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spotify_pipeline_tools.stack import processes

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
EMULATORS = ("gcs", "bigquery", "spotify")
# Start order: each group once the one before serves (the GCS emulator publishes to Pub/Sub, the
# functions need the emulators, the Eventarc stand-in calls the functions).
START_GROUPS = (("pubsub",), EMULATORS, FUNCTIONS, ("eventarc",))
PROCESSES = tuple(name for group in START_GROUPS for name in group)


@dataclass
class StackState:
    root: Path
    repo: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    pubsub: bool = True
    # The caller's pipeline settings the functions were started with (see stack.settings.function_settings).
    settings: dict[str, str] = field(default_factory=dict)
    # The Eventarc stand-in's EVENTARC_STANDIN_* settings (see stack.settings.eventarc_settings).
    eventarc_settings: dict[str, str] = field(default_factory=dict)

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
            eventarc_settings=body.get("eventarc_settings", {}),
        )

    def processes(self) -> tuple[str, ...]:
        """The processes this stack runs, in start order."""
        return tuple(name for name in PROCESSES if self.pubsub or name != "pubsub")

    def running(self) -> bool:
        return bool(self.pids) and not self.missing()

    def missing(self) -> list[str]:
        """The processes of this stack not running (never started, stopped, or dead), in start order."""
        return [name for name in self.processes() if name not in self.pids or not processes.alive(self.pids[name])]

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


# The checkout this package is installed from (editable install): src/spotify_pipeline_tools/stack/state.py.
CHECKOUT = Path(__file__).resolve().parents[3]


def checkout() -> Path:
    """The repository whose functions/ and .venv-emulators/ the stack runs, whatever the current folder."""
    if not (CHECKOUT / "functions").is_dir():
        raise RuntimeError(
            f"spotify_pipeline is not installed from a checkout of the repository ({CHECKOUT} has no functions/): "
            "run `make setup` in the checkout"
        )
    return CHECKOUT


def default_root(given: str | None = None) -> Path:
    """The state folder: ``given`` (the CLI's reading of it), else $SPOTIFY_PIPELINE_STACK_DIR, relative to
    the checkout, else the checkout's .stack/. Never the current folder, so every command acts on the
    same stack wherever it is run from."""
    if given is None:
        given = os.environ.get("SPOTIFY_PIPELINE_STACK_DIR", "")
    return (CHECKOUT / (given.strip() or ".stack")).resolve()  # an absolute value replaces CHECKOUT


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
