"""The CLI's error policy (cli_errors) through the real command, in processes of their own: one or
two lines on stderr saying what happened and what to do, a non-zero exit, no traceback; --debug
(or SPOTIFY_PIPELINE_DEBUG) shows the traceback. These cases need no local stack."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from google.api_core import exceptions as api
from google.auth.exceptions import DefaultCredentialsError
from helpers import cli, error_lines

from spotify_pipeline.errors import DataError
from spotify_pipeline_tools.cli.errors import Explanation, explain

NO_CREDENTIALS = {"GOOGLE_APPLICATION_CREDENTIALS": "", "CLOUDSDK_CONFIG": "/nonexistent"}


def assert_one_error(out: subprocess.CompletedProcess[str], *words: str, code: int | None = None) -> list[str]:
    """The user's checks: a non-zero exit, no traceback, at most two lines of error with the key words."""
    assert out.returncode != 0 and (code is None or out.returncode == code), (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = error_lines(out.stderr)
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error: "), out.stderr
    for word in words:
        assert word in out.stderr, (word, out.stderr)
    return lines


def test_a_missing_input_file_names_the_file(tmp_path: Path) -> None:
    out = cli("recommend", "--features", "nowhere.parquet", "--out", "recs.parquet", cwd=tmp_path)
    assert_one_error(out, "nowhere.parquet", "no such file", "check the path", code=2)


def test_an_empty_input_file_says_it_is_empty(tmp_path: Path) -> None:
    (tmp_path / "features.csv").write_bytes(b"")
    out = cli("recommend", "--features", "features.csv", "--out", "recs.parquet", cwd=tmp_path)
    assert_one_error(out, "features.csv", "empty", code=2)


@pytest.mark.parametrize("flag", ["--out", "--clusters-out"])
def test_an_output_extension_recommend_cannot_write_is_refused_before_any_work(tmp_path: Path, flag: str) -> None:
    (tmp_path / "features.csv").write_text("track_id,danceability,energy,loudness,valence\nt1,0.5,0.5,-5,0.5\n")
    outputs = {"--out": "recs.parquet", flag: "recs.json"}
    argv = [a for pair in outputs.items() for a in pair]
    out = cli("recommend", "--features", "features.csv", *argv, cwd=tmp_path)
    lines = assert_one_error(out, f"{flag} recs.json", ".parquet, .pq, .csv, .csv.gz", "not .json", code=2)
    assert "recs.parquet" in lines[1]  # what to do: the name it could write
    assert list(tmp_path.iterdir()) == [tmp_path / "features.csv"]  # nothing written


@pytest.mark.parametrize("flag", ["--out", "--stats"])
def test_an_output_in_a_missing_folder_is_refused_before_any_work(tmp_path: Path, flag: str) -> None:
    (tmp_path / "features.csv").write_text("track_id,danceability,energy,loudness,valence\nt1,0.5,0.5,-5,0.5\n")
    outputs = {"--out": "recs.parquet", flag: "missing/out.parquet" if flag == "--out" else "missing/stats.json"}
    argv = [a for pair in outputs.items() for a in pair]
    out = cli("recommend", "--features", "features.csv", *argv, cwd=tmp_path)
    assert_one_error(out, f"{flag} missing/", "no folder missing", "mkdir -p missing", code=2)
    assert "recommend:" not in out.stderr  # refused before the model ran


def test_project_without_credentials_says_how_to_log_in(tmp_path: Path) -> None:
    out = cli(
        "query", "SELECT 1", "--project", "my-project", cwd=tmp_path, env={**NO_CREDENTIALS, "HOME": str(tmp_path)}
    )
    lines = assert_one_error(out, "no Google Cloud credentials", "gcloud auth application-default login", code=1)
    assert out.stderr.splitlines()[0] == "target: project my-project / dataset spotify_charts"
    assert len(lines) == 2 and out.stdout == ""


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_debug_shows_the_traceback(tmp_path: Path, how: str) -> None:
    env = {**NO_CREDENTIALS, "HOME": str(tmp_path)}
    argv = ["query", "SELECT 1", "--project", "my-project"]
    if how == "flag":
        out = cli("--debug", *argv, cwd=tmp_path, env=env)
    else:
        out = cli(*argv, cwd=tmp_path, env={**env, "SPOTIFY_PIPELINE_DEBUG": "1"})
    assert out.returncode != 0
    assert "Traceback (most recent call last)" in out.stderr
    assert "google.auth.exceptions.DefaultCredentialsError" in out.stderr


def test_the_project_variable_selects_google_cloud(tmp_path: Path) -> None:
    env = {**NO_CREDENTIALS, "HOME": str(tmp_path), "SPOTIFY_PIPELINE_PROJECT": "from-variable"}
    out = cli("status", cwd=tmp_path, env=env)
    assert out.stderr.splitlines()[0] == "target: project from-variable / dataset spotify_charts"
    assert_one_error(out, "gcloud auth application-default login")


def test_a_local_command_without_a_stack_says_how_to_start_one(tmp_path: Path) -> None:
    out = cli("--stack-dir", "no-stack-here", "query", "SELECT 1", cwd=tmp_path)
    assert_one_error(out, f"no local stack in {tmp_path / 'no-stack-here'}", "spotify-pipeline stack up", code=1)


# --- the explanations, pure -------------------------------------------------------------------


def explained(exc: Exception) -> Explanation:
    explanation = explain(exc)
    assert explanation is not None, exc
    return explanation


def test_explain_keeps_any_server_message_to_two_lines() -> None:
    exc = api.BadRequest(
        "Syntax error",
        errors=[{"reason": "invalidQuery", "message": "Syntax error: \x1b[4mFROM\x1b[0m\nLINE 1: SELEC *\n    ^"}],
    )
    lines = explained(exc).lines()
    assert explained(exc).code == 2
    assert len(lines) == 2 and lines[0] == "error: BigQuery rejected the SQL: Syntax error: FROM | LINE 1: SELEC * | ^"


def test_explain_sorts_expected_failures_from_bugs() -> None:
    assert (
        explained(DefaultCredentialsError("x")).lines()[1].startswith("  run `gcloud auth application-default login`")
    )
    assert explained(DataError("f.csv: missing column(s) 'uri'")).code == 2
    assert explained(FileNotFoundError(2, "No such file", "f.csv")).lines()[0] == "error: f.csv: no such file or folder"
    assert explained(api.NotFound("Not found: Table p.d.t")).lines()[0] == "error: Not found: Table p.d.t"
    assert explain(KeyError("a bug")) is None  # a bug keeps its traceback


def test_empty_sql_is_refused_before_any_warehouse_is_touched(tmp_path: Path) -> None:
    out = cli("query", "  ", cwd=tmp_path)
    assert_one_error(out, "empty SQL", code=2)
