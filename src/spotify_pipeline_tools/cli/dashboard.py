"""``spotify-pipeline dashboard --out DIR``: the static dashboard from the warehouse's views.

The warehouse is the target of every command (:mod:`spotify_pipeline_tools.cli.target`): the local
stack's BigQuery emulator (started alone on the persisted tables if the stack is down, then stopped
again), or BigQuery in ``--project`` with Application Default Credentials. Locally the views are
(re)created from ``schemas/tables.json`` first; in the cloud Terraform creates them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import click

from spotify_pipeline_tools.cli.app import Command, make_group, run
from spotify_pipeline_tools.cli.errors import BAD_INPUT, CliError
from spotify_pipeline_tools.cli.target import TargetChoice, open_warehouse, resolve, target_options

DEFAULT_WEEKS = 12  # dashboard.warehouse.DEFAULT_WEEKS; kept here so registering imports no dashboard code


def _parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"--snapshot-date must be YYYY-MM-DD, got {value!r}", code=BAD_INPUT) from None


def output_page(out: str) -> tuple[Path, str | None]:
    """``--out`` as (folder, page name): a folder gets index.html (None); a name ending in .html is the page.
    Any other extension is refused before the warehouse is read: the dashboard is one HTML page."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        return path.parent, path.name
    if suffix and not path.is_dir():
        raise CliError(
            f"--out {out}: the dashboard is one HTML page and cannot be written as {suffix}",
            "give a folder (index.html is written inside) or a file name ending in .html",
            BAD_INPUT,
        )
    return path, None


@click.command(
    "dashboard",
    cls=Command,
    help="render the static HTML dashboard from the warehouse (local stack, or BigQuery with --project)",
)
@click.option("--out", required=True, help="folder to write index.html into (created if missing), or a .html file name")
@click.option("--snapshot-date", help="week shown first, YYYY-MM-DD (default: the latest stored)")
@target_options()
@click.option(
    "--weeks",
    type=click.IntRange(min=1),
    default=DEFAULT_WEEKS,
    help=f"stored weeks on the page, up to --snapshot-date (default {DEFAULT_WEEKS})",
)
@click.option(
    "--neighbours",
    type=int,
    help="nearest songs per track in the explorer (default: all stored ones for a small catalogue, "
    "fewer for a large one, so the page stays small)",
)
@click.option("--title", default="Spotify weekly charts", help="page title")
def dashboard_command(
    where: TargetChoice, out: str, snapshot_date: str | None, weeks: int, neighbours: int | None, title: str
) -> int:
    from spotify_pipeline_tools.dashboard import build_payload, read_warehouse, write_dashboard
    from spotify_pipeline_tools.dashboard.warehouse import DashboardError
    from spotify_pipeline_tools.provision import ensure_views

    snapshot = _parse_date(snapshot_date)
    folder, page = output_page(out)
    target = resolve(where, running=False)
    project, dataset = target.settings.project, target.settings.dataset
    with open_warehouse(target) as client:
        emulator = target.env.get("BIGQUERY_EMULATOR_HOST", "").strip()
        read_from = f"the local BigQuery emulator ({emulator})" if emulator else "BigQuery"
        if emulator:
            ensure_views(client, dataset)
        try:
            rows = read_warehouse(
                client,
                project,
                dataset,
                snapshot_date=snapshot,
                weeks=weeks,
                neighbours=neighbours,
                where=read_from,
            )
        except DashboardError as exc:
            raise CliError(str(exc)) from exc
    payload = build_payload(rows, generated_at=datetime.now(UTC))
    path = write_dashboard(payload, folder, title=title, page=page)
    sel = rows.selection
    size = path.stat().st_size
    shown = ", ".join(w.isoformat() for w in sel.weeks)
    print(
        f"dashboard: {path.resolve()}\n"
        f"  {size / 1_000_000:.1f} MB, self-contained (opens offline); weeks {shown} "
        f"(showing {sel.default_week.isoformat()} first); {sel.neighbours} of {sel.stored_neighbours} stored "
        f"neighbours per track; read from {read_from}, {project}.{dataset}"
        + ("\n  SYNTHETIC demo data (the Spotify stand-in's catalogue)" if payload["meta"]["synthetic"] else "")
        + f"\n  open: {path.resolve().as_uri()}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m spotify_pipeline_tools.cli.dashboard dashboard --out DIR``, the same command on its own."""
    return run(make_group("the dashboard command of spotify-pipeline", [dashboard_command]), argv)


if __name__ == "__main__":
    sys.exit(main())
