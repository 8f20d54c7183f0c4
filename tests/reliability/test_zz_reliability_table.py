"""docs/reliability.md is what this session's reliability and fuzz tests observed, nothing else.

Runs last (tests/reliability/conftest.py moves it to the end). With ``RELIABILITY_WRITE=1``
(what ``scripts/reliability_table.py`` sets) it writes the file instead of comparing.
"""

from __future__ import annotations

import difflib
import os

import pytest
from reliability_log import CASES, DOC, RECORDING_FILES, render, without_times, write_build


def test_reliability_table_is_generated_from_this_run(request: pytest.FixtureRequest) -> None:
    ran = {item.nodeid.split("::")[0] for item in request.session.items}
    missing_files = [f for f in RECORDING_FILES if f not in ran]
    if missing_files:
        pytest.skip(f"the table is checked when every recording suite runs; not run: {', '.join(missing_files)}")
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci":
        pytest.skip("the table records the fuzzers' default (ci) profile")
    built = write_build(CASES)
    text = render(CASES)
    if os.environ.get("RELIABILITY_WRITE") == "1":
        DOC.write_text(text)
        return
    committed = DOC.read_text() if DOC.exists() else ""
    if without_times(committed) != without_times(text):
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True), text.splitlines(keepends=True), "docs/reliability.md", str(built)
            )
        )
        pytest.fail(
            "docs/reliability.md is not what this run observed (a case failed, was added or changed); "
            f"if the change is right, run `.venv/bin/python scripts/reliability_table.py`.\n{diff[:6000]}"
        )
