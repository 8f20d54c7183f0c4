"""cli_dashboard: the `dashboard` sub-command, parsed as `spotify-pipeline dashboard` parses it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import click
import pytest

import spotify_pipeline
from spotify_pipeline_tools.cli import dashboard as cli_dashboard
from spotify_pipeline_tools.cli.main import GROUP


def parse(argv: list[str]) -> tuple[click.Command, dict[str, Any]]:
    """The command `spotify-pipeline ARGV` runs and the parameters it receives."""
    command = GROUP.commands[argv[0]]
    with command.make_context(argv[0], argv[1:]) as ctx:
        return command, dict(ctx.params)


def test_options() -> None:
    command, args = parse(["dashboard", "--out", "build/dashboard"])
    assert (args["out"], args["snapshot_date"], args["project"], args["weeks"], args["neighbours"]) == (
        "build/dashboard",
        None,
        None,
        12,
        None,
    )
    assert command is cli_dashboard.dashboard_command
    _, args = parse(
        [
            "dashboard",
            "--out",
            "d",
            "--snapshot-date",
            "2026-11-23",
            "--project",
            "p",
            "--weeks",
            "4",
            "--neighbours",
            "20",
        ]
    )
    assert (args["snapshot_date"], args["project"], args["weeks"], args["neighbours"]) == ("2026-11-23", "p", 4, 20)


def test_out_is_required() -> None:
    with pytest.raises(click.UsageError):
        parse(["dashboard"])


def test_bad_snapshot_date_is_refused_before_touching_the_warehouse(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli_dashboard.main(["--stack-dir", "/nonexistent", "dashboard", "--out", "x", "--snapshot-date", "23/11/2026"])
        == 2
    )
    assert capsys.readouterr().err == "error: --snapshot-date must be YYYY-MM-DD, got '23/11/2026'\n"


@pytest.mark.parametrize("out", ["dash.pdf", "build/dashboard.png"])
def test_an_output_the_dashboard_cannot_write_is_refused_first(out: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_dashboard.main(["--stack-dir", "/nonexistent", "dashboard", "--out", out]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: --out {out}: the dashboard is one HTML page") and "index.html" in err[1]


def test_output_page() -> None:
    assert cli_dashboard.output_page("build/dashboard") == (Path("build/dashboard"), None)
    assert cli_dashboard.output_page("build/charts.html") == (Path("build"), "charts.html")


def test_the_functions_never_import_the_dashboard() -> None:
    """The core package (all the four functions ship) imports neither the dashboard nor its command."""
    root = Path(spotify_pipeline.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("spotify_pipeline_tools"), path.relative_to(root)


def test_default_weeks_agree() -> None:
    from spotify_pipeline_tools.dashboard import warehouse

    assert cli_dashboard.DEFAULT_WEEKS == warehouse.DEFAULT_WEEKS
