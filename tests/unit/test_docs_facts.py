"""The docs document what the code reads, each fact on its page: every environment variable the
configuration reads, every run-request field, every CLI command, every table and view. The README
holds the quick start, a front door's length, and a link to every page. Facts, not sentences."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from spotify_pipeline.config import ENVIRONMENT_VARIABLES
from spotify_pipeline.events import RUN_REQUEST_FIELDS
from spotify_pipeline_tools.cli.main import GROUP

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
README = (REPO / "README.md").read_text(encoding="utf-8")


def doc(name: str) -> str:
    return (REPO / "docs" / name).read_text(encoding="utf-8")


def variables_config_reads() -> set[str]:
    """The table of pipeline settings, plus every variable-like string constant of config.py
    (the command line's own settings are read there too)."""
    tree = ast.parse((SRC / "spotify_pipeline" / "config.py").read_text(encoding="utf-8"))
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return set(ENVIRONMENT_VARIABLES) | {c for c in constants if re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", c)}


def tool_variables() -> set[str]:
    """The command line's and the local stack's own settings, wherever in src/ they are read."""
    names = r"\b(?:SPOTIFY_PIPELINE|EVENTARC_STANDIN)_[A-Z0-9_]*[A-Z0-9]\b"
    return {m for p in SRC.rglob("*.py") for m in re.findall(names, p.read_text(encoding="utf-8"))}


def cli_commands() -> list[str]:
    return list(GROUP.commands)


def schema_source() -> dict[str, dict[str, object]]:
    (path,) = SRC.glob("spotify_pipeline/**/schemas/tables.json")
    loaded: dict[str, dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def test_every_environment_variable_is_in_the_configuration_page() -> None:
    names = variables_config_reads() | tool_variables()
    assert len(names) > len(ENVIRONMENT_VARIABLES)  # the constants and the tools' settings were found
    assert sorted(n for n in names if f"`{n}`" not in doc("configuration.md")) == []


def test_every_run_request_field_is_in_the_event_contract() -> None:
    assert [f for f in RUN_REQUEST_FIELDS if f"| `{f}` |" not in doc("event-contract.md")] == []


def test_every_command_is_in_the_command_line_page() -> None:
    commands = cli_commands()
    assert "run" in commands and "query" in commands
    assert [c for c in commands if f"`spotify-pipeline {c}" not in doc("command-line.md")] == []


def test_every_table_and_view_is_in_the_tables_page() -> None:
    source = schema_source()
    tables = doc("tables.md")
    assert [t for t in source["tables"] if f"| `{t}` |" not in tables] == []
    assert [v for v in source["views"] if f"`{v}`" not in tables] == []


def test_quick_start_is_the_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert quick.split() == ["make", "demo", "make", "test"]


def test_the_readme_is_a_front_door_linking_every_page() -> None:
    assert len(README.splitlines()) <= 250
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert [p for p in pages if f"](docs/{p})" not in README] == []
