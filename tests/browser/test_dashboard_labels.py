"""Chart labels of names the warehouse should not hold but might: 300 characters, bidi controls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser.chrome import Page, open_page
from browser.conftest import render_crafted

from spotify_pipeline.safe_text import BIDI_CONTROLS

pytestmark = pytest.mark.emulators

MAX_LABEL_CHARS = 40  # docs/dashboard.md
# Track d is the most popular song of the crafted warehouse's latest week: the first bar of the chart.
LONG = "\u202eexe.txt " + "A very long song title, " * 13  # 9 + 312 characters, a right-to-left override first
SHOWN_NAME = LONG.replace("\u202e", "")

LABELS_JS = """
return [...document.querySelectorAll('#chart-top-songs text.bar-label')].map(t => ({
  shown: [...t.childNodes].filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join(''),
  title: t.querySelector('title') ? t.querySelector('title').textContent : null,
  width: t.getBBox().width,
}));
"""


@pytest.fixture(scope="module")
def long_names_page(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    from browser.crafted import W3, WEEKS, crafted_dataset
    from helpers import bq

    with crafted_dataset(bq(stack), renamed={"d": LONG}) as dataset:
        path = render_crafted(stack, dataset, tmp_path_factory.mktemp("long-names"))
        yield Page(path=path, weeks=WEEKS, week=W3, dataset=dataset)


def test_a_300_character_name_is_cut_in_the_chart_label_with_the_full_name_on_hover(
    browser: Any, long_names_page: Page
) -> None:
    assert len(LONG) > 300
    logs = open_page(browser, long_names_page.path)
    labels = browser.execute_script(LABELS_JS)
    first = labels[0]
    full = f"1. {SHOWN_NAME}"
    assert first["title"] == full  # the whole name, shown by the browser on hover
    assert first["shown"] == full[: MAX_LABEL_CHARS - 1] + "\u2026"
    assert len(first["shown"]) == MAX_LABEL_CHARS
    # Short names are shown whole, and every label fits left of the bars (the chart's label column).
    assert all(label["shown"] == label["title"] for label in labels[1:]) and len(labels) > 1
    assert max(label["width"] for label in labels) < 300
    assert [entry for entry in logs if entry["level"] == "SEVERE"] == []


def test_bidi_controls_from_the_warehouse_never_reach_the_page(browser: Any, long_names_page: Page) -> None:
    html = long_names_page.path.read_text(encoding="utf-8")
    assert not set(BIDI_CONTROLS) & set(html)
    open_page(browser, long_names_page.path)
    text = browser.execute_script("return document.documentElement.textContent")
    assert SHOWN_NAME in text and not set(BIDI_CONTROLS) & set(text)
