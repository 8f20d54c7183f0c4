"""CSV exports a spreadsheet will not evaluate, end to end: names that are formulas go through the
pipeline on the local stack, come back through `spotify-pipeline query --format csv`, and ids that
are formulas come back through `spotify-pipeline recommend --csv-export`; each CSV is read back."""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from helpers import CLI, cli

pytestmark = pytest.mark.emulators

CHARTS = Path(__file__).resolve().parents[1] / "fixtures" / "charts"
WEEK = date(2019, 1, 3)  # a week of its own, before every other of the session: no previous week to gate on
# The examples. A chart file's names are trimmed when parsed, so a leading tab or CR cannot
# reach a stored name that way; they come back from a query below instead.
NAMES = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3"]
ARTIST = "@SUM(1+1)"  # an artist name holds no comma (the column is comma separated)


def chart_file(path: Path) -> Path:
    """One date of the Kaggle fixture, moved to WEEK; the first tracks renamed, with ids Spotify does
    not know (so the file's names are the ones stored)."""
    table = list(csv.reader(io.StringIO((CHARTS / "kaggle-top-songs-iso.csv").read_text(encoding="utf-8"))))
    col = {c: table[0].index(c) for c in ("spotify_id", "name", "artists", "snapshot_date", "loudness")}
    rows = [r for r in table[1:] if r[col["snapshot_date"]] == "2026-11-19"]
    for i, r in enumerate(rows):
        r[col["snapshot_date"]] = WEEK.isoformat()
        if i < len(NAMES):
            r[col["spotify_id"]] = f"FormulaTrack{i:010d}"
            r[col["name"]], r[col["artists"]], r[col["loudness"]] = NAMES[i], ARTIST, "-5.2"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([table[0], *rows])
    return path


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def query_csv(root: str, sql: str, cwd: Path) -> list[list[str]]:
    """`spotify-pipeline query SQL --format csv` as a spreadsheet would get the file: bytes as written
    (the text mode of `helpers.cli` would turn a CR inside a cell into a line feed)."""
    out = subprocess.run(
        [str(CLI), "--stack-dir", root, "query", sql, "--format", "csv"], cwd=cwd, capture_output=True, timeout=180
    )
    assert out.returncode == 0, out.stderr.decode()
    return read_csv(out.stdout.decode("utf-8"))


def test_query_csv_guards_formula_names_from_the_pipeline_and_keeps_numbers(stack: Any, tmp_path: Path) -> None:
    root = str(stack.root)
    path = chart_file(tmp_path / "formulas.csv")
    out = cli("--stack-dir", root, "run", "--charts-csv", str(path), "--timeout", "180", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    sql = (
        "SELECT t.track_name, t.artist_names, t.loudness, t.best_rank FROM tracks t "
        f"WHERE t.snapshot_date = '{WEEK}' AND STARTS_WITH(t.track_id, 'FormulaTrack') ORDER BY t.best_rank"
    )
    rows = query_csv(root, sql, tmp_path)
    assert rows[0] == ["track_name", "artist_names", "loudness", "best_rank"]
    assert [r[0] for r in rows[1:]] == ["'" + n for n in NAMES]  # each cell text, as a spreadsheet shows it
    assert {r[1] for r in rows[1:]} == {"'" + ARTIST}
    assert {r[2] for r in rows[1:]} == {"-5.2"}  # a FLOAT column: a number, not guarded
    assert [r[3] for r in rows[1:]] == ["1", "2", "3", "4"]

    # A leading tab or CR (and a lone CR inside a cell) from a query; numbers typed by BigQuery.
    sql = (
        "SELECT CONCAT(CODE_POINTS_TO_STRING([9]), '=1+1') AS tab, CONCAT(CODE_POINTS_TO_STRING([13]), '=1+1') AS cr, "
    )
    sql += "CONCAT('a', CODE_POINTS_TO_STRING([13]), 'b') AS inner_cr, -5.2 AS loudness, -3 AS delta"
    assert query_csv(root, sql, tmp_path) == [
        ["tab", "cr", "inner_cr", "loudness", "delta"],
        ["'\t=1+1", "'\r=1+1", "a\rb", "-5.2", "-3"],
    ]


def test_recommend_csv_export_guards_formula_ids_and_keeps_distances_numbers(tmp_path: Path) -> None:
    ids = [*NAMES, "\t=1+1", "\r=1+1", "plain-id"]
    features = tmp_path / "features.csv"
    with features.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)  # "\r=1+1" quoted too
        writer.writerow(["track_id", "danceability", "energy", "loudness", "valence", "markets"])
        for i, tid in enumerate(ids):
            writer.writerow([tid, 0.1 * (i + 1), 0.5, -5.2 - i, 0.3, "@BR;GLOBAL" if i == 0 else "GLOBAL"])
    out = cli(
        "recommend", "--features", str(features), "--out", str(tmp_path / "recs.parquet"), "--csv-export",
        "--clusters", "2", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = read_csv((tmp_path / "recs.csv").read_bytes().decode("utf-8"))
    head, body = rows[0], rows[1:]
    assert len(body) == len(ids) * (len(ids) - 1)  # every pair: nothing lost to the quoting
    guarded = {("'" + t if t[0] in "=+-@\t\r" else t) for t in ids}
    assert {r[head.index("track_id")] for r in body} == guarded
    assert {r[head.index("neighbor_track_id")] for r in body} == guarded
    assert {r[head.index("track_markets")] for r in body} == {"'@BR;GLOBAL", "GLOBAL"}
    assert all(float(r[head.index("distance")]) >= 0 and not r[head.index("distance")].startswith("'") for r in body)
