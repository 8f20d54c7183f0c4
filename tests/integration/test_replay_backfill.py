"""Backfill on the local stack: a Kaggle-format file of daily charts over parts of two ISO weeks loads
one snapshot per week (the latest date of each week) and nothing else, each run followed to its load."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import ops, query

pytestmark = [pytest.mark.emulators]

CHARTS = Path(__file__).resolve().parents[1] / "fixtures" / "charts"
FIRST, LAST = date(2025, 6, 5), date(2025, 6, 13)  # Thu of 2025-W23 .. Fri of 2025-W24


def daily_file(tmp_path: Path) -> Path:
    """The Kaggle fixture's chart of 2026-11-12, as if published every day from FIRST to LAST."""
    header, *rows = (CHARTS / "kaggle-top-songs-iso.csv").read_text(encoding="utf-8").splitlines()
    day_rows = [r for r in rows if ",2026-11-12," in r]
    lines = [header]
    day = FIRST
    while day <= LAST:
        lines += [r.replace(",2026-11-12,", f",{day.isoformat()},") for r in day_rows]
        day += timedelta(days=1)
    path = tmp_path / "top-songs-daily.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def loaded_snapshots(stack: Any) -> list[date]:
    rows = query(
        stack,
        "SELECT DISTINCT snapshot_date FROM chart_entries WHERE snapshot_date BETWEEN @a AND @b ORDER BY 1",
        a=FIRST - timedelta(days=7),
        b=LAST + timedelta(days=7),
    )
    return [r["snapshot_date"] for r in rows]


def test_backfill_loads_one_snapshot_per_iso_week(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = daily_file(tmp_path)
    argv = ("backfill", "--charts-csv", str(path), "--from", FIRST.isoformat(), "--to", LAST.isoformat())
    assert ops(stack, *argv, "--dry-run") == 0
    plan = capsys.readouterr().out
    assert "2025-W23  snapshot 2025-06-08  (4 date(s) of the week in the file" in plan
    assert "2025-W24  snapshot 2025-06-13  (5 date(s) of the week in the file" in plan
    assert loaded_snapshots(stack) == []  # a dry run runs nothing

    assert ops(stack, *argv) == 0
    out = capsys.readouterr().out
    assert "2 of 2 week(s) loaded" in out
    assert loaded_snapshots(stack) == [date(2025, 6, 8), date(2025, 6, 13)]
    per_market = query(
        stack,
        "SELECT market, COUNT(*) AS n FROM chart_entries WHERE snapshot_date = @d GROUP BY market ORDER BY market",
        d=date(2025, 6, 13),
    )
    assert per_market == [
        {"market": "BR", "n": 6},
        {"market": "GLOBAL", "n": 10},
        {"market": "KR", "n": 10},
        {"market": "MX", "n": 8},
    ]
    runs = query(
        stack,
        "SELECT run_id, stage, status, chart_source FROM pipeline_runs WHERE STARTS_WITH(run_id, 'backfill-') "
        "AND snapshot_date BETWEEN @a AND @b ORDER BY finished_at",
        a=FIRST,
        b=LAST,
    )
    assert {r["run_id"][-8:] for r in runs} == {"20250608", "20250613"}
    assert all(r["status"] == "succeeded" and r["chart_source"] == "charts-csv" for r in runs)
    assert sorted(r["stage"] for r in runs) == sorted(["extract", "transform", "recommend", "load"] * 2)
