"""Text from outside (chart files, API answers, the warehouse) made safe where people see it.

* **Display names** lose Unicode bidi controls (:func:`strip_bidi`): a right-to-left override in a
  track name would otherwise reorder what is shown around it (labels, ranks, the file name a
  spreadsheet shows). Transform applies it to every display-name column; the dashboard applies it
  again to what it reads from the warehouse. Raw objects in the bucket keep names as received.
* **CSV cells** follow OWASP's CSV-injection rule (:func:`neutralise`): a text cell starting with
  ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, so a spreadsheet
  shows it as text instead of evaluating it; the csv writers then quote separators and quotes.
  Typed numbers (int, float, Decimal) are numbers, not text: a negative loudness stays ``-5.2``.
  Every CSV the tool writes goes through :func:`csv_cell` (row by row) or :func:`csv_safe_table`
  (Arrow tables); docs/command-line.md states the rule for users.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import pyarrow as pa

# U+202A-U+202E (embeddings, overrides), U+2066-U+2069 (isolates), LRM, RLM, ALM.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
_NO_BIDI = dict.fromkeys(map(ord, BIDI_CONTROLS))

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_GUARD = "'"


def strip_bidi(text: str) -> str:
    """``text`` without Unicode bidi control characters."""
    return text.translate(_NO_BIDI)


def neutralise(text: str) -> str:
    """A text cell a spreadsheet will not evaluate: ``'`` before a leading formula character."""
    return FORMULA_GUARD + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: object, text: str) -> str:
    """The CSV cell of ``value`` already formatted as ``text``: a number as it is, anything else
    (strings, dates, lists joined into one cell) neutralised."""
    is_number = isinstance(value, int | float | Decimal)  # bool too: written True/False
    return text if is_number else neutralise(text)


def write_csv(
    out: TextIO, header: Sequence[str], rows: Iterable[Sequence[object]], fmt: Callable[[object], str]
) -> None:
    """A header and rows of typed values as CSV (lines end in ``\\n``), each value formatted by ``fmt``
    and made a safe cell."""
    # The csv module quotes only the characters of its line terminator: written with "\r\n", a cell
    # holding a lone CR is quoted too (with "\n" it would split the row); each line then ends in "\n".
    line = io.StringIO()
    writer = csv.writer(line, lineterminator="\r\n")
    for cells in itertools.chain(
        [[neutralise(name) for name in header]], ([csv_cell(v, fmt(v)) for v in row] for row in rows)
    ):
        writer.writerow(cells)
        out.write(line.getvalue()[:-2] + "\n")
        line.seek(0)
        line.truncate()


def csv_safe_table(tbl: pa.Table) -> pa.Table:
    """``tbl`` with every string column neutralised, row for row as :func:`neutralise` (vectorised);
    number columns untouched. Columns must be flat (see ``spotify_pipeline_tools.cli.recommend_export.csv_flatten``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    starts = pa.array(FORMULA_STARTS, pa.string())
    for i, f in enumerate(tbl.schema):
        if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            continue
        col = tbl.column(i)
        risky = pc.is_in(pc.utf8_slice_codeunits(col, 0, 1), value_set=starts.cast(f.type))
        if not pc.any(risky).as_py():
            continue  # the usual case (ids, market codes): no copy of the column
        guarded = pc.binary_join_element_wise(pa.scalar(FORMULA_GUARD, f.type), col, pa.scalar("", f.type))
        tbl = tbl.set_column(i, f, pc.if_else(risky, guarded, col))
    return tbl
