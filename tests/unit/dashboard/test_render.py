"""dashboard.render: one self-contained page; data that cannot break out of its script element."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from spotify_pipeline_tools.dashboard.render import CSP, data_json, inline_script, render_html, write_dashboard

HOSTILE = "</script><script>alert(1)</script><!-- & \u2028"


def payload() -> dict[str, object]:
    return {"version": 1, "meta": {"title": HOSTILE, "generatedAt": datetime(2026, 1, 1, tzinfo=UTC).isoformat()}}


def test_data_json_round_trips_and_cannot_close_the_script() -> None:
    text = data_json(payload())
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == payload()


def test_inline_script_cannot_close_the_script() -> None:
    assert "</script" not in inline_script('var s = "</script>"; var c = "<!--";').lower()
    assert "<!--" not in inline_script('var c = "<!--";')


def test_page_is_self_contained() -> None:
    page = render_html(payload(), title="A & B <charts>")
    assert "{{" not in page
    assert "<title>A &amp; B &lt;charts&gt;</title>" in page
    assert CSP in page and "connect-src 'none'" in CSP and "default-src 'none'" in CSP
    # No external resource: no src attribute at all, the only link is the inline favicon.
    assert not re.search(r"<(script|img|iframe|audio|video|source)\b[^>]*\bsrc\s*=", page, re.I)
    assert re.findall(r"<link\b[^>]*>", page) == ['<link rel="icon" href="data:,">']
    assert "cdn" not in page.lower()
    blocks = re.findall(r"<script[^>]*>(.*?)</script>", page, re.S)
    assert len(blocks) == 3  # the data, the charts, the page
    assert json.loads(blocks[0]) == payload()


def test_write_dashboard(tmp_path: Path) -> None:
    path = write_dashboard(payload(), tmp_path / "out")
    assert path == tmp_path / "out" / "index.html"
    assert path.read_text(encoding="utf-8") == render_html(payload())
    assert [p.name for p in path.parent.iterdir()] == ["index.html"]
