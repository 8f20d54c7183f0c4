"""Pure parts of replay, backfill and status: the one-snapshot-per-ISO-week rule, the chart-file
slices a backfill uploads, the run requests it publishes, and the status report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest

from spotify_pipeline.config import Settings
from spotify_pipeline.events import parse_run_request
from spotify_pipeline.runlog import new_run_id
from spotify_pipeline.sources.charts_csv import parse_chart_csv
from spotify_pipeline_tools.cli import ops as cli_ops
from spotify_pipeline_tools.cli.main import GROUP
from spotify_pipeline_tools.replay import (
    WeekPick,
    backfill_request,
    missing_weeks,
    plan_backfill,
    slice_chart_file,
    weekly_picks,
)

CHARTS = Path(__file__).resolve().parents[1] / "fixtures" / "charts"


def daily_kaggle(days: list[date], *, drop: dict[date, str] | None = None, us_dates: bool = False) -> bytes:
    """The Kaggle fixture's rows of 2026-11-12 repeated for each of ``days`` (optionally without a market)."""
    text = (CHARTS / "kaggle-top-songs-iso.csv").read_text(encoding="utf-8")
    header, *rows = text.splitlines()
    template = [r for r in rows if ",2026-11-12," in r]
    out = [header]
    for day in days:
        stamp = f"{day.month}/{day.day}/{day.year}" if us_dates else day.isoformat()
        for row in template:
            line = row.replace(",2026-11-12,", f",{stamp},")
            if drop and drop.get(day) and f",{drop[day]},{stamp}," in line:
                continue
            out.append(line)
    return ("\n".join(out) + "\n").encode("utf-8")


def test_one_snapshot_per_iso_week_the_latest_date() -> None:
    days = [date(2026, 9, 28) + timedelta(days=i) for i in range(17)]  # Mon 28 Sep .. Wed 14 Oct
    picks = weekly_picks(days)
    assert picks == [
        WeekPick(2026, 40, date(2026, 10, 4), 7),  # Sunday
        WeekPick(2026, 41, date(2026, 10, 11), 7),
        WeekPick(2026, 42, date(2026, 10, 14), 3),  # a partial last week: its latest date
    ]
    assert [p.label for p in picks] == ["2026-W40", "2026-W41", "2026-W42"]
    # The range applies before the rule: the latest date of the week *within* the range.
    assert [p.snapshot_date for p in weekly_picks(days, date(2026, 10, 1), date(2026, 10, 9))] == [
        date(2026, 10, 4),
        date(2026, 10, 9),
    ]
    # ISO weeks across a year boundary: 2026-12-31 (Thu) and 2027-01-03 (Sun) are one week, 2026-W53.
    assert weekly_picks([date(2026, 12, 31), date(2027, 1, 3), date(2027, 1, 4)]) == [
        WeekPick(2026, 53, date(2027, 1, 3), 2),
        WeekPick(2027, 1, date(2027, 1, 4), 1),
    ]
    assert weekly_picks([]) == []


def test_weeks_without_dates_are_reported() -> None:
    picks = weekly_picks([date(2026, 10, 1), date(2026, 10, 22)])
    assert missing_weeks(picks) == ["2026-W41", "2026-W42"]
    assert missing_weeks([]) == []


@pytest.mark.parametrize("us_dates", [False, True])
def test_a_slice_parses_to_exactly_that_day_and_those_markets(us_dates: bool) -> None:
    days = [date(2026, 10, 1), date(2026, 10, 2)]
    data = daily_kaggle(days, us_dates=us_dates)
    chart = parse_chart_csv(data, "daily.csv")
    sliced, count = slice_chart_file(data, chart, days[1], ("GLOBAL", "KR"))
    back = parse_chart_csv(sliced, "daily.csv")
    assert count == len(back.entries) == len(chart.select(("GLOBAL", "KR"), days[1]))
    assert back.dates == [days[1]] and back.markets == ["GLOBAL", "KR"]
    strip = ("line",)
    assert [{k: v for k, v in e.to_json().items() if k not in strip} for e in back.entries] == [
        {k: v for k, v in e.to_json().items() if k not in strip} for e in chart.select(("GLOBAL", "KR"), days[1])
    ]


def test_plan_backfill_expects_every_market_of_the_picked_days() -> None:
    days = [date(2026, 10, 3), date(2026, 10, 4), date(2026, 10, 10)]
    data = daily_kaggle(days, drop={date(2026, 10, 10): "MX"})
    weeks, gaps = plan_backfill(data, "daily.csv", None, None)
    assert [w.pick.snapshot_date for w in weeks] == [date(2026, 10, 4), date(2026, 10, 10)] and gaps == []
    assert all(w.markets == ("BR", "GLOBAL", "KR", "MX") for w in weeks)  # so MX missing on 10-10 fails a gate
    assert parse_chart_csv(weeks[1].data, "x.csv").markets == ["BR", "GLOBAL", "KR"]
    weeks, _ = plan_backfill(data, "daily.csv", date(2026, 10, 5), None, ("KR",))
    assert [(w.pick.snapshot_date, w.markets, w.entries) for w in weeks] == [(date(2026, 10, 10), ("KR",), 10)]


def test_backfill_requests_are_valid_run_requests() -> None:
    data = daily_kaggle([date(2026, 10, 4)])
    (week,), _ = plan_backfill(data, "daily.csv", None, None)
    run_id = new_run_id("backfill", datetime(2026, 11, 27, 10, 15, tzinfo=UTC)) + "-20261004"
    assert run_id.startswith("backfill-20261127T101500-") and len(run_id) <= 64
    message = backfill_request(week, "uploads/b/2026-10-04/daily.csv#12", run_id, force=True)
    request = parse_run_request(message, Settings(), default_run_id="x")
    assert request.chart_source == "charts-csv" and str(request.charts_csv) == "uploads/b/2026-10-04/daily.csv#12"
    assert request.snapshot_date == date(2026, 10, 4) and request.snapshot_date_given
    assert request.markets == ("BR", "GLOBAL", "KR", "MX") and request.force_gates and request.run_id == run_id
    assert "force_gates" not in backfill_request(week, "x.csv", run_id)


def parse(argv: list[str]) -> tuple[click.Command, dict[str, Any]]:
    """The command `spotify-pipeline ARGV` runs and the parameters it receives."""
    command = GROUP.commands[argv[0]]
    with command.make_context(argv[0], argv[1:]) as ctx:
        return command, dict(ctx.params)


def test_commands_register_and_parse() -> None:
    command, params = parse(["replay", "--from", "2026-01-05", "--stage", "recommend", "--force"])
    assert (params["first"], params["last"], params["stage"], params["force"], command) == (
        "2026-01-05",
        None,
        "recommend",
        True,
        cli_ops.replay_command,
    )
    command, params = parse(["backfill", "--charts-csv", "f.csv", "--from", "2026-01-01", "--markets", "GLOBAL"])
    assert (params["charts_csv"], params["first"], params["markets"], command) == (
        "f.csv",
        "2026-01-01",
        "GLOBAL",
        cli_ops.backfill_command,
    )
    assert parse(["status", "--limit", "2"])[0] is cli_ops.status_command
    with pytest.raises(click.UsageError):
        parse(["replay", "--from", "2026-01-05", "--stage", "extract"])  # extract is never replayed


def test_status_report_groups_by_stage_newest_first() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def row(stage: str, status: str, minutes: int, **extra: object) -> dict[str, object]:
        return {
            "run_id": f"r{minutes}",
            "snapshot_date": date(2026, 11, 23),
            "stage": stage,
            "status": status,
            "started_at": now - timedelta(minutes=minutes),
            "finished_at": now - timedelta(minutes=minutes - 1),
            "duration_seconds": 2.25,
            "rows": 3,
            "row_counts": '{"a": 1, "b": 2}',
            "chart_source": "spotify-playlist",
            "feature_source": "spotify",
            "trigger": "t",
            "error": None,
            **extra,
        }

    rows = [
        row("load", "succeeded", 1),
        row(
            "recommend", "failed", 2, rows=None, row_counts=None, error="data-quality gate markets_present " + "x" * 300
        ),
        row("recommend", "succeeded", 3, error="forced past failed gates (--force)"),
        row("recommend", "succeeded", 4),
        row("extract", "succeeded", 5),
        row("gates-custom", "succeeded", 6),
    ]
    last = {"snapshot_date": date(2026, 11, 23), "finished_at": now - timedelta(days=9), "run_id": "old"}
    text = cli_ops.render_status(rows, last, now=now, limit=2, where="p.d")
    lines = text.splitlines()
    assert lines[0] == "pipeline_runs of p.d: last 2 run(s) per stage"
    assert "last successful load: snapshot 2026-11-23 at 2026-11-18 12:00:00 UTC, 9.0 days ago (run old)" in text
    assert "WARNING: no successful load in 8 days" in text
    stages = [
        line
        for line in lines
        if line and not line.startswith(" ") and not line.startswith(("pipeline", "last", "WARN"))
    ]
    assert stages == ["extract", "recommend", "load", "gates-custom"]
    recommend = text.split("\nrecommend\n")[1].split("\n\n")[0].splitlines()
    assert len(recommend) == 3  # header + the 2 newest
    assert (
        "failed" in recommend[1]
        and "data-quality gate markets_present" in recommend[1]
        and recommend[1].endswith("...")
    )
    assert "2.2" in recommend[2] and "a=1, b=2 NOTE forced past failed gates (--force)" in recommend[2]
    assert "spotify-playlist/spotify" in recommend[2] and "r3" in recommend[2]
    wide = cli_ops.render_status(rows, None, now=now, limit=5, stage="recommend", wide=True)
    assert "x" * 300 in wide and "last successful load: none recorded" in wide and "\nload\n" not in wide
