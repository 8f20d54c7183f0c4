"""``spotify-pipeline``: run, query and package the pipeline; bring the local stack up and down.

Every command acts on the target :mod:`spotify_pipeline_tools.cli.target` resolves (the local stack, or
Google Cloud with ``--project``) and names it first on stderr; failures follow the one policy of
:mod:`spotify_pipeline_tools.cli.errors`.

An option with an environment fallback is read, highest first, from the flag, then its variable
(click's ``envvar``), then its default: ``--project`` / ``SPOTIFY_PIPELINE_PROJECT`` (default: the
local stack), ``--stack-dir`` / ``SPOTIFY_PIPELINE_STACK_DIR`` (default: the checkout's ``.stack/``;
the flag is relative to this folder, the variable to the checkout), ``--debug`` /
``SPOTIFY_PIPELINE_DEBUG``. The pipeline's own settings (``PIPELINE_*``) are read by
:class:`spotify_pipeline.config.Settings` from the environment :func:`~spotify_pipeline.config.process_environment`
copies.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from spotify_pipeline.safe_text import write_csv
from spotify_pipeline.sources import ChartSource
from spotify_pipeline_tools.bq_query import QUERY_TIMEOUT_SECONDS
from spotify_pipeline_tools.cli import dashboard, ops, recommend, request
from spotify_pipeline_tools.cli.app import RUN_TIMEOUT_SECONDS, Command, make_group, timeout_option
from spotify_pipeline_tools.cli.app import run as run_group
from spotify_pipeline_tools.cli.errors import BAD_INPUT, CliError
from spotify_pipeline_tools.cli.follow import wait_for_run
from spotify_pipeline_tools.cli.publish import publish_request
from spotify_pipeline_tools.cli.request import request_options
from spotify_pipeline_tools.cli.target import (
    CONNECT_SECONDS,
    TargetChoice,
    announce_stack,
    open_warehouse,
    resolve,
    stack_choice,
    stack_root,
    target_options,
)


@click.command("stack", cls=Command, help="bring the local stack up or down")
@click.argument(
    "action",
    type=click.Choice(["up", "down", "status"]),
    help="up: start it (or apply changed PIPELINE_* settings to its functions); down: stop every process; "
    "status: up or down (exit 1 when down)",
)
@click.option("--wipe", is_flag=True, help="with down: delete the persisted objects and tables too")
@click.option("--no-pubsub", is_flag=True, help="with up: run without the Pub/Sub emulator")
def stack_command(action: str, wipe: bool, no_pubsub: bool) -> int:
    from spotify_pipeline_tools.stack import local, processes
    from spotify_pipeline_tools.stack.state import StackState, checkout

    root = stack_root(stack_choice())
    announce_stack(root)
    if action == "up":
        print("starting the local stack:", flush=True)
        local.up(root, checkout(), use_pubsub=not no_pubsub)
    elif action == "down":
        local.down(root, wipe=wipe)
    else:
        state = StackState.load(root)
        if state is None or not state.pids:
            print(f"down (no stack running in {root})")
            return 1
        stopped = [name for name, pid in state.pids.items() if not processes.alive(pid)]
        print(
            f"up ({root})"
            if not stopped
            else f"down: {', '.join(stopped)} stopped (`stack up` restarts only those, on the same ports)"
        )
        for name, pid in state.pids.items():
            running = "running" if processes.alive(pid) else "STOPPED"
            print(f"  {name:<12} pid {pid:<8} {running}  port {state.ports.get(name)}")
        return 1 if stopped else 0
    return 0


def _use_env(env: Mapping[str, str]) -> None:
    # Written, never read: the Google clients take the emulator variables from the process environment.
    os.environ.update(env)


def run_pipeline(where: TargetChoice, request_flags: Mapping[str, Any], timeout: float) -> int:
    """Publish a run request and follow it to its load (``run``, and the demo's run)."""
    target = resolve(where, running=True)
    client = target.connect(min(timeout, CONNECT_SECONDS))  # before publishing: an unusable warehouse fails now
    _use_env(target.env)
    settings, payload, run_request, expected_loads, message_id = publish_request(target, request_flags, "run", client)
    if run_request.chart_source == ChartSource.CHARTS_CSV:
        markets = ", ".join(run_request.markets) or "all"
        what = f"chart file {payload['charts_csv']}: {expected_loads} snapshot(s), markets {markets}"
    else:
        what = f"snapshot {run_request.snapshot_date}, markets {', '.join(run_request.markets) or 'none'}"
    if run_request.remove_markets:
        what += f", removing {', '.join(run_request.remove_markets)}"
    print(f"published run {run_request.run_id} ({what}; message {message_id})", flush=True)
    return wait_for_run(client, settings, run_request.run_id, timeout, expected_loads=expected_loads, env=target.env)


@click.command("run", cls=Command, help="publish a run request and follow it to the load")
@request_options
@timeout_option(RUN_TIMEOUT_SECONDS, "seconds to wait for load (default 300)")
@target_options()
def run_command(where: TargetChoice, request_flags: dict[str, Any], timeout: float) -> int:
    return run_pipeline(where, request_flags, timeout)


@click.command(
    "trigger",
    cls=Command,
    help="publish a run request now (deployed topic with --project, else the local stack)",
)
@target_options(topic=True)
@request_options
@click.option("--wait", is_flag=True, help="follow the run to its load, as `run` does")
@timeout_option(RUN_TIMEOUT_SECONDS, "with --wait: seconds to wait for load (default 300)")
def trigger_command(where: TargetChoice, request_flags: dict[str, Any], wait: bool, timeout: float) -> int:
    """Publish one run request to the deployed topic (or the local stack's); with --wait, follow it."""
    target = resolve(where, running=True)
    target.announce()
    env = target.env
    client = target.connect() if wait or request_flags.get("run_id") else None
    settings, payload, run_request, expected_loads, message_id = publish_request(
        target, request_flags, "trigger", client
    )
    topic = f"projects/{env['GOOGLE_CLOUD_PROJECT']}/topics/{env['PIPELINE_TICKS_TOPIC']}"
    print(f"published {json.dumps(payload)} to {topic} (message {message_id})", flush=True)
    if wait:
        return wait_for_run(client, settings, run_request.run_id, timeout, expected_loads=expected_loads, env=env)
    print(
        f"follow it: spotify-pipeline status, or spotify-pipeline query "
        f"\"SELECT * FROM pipeline_runs WHERE run_id = '{run_request.run_id}'\""
        + (f" --project {target.settings.project}" if target.state is None else "")
    )
    return 0


@click.command("query", cls=Command, help="run SQL on the warehouse (local stack, or BigQuery with --project)")
@click.argument("sql", help="the query; unqualified table names resolve to the pipeline's dataset")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv"]),
    default="table",
    help="output format (default table)",
)
@timeout_option(QUERY_TIMEOUT_SECONDS, "seconds before the query is cancelled (120)")
@target_options()
def query_command(where: TargetChoice, sql: str, output_format: str, timeout: float) -> int:
    from spotify_pipeline_tools.bq_query import run_query

    if not sql.strip():
        raise CliError(
            'empty SQL: give a statement, e.g. spotify-pipeline query "SELECT COUNT(*) FROM tracks"', code=BAD_INPUT
        )
    target = resolve(where, running=False)
    with open_warehouse(target, min(timeout, CONNECT_SECONDS)) as client:
        project, dataset = target.settings.project, target.settings.dataset
        result = run_query(client, sql, "the query", default_dataset=f"{project}.{dataset}", timeout=timeout)
        names = result.columns
        values = [list(row.values()) for row in result.rows]
    rows = [[_fmt(v) for v in row] for row in values]
    if output_format == "csv":
        write_csv(sys.stdout, names, values, _fmt)
    else:
        widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
        print("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for r in rows:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    return 0


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


@click.command("demo", cls=Command, help="stack up, one run on the demo catalogue, summary, stack down")
@click.option("--snapshot-date", help="YYYY-MM-DD (default: today, UTC)")
@timeout_option(RUN_TIMEOUT_SECONDS, "seconds to wait for load (default 300)")
def demo_command(snapshot_date: str | None, timeout: float) -> int:
    """Stack up, one weekly run on the synthetic catalogue, where to look, stack down."""
    from spotify_pipeline_tools.stack import local
    from spotify_pipeline_tools.stack.state import BUCKET, StackState, checkout

    root = stack_root(stack_choice())
    announce_stack(root)
    began = time.monotonic()
    existing = StackState.load(root)
    ours = not (existing is not None and existing.running())  # a stack it did not start, it leaves running
    print(
        "== 1/3  starting the local stack (emulators, Spotify stand-in, five functions)"
        if ours
        else f"== 1/3  using the running stack in {root} (left running afterwards)",
        flush=True,
    )
    try:
        if ours:
            local.up(root, checkout())
        up_seconds = time.monotonic() - began
        print("\n== 2/3  one weekly run: tick -> extract -> transform -> recommend -> load", flush=True)
        # The demo's run is the local stack's, whatever SPOTIFY_PIPELINE_PROJECT says.
        where = TargetChoice(stack_dir=str(root), stack_only=True)
        code = run_pipeline(where, {"snapshot_date": snapshot_date}, timeout)
        run_seconds = time.monotonic() - began - up_seconds
    finally:
        if ours:
            print("\n== 3/3  stopping the stack (state is kept)", flush=True)
            local.down(root)
    if code != 0:
        return code
    print(f"""
Timing: stack up {up_seconds:.1f} s, run {run_seconds:.1f} s{"" if ours else " (stack left running)"}.
The data is SYNTHETIC (the stand-in's demo catalogue), not real Spotify charts.
Where to look:
  tables     spotify-pipeline query "SELECT * FROM recommendations WHERE rank <= 3 LIMIT 20"
             spotify-pipeline query "SELECT * FROM pipeline_runs ORDER BY started_at DESC"
             spotify-pipeline query "SELECT * FROM run_outcomes ORDER BY decided_at DESC"  (how each run ended)
  bucket     {root / "gcs" / BUCKET}  (extract/, transform/, recommend/, load/ by snapshot; runs/)
  warehouse  {root / "bigquery"}  (BigQuery emulator's DuckDB file)
  logs       {root / "logs"}  (one file per process; functions log JSON lines)
(`spotify-pipeline` is .venv/bin/spotify-pipeline; `make clean` wipes the state.)""")
    return 0


@click.command("package", cls=Command, help="build one deployable zip per function")
@click.option("--functions", help="folder of the functions' sources (default: the checkout's functions/)")
@click.option("--out", help="folder for the zips (default: the checkout's build/functions/, where infra/ reads them)")
def package_command(functions: str | None, out: str | None) -> int:
    from spotify_pipeline_tools.packaging import build
    from spotify_pipeline_tools.stack.state import checkout

    # From the checkout, wherever the command runs (as every other command's defaults).
    sources = Path(functions) if functions else checkout() / "functions"
    target = Path(out) if out else checkout() / "build" / "functions"
    for fn, (path, sha) in build(sources, target).items():
        print(f"{fn:<10} {path}  sha256 {sha[:16]}  {path.stat().st_size // 1024} KiB")
    return 0


COMMANDS: tuple[click.Command, ...] = (
    stack_command,
    run_command,
    trigger_command,
    query_command,
    demo_command,
    package_command,
    recommend.recommend_command,
    dashboard.dashboard_command,
    *ops.COMMANDS,
    request.inbox_command,
)
GROUP = make_group(__doc__.splitlines()[0] if __doc__ else "", COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    return run_group(GROUP, argv)


if __name__ == "__main__":
    sys.exit(main())
