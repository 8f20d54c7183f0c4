"""``spotify-pipeline dashboard --out DIR``: the static dashboard from the warehouse's views.

The warehouse is chosen as ``spotify-pipeline query`` chooses it: the local stack's BigQuery
emulator (started alone on the persisted tables if the stack is down, then stopped again), or
BigQuery in ``--project`` with Application Default Credentials (dataset: ``PIPELINE_DATASET``).
Locally the views are (re)created from ``schemas/tables.json`` first; in the cloud Terraform
creates them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from spotify_pipeline.config import Settings

DEFAULT_WEEKS = 12  # dashboard.warehouse.DEFAULT_WEEKS; kept here so registering imports no dashboard code


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dashboard`` command to ``spotify-pipeline``'s sub-commands (imports nothing heavy)."""
    p = subparsers.add_parser(
        "dashboard",
        help="render the static HTML dashboard from the warehouse (local stack, or BigQuery with --project)",
    )
    p.add_argument("--out", required=True, help="folder to write index.html into (created if missing)")
    p.add_argument("--snapshot-date", help="week shown first, YYYY-MM-DD (default: the latest stored)")
    p.add_argument("--project", help="read this Google Cloud project's BigQuery instead of the local stack")
    p.add_argument(
        "--weeks",
        type=int,
        default=DEFAULT_WEEKS,
        help=f"stored weeks on the page, up to --snapshot-date (default {DEFAULT_WEEKS})",
    )
    p.add_argument(
        "--neighbours",
        type=int,
        help="nearest songs per track in the explorer (default: all stored ones for a small catalogue, "
        "fewer for a large one, so the page stays small)",
    )
    p.add_argument("--title", default="Spotify weekly charts", help="page title")
    p.set_defaults(func=cmd_dashboard)


def _parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"error: --snapshot-date must be YYYY-MM-DD, got {value!r}") from None


def cmd_dashboard(args: argparse.Namespace) -> int:
    from google.api_core.exceptions import NotFound
    from google.auth.exceptions import DefaultCredentialsError

    from spotify_pipeline.clients import bigquery_client
    from spotify_pipeline.dashboard import build_payload, read_warehouse, write_dashboard
    from spotify_pipeline.dashboard.warehouse import DashboardError
    from spotify_pipeline.provision import ensure_views
    from spotify_pipeline.stack import local, processes

    snapshot = _parse_date(args.snapshot_date)
    stack_dir = getattr(args, "stack_dir", None)
    root = Path(stack_dir).resolve() if stack_dir else local.default_root()
    state = local.StackState.load(root)
    temp_pid = None
    env: dict[str, str]
    if state is not None and not args.project:
        if not (state.running() or ("bigquery" in state.pids and processes.alive(state.pids["bigquery"]))):
            state, temp_pid = local.start_bigquery_only(root)
        env = {**os.environ, "BIGQUERY_EMULATOR_HOST": state.url("bigquery")}
        project, dataset, location = local.PROJECT, local.DATASET, "US"
    else:
        env = dict(os.environ)
        if args.project:
            env.pop("BIGQUERY_EMULATOR_HOST", None)
        settings = Settings.from_env(env)
        project, dataset, location = args.project or settings.project, settings.dataset, settings.bq_location
    emulator = env.get("BIGQUERY_EMULATOR_HOST", "").strip()
    where = f"the local BigQuery emulator ({emulator})" if emulator else "BigQuery"
    try:
        client: Any = bigquery_client(project, location, env)
        if emulator:
            ensure_views(client, dataset)
        rows = read_warehouse(
            client,
            project,
            dataset,
            snapshot_date=snapshot,
            weeks=args.weeks,
            neighbours=args.neighbours,
            where=where,
        )
        payload = build_payload(rows, generated_at=datetime.now(UTC))
        path = write_dashboard(payload, Path(args.out), title=args.title)
    except DashboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except DefaultCredentialsError as exc:
        print(f"error: {exc} (gcloud auth application-default login)", file=sys.stderr)
        return 1
    except NotFound as exc:
        print(
            f"error: {exc.message}\n(the dashboard reads the views of schemas/tables.json in {project}.{dataset}: "
            "`terraform apply` in infra/ creates them in Google Cloud, `spotify-pipeline stack up` locally)",
            file=sys.stderr,
        )
        return 1
    finally:
        if temp_pid is not None:
            processes.stop(temp_pid)
    sel = rows.selection
    size = path.stat().st_size
    weeks = ", ".join(w.isoformat() for w in sel.weeks)
    print(
        f"dashboard: {path.resolve()}\n"
        f"  {size / 1_000_000:.1f} MB, self-contained (opens offline); weeks {weeks} "
        f"(showing {sel.default_week.isoformat()} first); {sel.neighbours} of {sel.stored_neighbours} stored "
        f"neighbours per track; read from {where}, {project}.{dataset}"
        + ("\n  SYNTHETIC demo data (the Spotify stand-in's catalogue)" if payload["meta"]["synthetic"] else "")
        + f"\n  open: {path.resolve().as_uri()}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m spotify_pipeline.cli_dashboard dashboard --out DIR``, the same command on its own."""
    parser = argparse.ArgumentParser(prog="spotify-pipeline")
    parser.add_argument(
        "--stack-dir", help="local stack state folder (default: $SPOTIFY_PIPELINE_STACK_DIR or ./.stack)"
    )
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
