"""``spotify-pipeline``: run, query and package the pipeline; bring the local stack up and down.

Every command acts on the target :mod:`spotify_pipeline.cli_target` resolves (the local stack, or
Google Cloud with ``--project``) and names it first on stderr; failures follow the one policy of
:mod:`spotify_pipeline.cli_errors`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from spotify_pipeline.bq_query import QUERY_TIMEOUT_SECONDS
from spotify_pipeline.cli_errors import BAD_INPUT, CliError, run_command
from spotify_pipeline.cli_follow import wait_for_run
from spotify_pipeline.cli_target import (
    CONNECT_SECONDS,
    add_project_argument,
    announce_stack,
    open_warehouse,
    resolve,
    stack_root,
)
from spotify_pipeline.config import CliSettings, Settings
from spotify_pipeline.safe_text import write_csv
from spotify_pipeline.sources import ChartSource


def _use_env(env: Mapping[str, str]) -> None:
    # The Google clients read the emulator variables from the process environment.
    os.environ.update(env)


def cmd_stack(args: argparse.Namespace) -> int:
    from spotify_pipeline.stack import local, processes

    root = stack_root(args)
    announce_stack(root)
    if args.action == "up":
        print("starting the local stack:", flush=True)
        local.up(root, local.checkout(), use_pubsub=not args.no_pubsub)
    elif args.action == "down":
        local.down(root, wipe=args.wipe)
    else:
        state = local.StackState.load(root)
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


def publish_tick(env: Mapping[str, str], state: Any, message: dict[str, Any]) -> str:
    """Publish a run request as Cloud Scheduler would; without Pub/Sub, post the CloudEvent to extract."""
    data = json.dumps(message).encode()
    if state is None or state.pubsub:
        from spotify_pipeline.clients import publisher_client

        publisher = publisher_client(env)
        topic = publisher.topic_path(
            env["GOOGLE_CLOUD_PROJECT"], env.get("PIPELINE_TICKS_TOPIC", "spotify-pipeline-ticks")
        )
        return str(publisher.publish(topic, data).result(timeout=30))
    import requests
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent

    message_id = str(int(time.time() * 1000))
    event = CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": f"//pubsub.googleapis.com/projects/{env['GOOGLE_CLOUD_PROJECT']}/topics/ticks",
            "id": message_id,
        },
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": message_id,
                "publishTime": datetime.now(UTC).isoformat(),
            },
            "subscription": "direct",
        },
    )
    headers, body = to_binary(event)
    requests.post(state.url("extract") + "/", headers=headers, data=body, timeout=600)
    return message_id


def _function_settings(env: Mapping[str, str], state: Any) -> Settings:
    """The settings extract runs with, to validate a request as it will: the local functions' (what
    `stack up` gave them), else this environment's (a deployed function's, configured alike)."""
    if state is None:
        return Settings.from_env(env)
    from spotify_pipeline.stack.settings import function_settings

    here = function_settings(state, os.environ)
    differ = sorted(k for k in {*here, *state.settings} if here.get(k) != state.settings.get(k))
    if differ:
        print(
            f"note: this shell's {', '.join(differ)} differ from the local functions' settings (checked against "
            "theirs); `spotify-pipeline stack up` restarts them with this shell's",
            file=sys.stderr,
        )
    return Settings.from_env(state.function_env())


class Published(NamedTuple):
    settings: Settings  # the functions' settings the request was checked against
    payload: dict[str, Any]
    request: Any  # events.RunRequest
    expected_loads: int
    message_id: str


def _refuse_used_run_id(client: Any, settings: Settings, run_id: str) -> None:
    """A run id given by hand that ``pipeline_runs`` already holds would mix two runs' records (and
    the follower would read the old run's outcome): refused before publishing."""
    from google.cloud import bigquery

    from spotify_pipeline.bq_query import run_query

    sql = f"SELECT COUNT(*) AS n FROM `{settings.project}.{settings.dataset}.pipeline_runs` WHERE run_id = @r"
    params = [bigquery.ScalarQueryParameter("r", "STRING", run_id)]
    used = int(run_query(client, sql, f"the check that run id {run_id} is new", params=params).rows[0]["n"])
    if used:
        raise CliError(
            f"run id {run_id} is already recorded ({used} pipeline_runs rows)",
            "choose another --run-id, or leave it out for a fresh one",
            code=BAD_INPUT,
        )


def _publish_request(
    args: argparse.Namespace, env: dict[str, str], state: Any, kind: str, client: Any = None
) -> Published:
    """Assemble, validate (extract's own rules) and publish the request of ``run`` or ``trigger``; a
    refused request raises before anything is published (the CLI's error policy reports it)."""
    from spotify_pipeline.cli_request import prepare_request
    from spotify_pipeline.runlog import new_run_id

    settings = _function_settings(env, state)
    if args.run_id and client is not None:
        _refuse_used_run_id(client, settings, args.run_id)
    run_id = args.run_id or new_run_id(kind, datetime.now(UTC))
    payload, request, expected_loads = prepare_request(args, settings, env, run_id)
    return Published(settings, payload, request, expected_loads, publish_tick(env, state, payload))


def cmd_run(args: argparse.Namespace) -> int:

    target = resolve(args, running=True)
    env, state, settings = target.env, target.state, target.settings
    client = target.connect(min(args.timeout, CONNECT_SECONDS))  # before publishing: an unusable warehouse fails now
    _use_env(env)
    settings, payload, request, expected_loads, message_id = _publish_request(args, env, state, "run", client)
    if request.chart_source == ChartSource.CHARTS_CSV:
        markets = ", ".join(request.markets) or "all"
        what = f"chart file {payload['charts_csv']}: {expected_loads} snapshot(s), markets {markets}"
    else:
        what = f"snapshot {request.snapshot_date}, markets {', '.join(request.markets) or 'none'}"
    if request.remove_markets:
        what += f", removing {', '.join(request.remove_markets)}"
    print(f"published run {request.run_id} ({what}; message {message_id})", flush=True)
    return wait_for_run(client, settings, request.run_id, args.timeout, expected_loads=expected_loads, env=env)


def cmd_trigger(args: argparse.Namespace) -> int:
    """Publish one run request to the deployed topic (or the local stack's); with --wait, follow it."""
    target = resolve(args, running=True)
    target.announce()
    env, state = target.env, target.state
    client = target.connect() if args.wait or args.run_id else None
    settings, payload, request, expected_loads, message_id = _publish_request(args, env, state, "trigger", client)
    where = f"projects/{env['GOOGLE_CLOUD_PROJECT']}/topics/{env['PIPELINE_TICKS_TOPIC']}"
    print(f"published {json.dumps(payload)} to {where} (message {message_id})", flush=True)
    if args.wait:
        return wait_for_run(client, settings, request.run_id, args.timeout, expected_loads=expected_loads, env=env)
    print(
        f"follow it: spotify-pipeline status, or spotify-pipeline query "
        f"\"SELECT * FROM pipeline_runs WHERE run_id = '{request.run_id}'\""
        + (f" --project {target.settings.project}" if state is None else "")
    )
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from spotify_pipeline.bq_query import run_query

    if not args.sql.strip():
        raise CliError(
            'empty SQL: give a statement, e.g. spotify-pipeline query "SELECT COUNT(*) FROM tracks"', code=BAD_INPUT
        )
    target = resolve(args, running=False)
    with open_warehouse(target, min(args.timeout, CONNECT_SECONDS)) as client:
        project, dataset = target.settings.project, target.settings.dataset
        result = run_query(client, args.sql, "the query", default_dataset=f"{project}.{dataset}", timeout=args.timeout)
        names = result.columns
        values = [list(row.values()) for row in result.rows]
    rows = [[_fmt(v) for v in row] for row in values]
    if args.format == "csv":
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


def cmd_demo(args: argparse.Namespace) -> int:
    """Stack up, one weekly run on the synthetic catalogue, where to look, stack down."""
    from spotify_pipeline.stack import local

    root = stack_root(args)
    announce_stack(root)
    began = time.monotonic()
    existing = local.StackState.load(root)
    ours = not (existing is not None and existing.running())  # a stack it did not start, it leaves running
    print(
        "== 1/3  starting the local stack (emulators, Spotify stand-in, five functions)"
        if ours
        else f"== 1/3  using the running stack in {root} (left running afterwards)",
        flush=True,
    )
    try:
        if ours:
            local.up(root, local.checkout())
        up_seconds = time.monotonic() - began
        print("\n== 2/3  one weekly run: tick -> extract -> transform -> recommend -> load", flush=True)
        run_args = build_parser().parse_args(["--stack-dir", str(root), "run", "--timeout", str(args.timeout)])
        run_args.snapshot_date = args.snapshot_date
        run_args.stack_only = True  # the demo's run is the local stack's, whatever SPOTIFY_PIPELINE_PROJECT says
        code = cmd_run(run_args)
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
  bucket     {root / "gcs" / local.BUCKET}  (extract/, transform/, recommend/, load/ by snapshot; runs/)
  warehouse  {root / "bigquery"}  (BigQuery emulator's DuckDB file)
  logs       {root / "logs"}  (one file per process; functions log JSON lines)
(`spotify-pipeline` is .venv/bin/spotify-pipeline; `make clean` wipes the state.)""")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    from spotify_pipeline.packaging import build

    for fn, (path, sha) in build(Path(args.functions), Path(args.out)).items():
        print(f"{fn:<10} {path}  sha256 {sha[:16]}  {path.stat().st_size // 1024} KiB")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from spotify_pipeline.cli_request import add_request_arguments

    parser = argparse.ArgumentParser(prog="spotify-pipeline", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--stack-dir",
        help="local stack state folder (default: $SPOTIFY_PIPELINE_STACK_DIR, else .stack/ in the checkout, "
        "wherever the command runs)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure too (or SPOTIFY_PIPELINE_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stack", help="bring the local stack up or down")
    p.add_argument(
        "action",
        choices=["up", "down", "status"],
        help="up: start it (or apply changed PIPELINE_* settings to its functions); down: stop every process; "
        "status: up or down (exit 1 when down)",
    )
    p.add_argument("--wipe", action="store_true", help="with down: delete the persisted objects and tables too")
    p.add_argument("--no-pubsub", action="store_true", help="with up: run without the Pub/Sub emulator")
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("run", help="publish a run request and follow it to the load")
    add_request_arguments(p)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for load (default 300)")
    add_project_argument(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "trigger", help="publish a run request now (deployed topic with --project, else the local stack)"
    )
    add_project_argument(p)
    p.add_argument("--topic", help="ticks topic (default: $PIPELINE_TICKS_TOPIC or spotify-pipeline-ticks)")
    add_request_arguments(p)
    p.add_argument("--wait", action="store_true", help="follow the run to its load, as `run` does")
    p.add_argument("--timeout", type=float, default=300.0, help="with --wait: seconds to wait for load (default 300)")
    p.set_defaults(func=cmd_trigger)

    p = sub.add_parser("query", help="run SQL on the warehouse (local stack, or BigQuery with --project)")
    p.add_argument("sql", help="the query; unqualified table names resolve to the pipeline's dataset")
    p.add_argument("--format", choices=["table", "csv"], default="table", help="output format (default table)")
    p.add_argument(
        "--timeout", type=float, default=QUERY_TIMEOUT_SECONDS, help="seconds before the query is cancelled (120)"
    )
    add_project_argument(p)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("demo", help="stack up, one run on the demo catalogue, summary, stack down")
    p.add_argument("--snapshot-date", help="YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for load (default 300)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("package", help="build one deployable zip per function")
    p.add_argument("--functions", default="functions", help="folder of the functions' sources (default functions)")
    p.add_argument("--out", default="build/functions", help="folder for the zips (default build/functions)")
    p.set_defaults(func=cmd_package)
    from spotify_pipeline.cli_recommend import register as register_recommend

    register_recommend(sub)
    from spotify_pipeline.cli_dashboard import register as register_dashboard

    register_dashboard(sub)
    from spotify_pipeline.cli_ops import register as register_ops

    register_ops(sub)
    from spotify_pipeline.cli_request import register as register_inbox

    register_inbox(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parsed: list[argparse.Namespace] = []

    def command() -> int:  # parsing too runs under the policy: `--help | head -1` is a broken pipe
        parsed.append(build_parser().parse_args(argv))
        return int(parsed[0].func(parsed[0]))

    def debug() -> bool:
        return bool(parsed and parsed[0].debug) or CliSettings.from_env(os.environ).debug

    return run_command(command, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
