"""docs/data-sources.md's request counts: each row names the test that asserts it against the
stand-in's counters, and each demo total is what its own formula gives on the demo catalogue."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from spotify_pipeline_tools.standin import build_demo_catalogue

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "data-sources.md").read_text(encoding="utf-8")
TESTS = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "tests").rglob("test_*.py"))


def table(heading: str) -> list[list[str]]:
    """The rows (cells) of the first table under ``heading``, header and rule left out."""
    lines: list[str] = []
    for line in DOC.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[2:]]


COUNTS = table("## Request counts")
CHOICES = table("## Which configuration for which app")


def demo_sizes() -> dict[str, int]:
    cat = build_demo_catalogue()
    return {"T": len(cat.tracks), "A": len({a["id"] for t in cat.tracks.values() for a in t["artists"]})}


def term_value(term: str, sizes: dict[str, int]) -> int:
    """One addend: ``⌈A/50⌉``, a count (``pages 3``, ``1 (the 403)``) or a size (``A single artists``)."""
    term = re.sub(r"\([^)]*\)|`[^`]*`|\*", "", term)
    if m := re.search(r"⌈(\w)/(\d+)⌉", term):
        return math.ceil(sizes[m.group(1)] / int(m.group(2)))
    if m := re.search(r"\b(\d+)\b", term):
        return int(m.group(1))
    m = re.search(r"\b([AT])\b", term)
    assert m, f"no count in {term!r}"
    return sizes[m.group(1)]


def totals(cell: str, sizes: dict[str, int]) -> list[int]:
    """``formula = 1 + 3 + 2 + 2 = 8`` evaluated part by part."""
    return [sum(term_value(t, sizes) for t in part.split(" + ")) for part in cell.split(" = ")]


def test_the_tables_were_found() -> None:
    assert len(COUNTS) >= 10 and all(len(row) == 3 for row in COUNTS)
    assert len(CHOICES) == 4 and all(len(row) == 4 for row in CHOICES)


@pytest.mark.parametrize("row", COUNTS, ids=[row[0] for row in COUNTS])
def test_every_request_count_names_an_existing_test(row: list[str]) -> None:
    named = re.findall(r"`(test_\w+)`", row[2])
    paths = re.findall(r"`(tests/[\w/]+\.py)`", row[2])
    assert named or paths, f"{row[0]}: no test asserts it"
    assert [n for n in named if f"def {n}(" not in TESTS] == []
    assert [p for p in paths if not (REPO / p).is_file()] == []


def test_demo_totals_follow_their_formulas() -> None:
    sizes = demo_sizes()
    assert sizes == {"T": 143, "A": 60}  # what the tables say the demo is
    cells = [row[1] for row in COUNTS if " = " in row[1]] + [row[3] for row in CHOICES if " = " in row[3]]
    assert len(cells) >= 8
    for cell in cells:
        values = totals(cell, sizes)
        assert len(set(values)) == 1, f"{cell}: {values}"
