"""What the reliability suite tried and what happened, and the table generated from it.

Tests under ``tests/reliability/`` and ``tests/fuzz/`` call :func:`record` once a case's
assertions have passed, with what was done and what was observed (measured facts, worded
without generations so the text is the same on every run), and how long the test took (from
:func:`begin`, called before each test). The last test of the session
(``tests/reliability/test_zz_reliability_table.py``) renders the cases with :func:`render` and
compares the result with ``docs/reliability.md``, times left out of the comparison (they are the
measurements of the run that wrote the file); ``scripts/reliability_table.py`` re-runs the suites
and writes the file. Nothing in the table is written by hand.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "reliability.md"
BUILD = REPO / "build" / "reliability"
SECTIONS = {
    "fault": "Faults injected on the local stack",
    "input": "Bad inputs",
    "fuzz": "Fuzzing (hypothesis)",
}
# Test files that record cases: the table is checked only when all of them ran in the session.
RECORDING_FILES = (
    "tests/reliability/test_faults.py",
    "tests/reliability/test_stack_heal.py",
    "tests/reliability/test_outcomes.py",
    "tests/reliability/test_bad_inputs.py",
    "tests/reliability/test_snapshot_load.py",
    "tests/fuzz/test_parsers.py",
)


@dataclass(frozen=True)
class Case:
    section: str  # a key of SECTIONS
    case: str  # short id, unique, stable (sorts the table within its section)
    tried: str  # the fault or input
    observed: str  # what happened, as measured by the test
    seconds: float | None = field(default=None, compare=False)  # the recording test's duration


CASES: dict[str, Case] = {}
_STARTED = [time.monotonic()]
_TIME_CELL = re.compile(r"\| [0-9]+\.[0-9] s \|$", re.M)


def begin() -> None:
    """A test starts: the cases it records are timed from here."""
    _STARTED[0] = time.monotonic()


def without_times(text: str) -> str:
    """The table with its time column blanked: what must be the same on every run."""
    return _TIME_CELL.sub("| t |", text)


def record(section: str, case: str, tried: str, observed: str) -> None:
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}")
    if case in CASES and CASES[case] != Case(section, case, tried, observed):
        raise ValueError(f"case {case!r} recorded twice with different content")
    CASES[case] = Case(section, case, tried, observed, round(time.monotonic() - _STARTED[0], 1))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\r", "\\r").replace("\n", " ")


def render(cases: dict[str, Case]) -> str:
    lines = [
        "# Reliability: every fault and bad input tried, and what happened",
        "",
        "<!-- Generated from the test suite's results by scripts/reliability_table.py; do not edit by hand. -->",
        "",
        "Each row is one case of `tests/reliability/` or `tests/fuzz/`, recorded by the test after its",
        "assertions passed; `tests/reliability/test_zz_reliability_table.py` fails when this file differs",
        "from what the suite observed. Faults run on the local emulator stack; each run under a fault is",
        "compared with a clean run by content hashes of every table (rows of the snapshot) and every",
        "bucket prefix (the files its manifest lists). *time*: how long the case's test took in the run",
        "that wrote this file (a 2-core machine), fault injection and recovery included.",
        "",
    ]
    for section, title in SECTIONS.items():
        rows = sorted((c for c in cases.values() if c.section == section), key=lambda c: c.case)
        if not rows:
            continue
        lines += [f"## {title}", "", "| case | tried | what happened | time |", "| --- | --- | --- | --- |"]
        lines += [f"| `{c.case}` | {_cell(c.tried)} | {_cell(c.observed)} | {c.seconds or 0.0:.1f} s |" for c in rows]
        lines.append("")
    return "\n".join(lines)


def write_build(cases: dict[str, Case]) -> Path:
    """Keep the session's results and rendering under build/ (what the script copies)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / "results.json").write_text(
        json.dumps([asdict(c) for c in sorted(cases.values(), key=lambda c: (c.section, c.case))], indent=1) + "\n"
    )
    out = BUILD / "reliability.md"
    out.write_text(render(cases))
    return out
