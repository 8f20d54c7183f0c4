"""``spotify-pipeline``: run, query and package the pipeline; bring the local stack up and down.

Every command acts on the target :mod:`spotify_pipeline.cli_target` resolves (the local stack, or
Google Cloud with ``--project``) and names it first on stderr; failures follow the one policy of
:mod:`spotify_pipeline.cli_errors`.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spotify_pipeline.cli_errors import BAD_INPUT, CliError, run_command
from spotify_pipeline.cli_target import add_project_argument, announce_stack, open_warehouse, resolve, stack_root
from spotify_pipeline.config import CliSettings, Settings


def _use_env(env: Mapping[str, str]) -> None:
    # The Google clients read the emulator variables from the process environment.
    os.environ.update(env)


def cmd_stack(args: argparse.Namespace) -> int:
    from spotify_pipeline.stack import local

    root = stack_root(args)
    announce_stack(root)
    if args.action == "up":
        print("starting the local stack:", flush=True)
        local.up(root, local.checkout(), use_pubsub=not args.no_pubsub)
    elif args.action == "down":
        local.down(root, wipe=args.wipe)
    else:
        state = local.StackState.load(root)
        if state is None:
            print(f"no stack in {root}")
            return 1
        for name, pid in state.pids.items():
            from spotify_pipeline.stack.processes import alive

            print(f"{name:<12} pid {pid:<8} {'running' if alive(pid) else 'STOPPED'}  port {state.ports.get(name)}")
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


def cmd_run(args: argparse.Namespace) -> int:
    from spotify_pipeline.events import parse_run_request

    target = resolve(args, running=True)
    env, state, settings = target.env, target.state, target.settings
    client = target.connect()  # before publishing: an unusable warehouse fails the run now
    _use_env(env)
    run_id = "cli-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    payload: dict[str, Any] = {"run_id": run_id}
    if args.snapshot_date:
        payload["snapshot_date"] = args.snapshot_date
    if args.markets:
        payload["markets"] = args.markets.split(",")
    if getattr(args, "chart_source", None):
        payload["chart_source"] = args.chart_source
    if getattr(args, "feature_providers", None):
        payload["feature_providers"] = [p for p in args.feature_providers.split(",") if p.strip()]
    chart_path: str | None = getattr(args, "charts_csv", None)
    expected_loads = 1
    # The same validation extract applies, so a bad request fails here (cli_errors), before publishing.
    if chart_path:
        payload["charts_csv"] = "uploads/pending.csv"  # validated first, replaced once uploaded
    request = parse_run_request(payload, settings, default_run_id=run_id)
    if chart_path:
        payload["charts_csv"], expected_loads = _stage_chart_file(chart_path, request, settings, env)
    message_id = publish_tick(env, state, payload)
    if request.chart_source == "charts-csv":
        markets = ", ".join(request.markets) or "all"
        what = f"chart file {payload['charts_csv']}: {expected_loads} snapshot(s), markets {markets}"
    else:
        what = f"snapshot {request.snapshot_date}, markets {', '.join(request.markets)}"
    print(f"published run {run_id} ({what}; message {message_id})", flush=True)
    return wait_for_run(client, settings, run_id, args.timeout, expected_loads=expected_loads)


def _stage_chart_file(path: str, request: Any, settings: Settings, env: Mapping[str, str]) -> tuple[str, int]:
    """Check a chart file as extract will, put it in the data bucket (``uploads/<run id>/``, which
    starts nothing: only ``inbox/`` does) and return its pinned object name and its snapshot count."""
    from spotify_pipeline.clients import storage_client
    from spotify_pipeline.events import parse_object_ref
    from spotify_pipeline.extract import select_entries
    from spotify_pipeline.sources.charts_csv import parse_chart_csv

    bucket = storage_client(settings.project, env).bucket(settings.bucket)
    if path.startswith("gs://"):
        ref = parse_object_ref(path, settings.bucket, "--charts-csv", "charts_csv")
        blob = bucket.get_blob(ref.name, generation=ref.generation)
        if blob is None:
            raise CliError(f"--charts-csv {path}: no such object in gs://{settings.bucket}", code=BAD_INPUT)
        data, name, generation = blob.download_as_bytes(), ref.name, int(blob.generation)
    else:
        data, name = Path(path).read_bytes(), Path(path).name
    chart = parse_chart_csv(
        data,
        name,
        snapshot_date=request.snapshot_date if request.snapshot_date_given else None,
        market=request.markets[0] if len(request.markets) == 1 else None,
    )
    dates = {e.snapshot_date for e in select_entries(chart, request)}
    if not path.startswith("gs://"):
        name = f"uploads/{request.run_id}/{name}"
        blob = bucket.blob(name)
        blob.upload_from_string(data, content_type="text/csv")
        generation = int(blob.generation or 0)
    return f"{name}#{generation}", len(dates)


def wait_for_run(client: Any, settings: Settings, run_id: str, timeout: float, *, expected_loads: int = 1) -> int:
    """Follow ``run_id`` in ``pipeline_runs`` until ``expected_loads`` snapshots are loaded (a chart file
    with several dates loads one snapshot per date), a stage fails, or ``timeout`` passes."""
    from google.cloud import bigquery

    table = f"`{settings.project}.{settings.dataset}.pipeline_runs`"
    sql = (
        f"SELECT stage, status, duration_seconds, row_counts, error FROM {table} WHERE run_id = @r ORDER BY finished_at"
    )
    cfg = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("r", "STRING", run_id)])
    deadline = time.monotonic() + timeout
    seen = loads = 0
    seconds: dict[str, float] = {}
    loaded: dict[str, int] = {}
    while time.monotonic() < deadline:
        rows = list(client.query(sql, job_config=cfg).result())
        for row in rows[seen:]:
            counts = json.loads(row["row_counts"]) if row["row_counts"] else {}
            detail = ", ".join(f"{k}={v}" for k, v in counts.items()) if row["status"] == "succeeded" else row["error"]
            print(f"  {row['stage']:<10} {row['status']:<9} {row['duration_seconds']:6.2f} s  {detail}", flush=True)
            seconds[row["stage"]] = seconds.get(row["stage"], 0.0) + float(row["duration_seconds"])
            if row["status"] == "failed":
                print(f"run {run_id} failed at {row['stage']}: {row['error']}", file=sys.stderr)
                return 1
            if row["stage"] == "load" and row["status"] == "succeeded":
                loads += 1
                for name, n in counts.items():
                    loaded[name] = loaded.get(name, 0) + n
                if loads < expected_loads:
                    continue
                print(f"\nrun {run_id} complete. Rows loaded per table:")
                for name, n in sorted(loaded.items()):
                    print(f"  {name:<16} {n:>8}")
                print("Seconds per stage: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))
                return 0
        seen = len(rows)
        time.sleep(0.5)
    last = f"last stage reported: {rows[-1]['stage']}" if seen else "no stage reported yet"
    print(f"run {run_id} did not finish within {timeout:.0f} s ({last}); see the function logs", file=sys.stderr)
    return 1


def cmd_trigger(args: argparse.Namespace) -> int:
    """Publish one run request to the deployed topic (or the local stack's), without waiting."""
    from spotify_pipeline.events import parse_run_request

    target = resolve(args, running=True)
    target.announce()
    env, state = target.env, target.state
    payload: dict[str, Any] = {}
    if args.snapshot_date:
        payload["snapshot_date"] = args.snapshot_date
    if args.markets:
        payload["markets"] = [m.strip() for m in args.markets.split(",")]
    if args.chart_source:
        payload["chart_source"] = args.chart_source
    # Validated here with extract's own rules, so a bad request is refused (cli_errors) before publishing.
    parse_run_request(payload, target.settings, default_run_id="trigger")
    message_id = publish_tick(env, state, payload)
    where = f"projects/{env['GOOGLE_CLOUD_PROJECT']}/topics/{env['PIPELINE_TICKS_TOPIC']}"
    print(f"published {json.dumps(payload)} to {where} (message {message_id})")
    print(
        'follow it: spotify-pipeline query "SELECT * FROM pipeline_runs ORDER BY started_at DESC LIMIT 8"'
        + (f" --project {target.settings.project}" if state is None else "")
    )
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from google.cloud import bigquery

    target = resolve(args, running=False)
    with open_warehouse(target) as client:
        project, dataset = target.settings.project, target.settings.dataset
        cfg = bigquery.QueryJobConfig(default_dataset=f"{project}.{dataset}")
        result = client.query(args.sql, job_config=cfg).result()
        names = [f.name for f in result.schema]
        rows = [[_fmt(v) for v in row.values()] for row in result]
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
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
    print("== 1/3  starting the local stack (emulators, Spotify stand-in, four functions)", flush=True)
    try:
        local.up(root, local.checkout())
        up_seconds = time.monotonic() - began
        print("\n== 2/3  one weekly run: tick -> extract -> transform -> recommend -> load", flush=True)
        run_args = argparse.Namespace(
            stack_dir=str(root), snapshot_date=args.snapshot_date, markets=None, timeout=args.timeout, stack_only=True
        )
        code = cmd_run(run_args)
        run_seconds = time.monotonic() - began - up_seconds
    finally:
        print("\n== 3/3  stopping the stack (state is kept)", flush=True)
        local.down(root)
    if code != 0:
        return code
    print(f"""
Timing: stack up {up_seconds:.1f} s, run {run_seconds:.1f} s.
The data is SYNTHETIC (the stand-in's demo catalogue), not real Spotify charts.
Where to look:
  tables     spotify-pipeline query "SELECT * FROM recommendations WHERE rank <= 3 LIMIT 20"
             spotify-pipeline query "SELECT * FROM pipeline_runs ORDER BY started_at DESC"
  bucket     {root / "gcs" / local.BUCKET}  (extract/, transform/, recommend/, load/ by snapshot)
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
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--wipe", action="store_true", help="with down: delete the persisted objects and tables too")
    p.add_argument("--no-pubsub", action="store_true", help="with up: run without the Pub/Sub emulator")
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("run", help="publish a run request and follow it to the load")
    p.add_argument("--snapshot-date", help="YYYY-MM-DD (default: today, UTC; a chart file: every date it holds)")
    p.add_argument("--markets", help="comma separated, e.g. GLOBAL,BR,KR (a chart file: filter; default all)")
    p.add_argument(
        "--charts-csv",
        metavar="PATH",
        help="chart file (charts.spotify.com or Kaggle CSV, local path or gs://); implies --chart-source charts-csv",
    )
    p.add_argument("--chart-source", choices=["spotify-playlist", "charts-csv"], help="default: PIPELINE_CHART_SOURCE")
    p.add_argument(
        "--feature-providers",
        help="ordered, comma separated among dataset, spotify, reccobeats (default: PIPELINE_FEATURE_PROVIDERS)",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for load (default 300)")
    add_project_argument(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "trigger", help="publish a run request now (deployed topic with --project, else the local stack)"
    )
    add_project_argument(p)
    p.add_argument("--topic", help="ticks topic (default: $PIPELINE_TICKS_TOPIC or spotify-pipeline-ticks)")
    p.add_argument("--snapshot-date", help="YYYY-MM-DD (default: today, UTC, decided by extract)")
    p.add_argument("--markets", help="comma separated, e.g. GLOBAL,BR,KR")
    p.add_argument("--chart-source", help="chart source for this run, e.g. spotify-playlist")
    p.set_defaults(func=cmd_trigger)

    p = sub.add_parser("query", help="run SQL on the warehouse (local stack, or BigQuery with --project)")
    p.add_argument("sql")
    p.add_argument("--format", choices=["table", "csv"], default="table")
    add_project_argument(p)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("demo", help="stack up, one run on the demo catalogue, summary, stack down")
    p.add_argument("--snapshot-date", help="YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--timeout", type=float, default=300.0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("package", help="build one deployable zip per function")
    p.add_argument("--functions", default="functions")
    p.add_argument("--out", default="build/functions")
    p.set_defaults(func=cmd_package)
    from spotify_pipeline.cli_recommend import register as register_recommend

    register_recommend(sub)
    from spotify_pipeline.cli_dashboard import register as register_dashboard

    register_dashboard(sub)
    from spotify_pipeline.cli_ops import register as register_ops

    register_ops(sub)
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
