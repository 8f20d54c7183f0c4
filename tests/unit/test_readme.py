"""The README documents what the code reads: every environment variable and every CLI command."""

from __future__ import annotations

from pathlib import Path

from spotify_pipeline.config import ENVIRONMENT_VARIABLES
from spotify_pipeline.events import RUN_REQUEST_FIELDS
from spotify_pipeline_tools.cli.main import GROUP

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_environment_variable_is_in_the_configuration_table() -> None:
    missing = [name for name in ENVIRONMENT_VARIABLES if f"| `{name}` |" not in README]
    assert missing == []


def test_every_run_request_field_is_documented() -> None:
    assert [f for f in RUN_REQUEST_FIELDS if f"| `{f}` |" not in README] == []


def test_every_command_is_in_the_command_table() -> None:
    commands = GROUP.commands
    assert [c for c in commands if f"`spotify-pipeline {c}" not in README] == []


def test_quick_start_is_the_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert quick.split() == ["make", "demo", "make", "test"]
