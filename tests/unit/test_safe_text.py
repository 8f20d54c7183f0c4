"""safe_text: the CSV-injection rule (OWASP) and bidi-control stripping, on the issue's examples."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pyarrow as pa
import pytest

from spotify_pipeline.safe_text import BIDI_CONTROLS, csv_cell, csv_safe_table, neutralise, strip_bidi, write_csv

# The examples: each would be evaluated by a spreadsheet if written as it is.
FORMULAS = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "\t=1+1", "\r=1+1"]
HARMLESS = ["Demo Track 001", "", "line\rbreak", "a=b", " =leading space", "'quoted", "100% Hits", "Ünïcødé"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_formula_cell_gets_a_leading_quote(text: str) -> None:
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("text", HARMLESS)
def test_other_text_is_written_as_it_is(text: str) -> None:
    assert neutralise(text) == text


@pytest.mark.parametrize("value", [-5.2, -3, Decimal("-1.50"), 0.0, True])
def test_numbers_are_numbers_not_text(value: object) -> None:
    assert csv_cell(value, str(value)) == str(value)


def test_text_that_looks_like_a_number_is_still_text() -> None:
    assert csv_cell("-5.2", "-5.2") == "'-5.2"  # a STRING column: a spreadsheet would parse it, so guard it


def test_write_csv_reads_back_with_every_formula_guarded_and_numbers_intact() -> None:
    out = io.StringIO()
    rows = [[name, -5.2, [name, "BR"]] for name in FORMULAS + HARMLESS]
    write_csv(out, ["name", "loudness", "markets"], rows, lambda v: ";".join(v) if isinstance(v, list) else str(v))
    back = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert back[0] == ["name", "loudness", "markets"]
    for (name, _, _), (cell, loudness, markets) in zip(rows, back[1:], strict=True):
        guarded = name in FORMULAS
        assert cell == ("'" + name if guarded else name)
        assert markets == ("'" if guarded else "") + name + ";BR"
        assert loudness == "-5.2"


def test_arrow_tables_follow_the_same_rule() -> None:
    texts = FORMULAS + HARMLESS + [None]
    tbl = pa.table({"name": pa.array(texts, pa.string()), "loudness": [-5.2] * len(texts)})
    safe = csv_safe_table(tbl)
    assert safe.column("name").to_pylist() == [None if t is None else neutralise(t) for t in texts]
    assert safe.column("loudness").to_pylist() == [-5.2] * len(texts)
    assert safe.schema == tbl.schema


def test_every_bidi_control_is_stripped_and_nothing_else() -> None:
    assert len(BIDI_CONTROLS) == 12  # U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C
    assert (
        strip_bidi("\u202eevil" + BIDI_CONTROLS + " \u05e9\u05dc\u05d5\u05dd \u200d")
        == "evil \u05e9\u05dc\u05d5\u05dd \u200d"
    )
