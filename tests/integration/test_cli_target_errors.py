"""Every command names its target first on stderr, whatever folder it runs from, and turns the
failures a user meets into one or two lines (cli_target, cli_errors), on the session's stack, through
the installed ``spotify-pipeline`` in processes of their own."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from helpers import CLI, bq, cli, ensure_loaded, error_lines

from spotify_pipeline.config import Settings
from spotify_pipeline_tools.cli.errors import BROKEN_PIPE
from spotify_pipeline_tools.cli.target import Target

DAY = date(2026, 7, 6)  # a week no other test of the session loads
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loaded(stack: Any) -> Any:
    ensure_loaded(stack, DAY, "cli-target-errors")
    return stack


def target_line(stack: Any) -> str:
    return f"target: local stack ({stack.root}, warehouse spotify_charts)"


def test_query_from_any_folder_acts_on_the_same_stack_and_keeps_stdout_clean(loaded: Any, tmp_path: Path) -> None:
    sql = f"SELECT market, COUNT(*) AS n FROM chart_entries WHERE snapshot_date = '{DAY}' GROUP BY 1 ORDER BY 1"
    results = []
    for cwd in (tmp_path, REPO / "docs", Path("/")):
        out = cli("--stack-dir", str(loaded.root), "query", sql, "--format", "csv", cwd=cwd)
        assert out.returncode == 0, out.stderr
        assert out.stderr.splitlines()[0] == target_line(loaded)
        results.append(out.stdout)
    assert results[0] == "market,n\nBR,50\nGLOBAL,50\nKR,50\n"  # the CSV alone: no target line on stdout
    assert results == [results[0]] * 3


def test_the_stack_folder_variable_is_taken_from_the_checkout_not_the_current_folder(tmp_path: Path) -> None:
    """``SPOTIFY_PIPELINE_STACK_DIR`` unset: the checkout's .stack/; relative: inside the checkout."""
    for env, root in (({}, REPO / ".stack"), ({"SPOTIFY_PIPELINE_STACK_DIR": ".stack-b"}, REPO / ".stack-b")):
        lines = {cli("stack", "status", cwd=cwd, env=env).stderr.splitlines()[0] for cwd in (tmp_path, REPO / "src")}
        assert lines == {f"target: local stack ({root}, warehouse spotify_charts)"}


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("SELEC * FROM tracks", ["BigQuery rejected the SQL", "Syntax error", "Line 1, Col: 12", "fix the statement"]),
        ("SELECT * FROM no_such_table", ["no_such_table", "not found", "docs/tables.md"]),
        ("SELECT no_such_column FROM tracks", ["BigQuery rejected the SQL", "no_such_column", "LINE 1"]),
    ],
    ids=["syntax", "table", "column"],
)
def test_sql_errors_are_bigquerys_own_message_in_two_lines(
    loaded: Any, tmp_path: Path, sql: str, words: list[str]
) -> None:
    out = cli("--stack-dir", str(loaded.root), "query", sql, cwd=tmp_path)
    assert out.returncode != 0 and out.stdout == ""
    assert "Traceback" not in out.stderr and out.stderr.splitlines()[0] == target_line(loaded)
    lines = error_lines(out.stderr)
    assert len(lines) == 2 and lines[0].startswith("error: ")
    for word in words:
        assert word.lower() in out.stderr.lower(), (word, out.stderr)


@pytest.mark.parametrize("argv", [["status"], ["query", "SELECT * FROM chart_entries", "--format", "csv"]])
def test_a_closed_pipe_ends_the_command_quietly(loaded: Any, tmp_path: Path, argv: list[str]) -> None:
    """``spotify-pipeline status | head -0``: the reader is gone before the command writes."""
    proc = subprocess.Popen(
        [str(CLI), "--stack-dir", str(loaded.root), *argv], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == BROKEN_PIPE
    assert stderr.splitlines() == [target_line(loaded)]  # no BrokenPipeError, no traceback


CHARTS_HEADER = "rank,uri,artist_names,track_name,source,peak_rank,previous_rank,weeks_on_chart"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, ["regional-br-weekly-2026-08-03.csv", "no such file", "check the path"]),
        ("", ["regional-br-weekly-2026-08-03.csv", "the file is empty"]),
        (
            "rank,uri,artist_names\n1,spotify:track:0123456789abcdefghijkl,A\n",
            ["missing column(s) 'track_name'", "charts.spotify.com"],
        ),
    ],
    ids=["missing", "empty", "missing-column"],
)
def test_run_with_a_bad_chart_file_says_what_is_wrong_before_publishing(
    stack: Any, tmp_path: Path, content: str | None, words: list[str]
) -> None:
    name = "regional-br-weekly-2026-08-03.csv"
    if content is not None:
        (tmp_path / name).write_text(content)
    out = cli("--stack-dir", str(stack.root), "run", "--charts-csv", name, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[0] == target_line(stack)
    lines = error_lines(out.stderr)
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error: ") and "published" not in out.stdout
    for word in words:
        assert word in out.stderr, (word, out.stderr)


def test_backfill_and_replay_name_their_target_and_refuse_bad_dates(stack: Any, tmp_path: Path) -> None:
    out = cli("--stack-dir", str(stack.root), "replay", "--from", "2026-08-10", "--to", "2026-08-03", cwd=tmp_path)
    assert out.returncode == 2 and error_lines(out.stderr) == ["error: --to 2026-08-03 is before --from 2026-08-10"]
    out = cli("--stack-dir", str(stack.root), "backfill", "--charts-csv", "nowhere.csv", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.splitlines()[0] == target_line(stack)
    assert error_lines(out.stderr)[0] == "error: nowhere.csv: no such file or folder"


def test_the_warehouse_client_runs_jobs_in_the_datasets_own_location(stack: Any) -> None:
    """--project's path: the location is read from the dataset, not assumed to be US."""
    from google.cloud import bigquery

    dataset = bigquery.Dataset("local-project.charts_eu")
    dataset.location = "EU"
    bq(stack).create_dataset(dataset, exists_ok=True)
    env = stack.env()
    target = Target(env, Settings.from_env({**env, "PIPELINE_DATASET": "charts_eu"}))
    client = target.warehouse_client()
    assert (target.location, client.location) == ("EU", "EU")
    assert target.describe() == "project local-project / dataset charts_eu / location EU"


def test_a_run_id_already_recorded_is_refused_before_publishing(loaded: Any, tmp_path: Path) -> None:
    """Reusing a run id would let the follower report the old run's outcome as the new one's."""
    before = bq(loaded).query("SELECT COUNT(*) AS n FROM `local-project.spotify_charts.pipeline_runs`").result()
    out = cli("--stack-dir", str(loaded.root), "run", "--run-id", "cli-target-errors", "--markets", "BR", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = error_lines(out.stderr)
    assert lines[0].startswith("error: run id cli-target-errors is already recorded"), out.stderr
    assert "--run-id" in lines[-1] and "Traceback" not in out.stderr
    after = bq(loaded).query("SELECT COUNT(*) AS n FROM `local-project.spotify_charts.pipeline_runs`").result()
    assert next(iter(after))["n"] == next(iter(before))["n"]  # nothing was published
