"""``spotify-pipeline replay | backfill | status``: operate the pipeline for months and years.

* ``replay --from D1 [--to D2] [--stage transform|recommend|load] [--force] [--dry-run]``: re-run the
  later stages of stored snapshots from the bucket, in this process, with no external API call
  (see :mod:`spotify_pipeline_tools.replay`);
* ``backfill --charts-csv FILE [--from D1] [--to D2] [--markets ...] [--force] [--dry-run]``: one
  snapshot per ISO week of a chart file holding many dates, each run through the pipeline and
  followed to its load;
* ``status [--limit N] [--days D] [--stage S] [--wide]``: the last runs per stage from
  ``pipeline_runs``, with durations, row counts, sources and errors; and the staging tables in the
  dataset, if any (a load in progress, or one whose delete failed).

Target: :func:`spotify_pipeline_tools.cli.target.resolve`, as for every command (the local stack must be
up for replay and backfill; ``status`` starts its BigQuery emulator alone if it is down).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from spotify_pipeline import layout
from spotify_pipeline.config import Settings
from spotify_pipeline.load import STAGING_EXPIRES, STAGING_SWEEP_AGE, StagingTable
from spotify_pipeline_tools.cli.app import RUN_TIMEOUT_SECONDS, Command, timeout_option
from spotify_pipeline_tools.cli.errors import BAD_INPUT, CliError
from spotify_pipeline_tools.cli.target import TargetChoice, open_warehouse, resolve, target_options

STAGE_ORDER = ("extract", "transform", "recommend", "load")
NO_LOAD_ALERT_DAYS = 8  # infra/monitoring.tf alerts after this many days without a successful load


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{flag} must be YYYY-MM-DD, got {value!r}", code=BAD_INPUT) from None


# ------------------------------------------------------------------------ replay


@click.command(
    "replay",
    cls=Command,
    short_help="re-run transform/recommend/load of stored snapshots from the bucket (no Spotify request)",
    help="Re-runs --stage and every later stage for each stored snapshot from --from to --to, "
    "oldest first, in this process, with this environment's model settings (PIPELINE_CLUSTERS, ...).",
)
@click.option("--from", "first", required=True, metavar="YYYY-MM-DD", help="first snapshot date")
@click.option("--to", "last", metavar="YYYY-MM-DD", help="last snapshot date (default: --from)")
@click.option(
    "--stage",
    type=click.Choice(["transform", "recommend", "load"]),
    default="transform",
    help="first stage to re-run (default transform: from the raw objects; recommend: from the clean "
    "tables, e.g. after a model change; load: reload BigQuery only)",
)
@click.option("--force", is_flag=True, help="go past failed data-quality gates (recorded)")
@click.option("--dry-run", is_flag=True, help="list the snapshots that would be replayed")
@target_options(bucket=True)
def replay_command(
    where: TargetChoice, first: str, last: str | None, stage: layout.Stage, force: bool, dry_run: bool
) -> int:
    from spotify_pipeline.runlog import new_run_id
    from spotify_pipeline.runtime import Runtime
    from spotify_pipeline_tools.replay import replay, replay_plan

    first_day = _date(first, "--from")
    last_day = _date(last, "--to") or first_day
    assert first_day is not None and last_day is not None  # --from is required
    if last_day < first_day:
        raise CliError(f"--to {last_day} is before --from {first_day}", code=BAD_INPUT)
    target = resolve(where, running=True)
    target.announce()
    rt = Runtime(env=target.env)
    if dry_run:
        days = replay_plan(rt, stage, first_day, last_day)
        print(f"{len(days)} snapshot(s) to replay from {stage}: {', '.join(map(str, days)) or 'none'}")
        return 0
    run_id = new_run_id("replay", rt.now())
    outcomes = replay(rt, stage, first_day, last_day, run_id=run_id, force=force, say=_say)
    if not outcomes:
        print(
            f"nothing to replay: no stored {stage} input between {first_day} and {last_day} "
            "(raw objects are kept raw_retention_weeks; older weeks replay from --stage recommend)",
            file=sys.stderr,
        )
        return 1
    failed = [o.snapshot_date.isoformat() for o in outcomes if not o.ok]
    print(f"replay {run_id}: {len(outcomes) - len(failed)} of {len(outcomes)} snapshot(s) replayed")
    if failed:
        print(f"failed: {', '.join(failed)} (see above, or `spotify-pipeline status`)", file=sys.stderr)
        return 1
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


# ------------------------------------------------------------------------ backfill


def _read_chart(path: str, settings: Settings, env: Mapping[str, str]) -> tuple[bytes, str]:
    if path.startswith("gs://"):
        from spotify_pipeline.clients import storage_client
        from spotify_pipeline.events import parse_object_ref

        ref = parse_object_ref(path, settings.bucket, "--charts-csv", "charts_csv")
        blob = (
            storage_client(settings.project, env).bucket(settings.bucket).get_blob(ref.name, generation=ref.generation)
        )
        if blob is None:
            raise CliError(f"--charts-csv {path}: no such object in gs://{settings.bucket}", code=BAD_INPUT)
        return blob.download_as_bytes(), ref.name.rsplit("/", 1)[-1]
    return Path(path).read_bytes(), Path(path).name


@click.command(
    "backfill",
    cls=Command,
    short_help="load past weeks from a chart file holding many dates (one snapshot per ISO week)",
    help="Rule: per ISO week (Monday-Sunday), the latest date of that week the file holds within "
    "[--from, --to]; snapshot_date = that date. Each week runs through the pipeline, oldest first.",
)
@click.option("--charts-csv", required=True, metavar="PATH", help="chart file: local path or gs://BUCKET/NAME")
@click.option("--from", "first", metavar="YYYY-MM-DD", help="first date considered (default: the file's)")
@click.option("--to", "last", metavar="YYYY-MM-DD", help="last date considered (default: the file's)")
@click.option("--markets", help="comma separated, e.g. GLOBAL,BR (default: every market of the file)")
@click.option("--force", is_flag=True, help="load weeks even if a data-quality gate fails (recorded)")
@click.option("--dry-run", is_flag=True, help="print the weeks and dates the rule picks, run nothing")
@timeout_option(RUN_TIMEOUT_SECONDS, "seconds to wait for each week's load (default 300)")
@target_options(bucket=True, topic=True)
def backfill_command(
    where: TargetChoice,
    charts_csv: str,
    first: str | None,
    last: str | None,
    markets: str | None,
    force: bool,
    dry_run: bool,
    timeout: float,
) -> int:
    from spotify_pipeline.clients import storage_client
    from spotify_pipeline.config import parse_markets
    from spotify_pipeline.events import parse_run_request
    from spotify_pipeline.runlog import new_run_id
    from spotify_pipeline_tools.cli.follow import wait_for_run
    from spotify_pipeline_tools.cli.publish import publish_tick
    from spotify_pipeline_tools.replay import backfill_request, plan_backfill

    target = resolve(where, running=True)
    target.announce()
    env, state, settings = target.env, target.state, target.settings
    chosen = parse_markets(markets, "--markets") if markets else ()
    data, name = _read_chart(charts_csv, settings, env)
    weeks, gaps = plan_backfill(data, name, _date(first, "--from"), _date(last, "--to"), chosen)
    if not weeks:
        raise CliError(
            f"{name} holds no date between {first or 'its first'} and {last or 'its last'}",
            "widen --from/--to (or leave them out)",
            BAD_INPUT,
        )
    print(f"backfill of {name}: {len(weeks)} week(s), one snapshot each (the latest date of the ISO week):")
    for w in weeks:
        print(
            f"  {w.pick.label}  snapshot {w.pick.snapshot_date}  ({w.pick.dates_in_week} date(s) of the week in "
            f"the file, {w.entries} entries, markets {','.join(w.markets)})"
        )
    if gaps:
        print(f"  weeks without any date in the file: {', '.join(gaps)}")
    if dry_run:
        return 0

    now = datetime.now(UTC)
    backfill_id = new_run_id("backfill", now)
    bucket = storage_client(settings.project, env).bucket(settings.bucket)
    client = target.warehouse_client()
    failed: list[str] = []
    for i, week in enumerate(weeks, 1):
        day = week.pick.snapshot_date
        run_id = f"{backfill_id}-{day:%Y%m%d}"
        # uploads/ starts nothing (only inbox/ does): the run request below names the object.
        blob = bucket.blob(f"{layout.UPLOADS_PREFIX}{backfill_id}/{day.isoformat()}/{name}")
        blob.upload_from_string(week.data, content_type="text/csv")
        message = backfill_request(week, f"{blob.name}#{blob.generation}", run_id, force=force)
        parse_run_request(message, settings, default_run_id=run_id)  # extract's own validation, first
        print(f"[{i}/{len(weeks)}] {week.pick.label}: snapshot {day}, run {run_id}", flush=True)
        publish_tick(env, state, message)
        if wait_for_run(client, settings, run_id, timeout, env=env) != 0:
            failed.append(day.isoformat())
    print(f"backfill {backfill_id}: {len(weeks) - len(failed)} of {len(weeks)} week(s) loaded")
    if failed:
        print(f"not loaded: {', '.join(failed)} (see above, or `spotify-pipeline status`)", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------ status


STATUS_COLUMNS = (
    "run_id",
    "snapshot_date",
    "stage",
    "status",
    "started_at",
    "finished_at",
    "duration_seconds",
    "rows",
    "row_counts",
    "chart_source",
    "feature_source",
    "trigger",
    "error",
)


def fetch_status(
    client: Any, project: str, dataset: str, *, days: int, now: datetime
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Recent ``pipeline_runs`` rows (newest first) and the last successful load, whenever it was."""
    from google.cloud import bigquery

    from spotify_pipeline_tools.bq_query import run_query

    table = f"`{project}.{dataset}.pipeline_runs`"
    cols = ", ".join(f"`{c}`" for c in STATUS_COLUMNS)
    since = [bigquery.ScalarQueryParameter("since", "TIMESTAMP", now - timedelta(days=days))]
    sql = f"SELECT {cols} FROM {table} WHERE started_at >= @since ORDER BY started_at DESC LIMIT 5000"
    rows = run_query(client, sql, f"status: pipeline_runs of the last {days} day(s)", params=since).rows
    last_sql = (
        f"SELECT `snapshot_date`, `finished_at`, `run_id` FROM {table} "
        "WHERE `stage` = 'load' AND `status` = 'succeeded' ORDER BY `finished_at` DESC LIMIT 1"
    )
    last = run_query(client, last_sql, "status: the last successful load").rows
    return rows, (last[0] if last else None)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value or "")


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if width <= 0 or len(text) <= width else text[: width - 3] + "..."


def render_status(
    rows: Sequence[Mapping[str, Any]],
    last_load: Mapping[str, Any] | None,
    *,
    now: datetime,
    limit: int = 5,
    stage: str | None = None,
    wide: bool = False,
    where: str = "",
) -> str:
    """Pure: the status report of ``rows`` (newest first), ``limit`` per stage."""
    by_stage: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if stage and row["stage"] != stage:
            continue
        by_stage.setdefault(str(row["stage"]), [])
        if len(by_stage[str(row["stage"])]) < limit:
            by_stage[str(row["stage"])].append(row)
    lines = [f"pipeline_runs{' of ' + where if where else ''}: last {limit} run(s) per stage"]
    if last_load is None:
        lines.append("last successful load: none recorded")
    else:
        finished = last_load["finished_at"]
        age = (now - finished).total_seconds() / 86400 if isinstance(finished, datetime) else None
        ago = f", {age:.1f} days ago" if age is not None else ""
        lines.append(
            f"last successful load: snapshot {last_load['snapshot_date']} at {_when(finished)} UTC{ago} "
            f"(run {last_load['run_id']})"
        )
        if age is not None and age > NO_LOAD_ALERT_DAYS:
            lines.append(f"WARNING: no successful load in {NO_LOAD_ALERT_DAYS} days (the monitoring alert fires)")
    order = [s for s in STAGE_ORDER if s in by_stage] + sorted(s for s in by_stage if s not in STAGE_ORDER)
    if not order:
        lines.append("no runs recorded in this period")
    header = ("started (UTC)", "snapshot", "status", "seconds", "rows", "sources", "run id", "details")
    for name in order:
        table = [header]
        for row in by_stage[name]:
            counts = json.loads(row["row_counts"]) if row.get("row_counts") else {}
            detail = row.get("error") or ""
            if row["status"] == "succeeded":
                detail = ", ".join(f"{k}={v}" for k, v in counts.items()) + (f"  NOTE {detail}" if detail else "")
            sources = "/".join(str(row.get(k) or "-") for k in ("chart_source", "feature_source"))
            seconds = row.get("duration_seconds")
            table.append(
                (
                    _when(row.get("started_at")),
                    str(row.get("snapshot_date") or "-"),
                    str(row["status"]),
                    f"{seconds:.1f}" if isinstance(seconds, int | float) else "-",
                    str(row.get("rows") if row.get("rows") is not None else "-"),
                    sources,
                    str(row["run_id"]),
                    _short(detail, 0 if wide else 160),
                )
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
        lines.append("")
        lines.append(name)
        for r in table:
            lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1])
    return "\n".join(lines)


def render_staging(leftovers: Sequence[StagingTable], *, now: datetime) -> list[str]:
    """Pure: the lines on the staging tables found in the dataset (none: no line)."""
    if not leftovers:
        return []
    lines = [
        "",
        f"staging tables: {len(leftovers)} (a load in progress, or a failed delete; BigQuery drops them "
        f"{STAGING_EXPIRES.total_seconds() / 3600:g} h after creation, and the next load of their snapshot "
        f"deletes those older than {STAGING_SWEEP_AGE.total_seconds() / 3600:g} h)",
    ]
    for t in sorted(leftovers, key=lambda t: (t.snapshot, t.table_id)):
        age = f"{(now - t.created).total_seconds() / 3600:.1f} h old" if t.created else "age unknown"
        lines.append(f"  {t.table_id}  snapshot {t.snapshot}  {age}")
    return lines


@click.command(
    "status", cls=Command, help="last runs per stage from pipeline_runs: durations, row counts, sources, errors"
)
@click.option("--limit", type=click.IntRange(min=1), default=5, help="runs shown per stage (default 5)")
@click.option("--days", type=click.IntRange(min=1), default=60, help="look this many days back (default 60)")
@click.option("--stage", type=click.Choice(layout.STAGES), help="only this stage")
@click.option("--wide", is_flag=True, help="do not shorten errors")
@target_options()
def status_command(where: TargetChoice, limit: int, days: int, stage: str | None, wide: bool) -> int:
    from google.cloud import bigquery

    from spotify_pipeline.load import BQ_RETRY_SECONDS, staging_tables

    target = resolve(where, running=False)
    project, dataset = target.settings.project, target.settings.dataset
    now = datetime.now(UTC)
    with open_warehouse(target) as client:
        rows, last = fetch_status(client, project, dataset, days=days, now=now)
        retry = bigquery.DEFAULT_RETRY.with_timeout(BQ_RETRY_SECONDS)
        leftovers = staging_tables(client, f"{project}.{dataset}", retry, timeout=BQ_RETRY_SECONDS)
    report = render_status(rows, last, now=now, limit=limit, stage=stage, wide=wide, where=f"{project}.{dataset}")
    print("\n".join([report, *render_staging(leftovers, now=now)]))
    return 0


COMMANDS: tuple[click.Command, ...] = (replay_command, backfill_command, status_command)
