"""Run requests from the command line: the flags of ``run`` and ``trigger``; ``inbox put FILE``.

Every run-request field (:data:`spotify_pipeline.events.RUN_REQUEST_FIELDS`) has one entry in
:data:`REQUEST_FLAGS`, which both commands turn into their flags, so a new field cannot be forgotten
by either (a test checks it). The assembled request is validated by
:func:`spotify_pipeline.events.parse_run_request`, the code extract runs, against the settings the
functions use, so the CLI refuses what extract would refuse, with extract's message, before publishing.

Each request carries its own ``run_id`` (``run-<UTC time>-<random>``) unless ``--run-id`` names one:
run ids derived from Pub/Sub message ids would repeat after an emulator restart.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click

from spotify_pipeline import layout
from spotify_pipeline.config import Settings, parse_playlists
from spotify_pipeline.events import RunRequest, check_run_request_size, parse_run_request
from spotify_pipeline.sources import CHART_SOURCES, FEATURE_PROVIDERS
from spotify_pipeline_tools.cli.app import RUN_TIMEOUT_SECONDS, Command, timeout_option
from spotify_pipeline_tools.cli.errors import BAD_INPUT, CliError
from spotify_pipeline_tools.cli.target import TargetChoice, target_options


@dataclass(frozen=True)
class RequestFlag:
    """One run-request field as a command-line flag."""

    field: str
    help: str
    kind: Literal["text", "list", "map", "bool"] = "text"  # list: comma separated; map: MARKET=ID,... or JSON
    metavar: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


REQUEST_FLAGS: tuple[RequestFlag, ...] = (
    RequestFlag(
        "snapshot_date",
        "chart week (default: today, UTC; a chart file: every date it holds)",
        metavar="YYYY-MM-DD",
    ),
    RequestFlag(
        "markets",
        "markets this run replaces, comma separated, e.g. GLOBAL,BR (default: PIPELINE_MARKETS; a chart file: all)",
        "list",
        "M,..",
    ),
    RequestFlag(
        "remove_markets",
        "markets to drop from the stored week (needs --snapshot-date; not with --markets naming them)",
        "list",
        "M,..",
    ),
    RequestFlag("run_id", "run id (default: run-<UTC time>-<random>, unique across stack restarts)", metavar="ID"),
    RequestFlag(
        "playlists",
        "chart playlist per market for this run, MARKET=ID,... or JSON (default: PIPELINE_PLAYLISTS)",
        "map",
        "M=ID,..",
    ),
    RequestFlag(
        "chart_source", "where chart membership comes from (default: PIPELINE_CHART_SOURCE)", choices=CHART_SOURCES
    ),
    RequestFlag(
        "charts_csv",
        "chart file (charts.spotify.com or Kaggle CSV): a local path (uploaded to uploads/<run id>/) or "
        "gs://BUCKET/NAME; implies --chart-source charts-csv",
        metavar="PATH",
    ),
    RequestFlag(
        "feature_providers",
        f"audio-feature providers in order among {', '.join(FEATURE_PROVIDERS)} (default: PIPELINE_FEATURE_PROVIDERS)",
        "list",
        "P,..",
    ),
    RequestFlag(
        "dataset_features",
        "use the features inside a chart file before the providers (default: PIPELINE_DATASET_FEATURES)",
        "bool",
    ),
    RequestFlag("force_gates", "load even if a data-quality gate fails (recorded in pipeline_runs)", "bool"),
)


def request_options(command: Callable[..., int]) -> Callable[..., int]:
    """One flag per :data:`REQUEST_FLAGS` entry; the command receives them as one ``request_flags``
    mapping (field -> value given, None when not given)."""

    @functools.wraps(command)
    def with_request(*args: Any, **kwargs: Any) -> int:
        request_flags = {f.field: kwargs.pop(f.field) for f in REQUEST_FLAGS}
        return command(*args, request_flags=request_flags, **kwargs)

    decorated: Callable[..., int] = with_request
    for f in reversed(REQUEST_FLAGS):
        if f.kind == "bool":
            option = click.option(f"{f.flag}/--no-{f.flag[2:]}", f.field, default=None, help=f.help)
        else:
            choice = click.Choice(f.choices) if f.choices else None
            option = click.option(f.flag, f.field, metavar=f.metavar, type=choice, help=f.help)
        decorated = option(decorated)
    return decorated


def request_payload(request_flags: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The run request the flags describe (fields not given are left to extract's defaults)."""
    payload: dict[str, Any] = {"run_id": run_id}
    for f in REQUEST_FLAGS:
        raw = request_flags.get(f.field)
        if raw is None:
            continue
        if f.kind == "list":
            payload[f.field] = [item.strip() for item in raw.split(",") if item.strip()]
        elif f.kind == "map":
            payload[f.field] = parse_playlists(raw, f.flag)
        else:
            payload[f.field] = raw
    return payload


def prepare_request(
    request_flags: Mapping[str, Any], settings: Settings, env: Mapping[str, str], run_id: str
) -> tuple[dict[str, Any], RunRequest, int]:
    """The validated request to publish, and how many snapshots its run loads (a chart file: one per
    date). A local chart file is checked as extract will check it, then uploaded; raises InvalidEvent,
    ConfigError, DataError or OSError with a message naming the field and value."""
    payload = request_payload(request_flags, run_id)
    chart_path: str | None = payload.get("charts_csv")
    if chart_path:
        payload["charts_csv"] = "uploads/pending.csv"  # validated first, replaced once uploaded
    check_run_request_size(json.dumps(payload).encode(), "run request")  # before parsing, as extract
    request = parse_run_request(payload, settings, default_run_id=run_id)
    expected_loads = 1
    if chart_path:
        payload["charts_csv"], expected_loads = stage_chart_file(chart_path, request, settings, env)
    check_run_request_size(json.dumps(payload).encode(), "run request")  # with the uploaded name
    return payload, request, expected_loads


def _chart_dates(data: bytes, name: str, request: RunRequest | None) -> int:
    """How many snapshots extract makes of this chart file (parsed with extract's own code)."""
    from spotify_pipeline.extract import select_entries
    from spotify_pipeline.sources.charts_csv import parse_chart_csv

    snapshot = request.snapshot_date if request is not None and request.snapshot_date_given else None
    market = request.markets[0] if request is not None and len(request.markets) == 1 else None
    chart = parse_chart_csv(data, name, snapshot_date=snapshot, market=market)
    entries = select_entries(chart, request) if request is not None else chart.entries
    return len({e.snapshot_date for e in entries})


def stage_chart_file(path: str, request: RunRequest, settings: Settings, env: Mapping[str, str]) -> tuple[str, int]:
    """Check a chart file as extract will, put it in the data bucket (``uploads/<run id>/``, which
    starts nothing: only ``inbox/`` does) and return its pinned object name and its snapshot count."""
    from spotify_pipeline.clients import storage_client
    from spotify_pipeline.events import parse_chart_ref

    bucket = storage_client(settings.project, env).bucket(settings.bucket)
    if path.startswith("gs://"):
        ref = parse_chart_ref(path, settings.bucket, "--charts-csv")
        blob = bucket.get_blob(ref.name, generation=ref.generation)
        if blob is None:
            raise CliError(f"--charts-csv {path}: no such object in gs://{settings.bucket}", code=BAD_INPUT)
        data, name, generation = blob.download_as_bytes(), ref.name, int(blob.generation)
    else:
        data, name = Path(path).read_bytes(), Path(path).name
    dates = _chart_dates(data, name, request)
    if not path.startswith("gs://"):
        name = f"{layout.UPLOADS_PREFIX}{request.run_id}/{name}"
        blob = bucket.blob(name)
        blob.upload_from_string(data, content_type="text/csv")
        generation = int(blob.generation or 0)
    return f"{name}#{generation}", dates


def put_in_inbox(path: str, settings: Settings, env: Mapping[str, str], name: str | None) -> tuple[str, int, int]:
    """Upload a local chart file to ``inbox/`` (after extract's own parse of it); return the object
    name, its generation and how many snapshots its run loads."""
    from spotify_pipeline.clients import storage_client
    from spotify_pipeline.events import parse_chart_ref
    from spotify_pipeline.runtime import INBOX_PREFIX, is_inbox_chart

    object_name = INBOX_PREFIX + (name or Path(path).name)
    if not is_inbox_chart(object_name):
        raise CliError(
            f"{object_name}: only inbox/<name>.csv starts a run; give the file (or --name) a .csv name", code=BAD_INPUT
        )
    parse_chart_ref(object_name, settings.bucket, "inbox put", "--name")  # the rule ingest applies, before uploading
    data = Path(path).read_bytes()
    snapshots = _chart_dates(data, object_name, None)
    blob = storage_client(settings.project, env).bucket(settings.bucket).blob(object_name)
    blob.upload_from_string(data, content_type="text/csv")
    return object_name, int(blob.generation or 0), snapshots


@click.command("inbox", cls=Command, help="put a chart file into the bucket's inbox/, which starts a run for it")
@click.argument(
    "action",
    type=click.Choice(["put"]),
    help="put: upload FILE to inbox/ (as `gcloud storage cp FILE gs://BUCKET/inbox/`)",
)
@click.argument("file", metavar="FILE", help="local chart file (charts.spotify.com or Kaggle CSV)")
@click.option("--name", help="object name under inbox/ (default: the file's name; must end in .csv)")
@click.option("--wait", is_flag=True, help="follow the run it starts to its load")
@timeout_option(RUN_TIMEOUT_SECONDS, "with --wait: seconds to wait for load (default 300)")
@target_options(bucket=True)
def inbox_command(where: TargetChoice, action: str, file: str, name: str | None, wait: bool, timeout: float) -> int:
    """Put a chart file into the data bucket's inbox/, where ingest starts a run for it."""
    from spotify_pipeline.runtime import inbox_run_id
    from spotify_pipeline_tools.cli.follow import wait_for_run
    from spotify_pipeline_tools.cli.target import resolve

    target = resolve(where, running=True)
    target.announce()
    env, settings = target.env, target.settings
    object_name, generation, snapshots = put_in_inbox(file, settings, env, name)
    run_id = inbox_run_id(object_name, generation)
    print(f"put gs://{settings.bucket}/{object_name}#{generation}: run {run_id}, {snapshots} snapshot(s)", flush=True)
    if not wait:
        return 0
    client = target.connect()
    return wait_for_run(client, settings, run_id, timeout, expected_loads=snapshots, env=env)
