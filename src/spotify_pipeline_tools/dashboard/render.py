"""The payload to one self-contained HTML page: data, scripts and style inlined.

The page opens offline from ``file://``: no CDN, no font, no request at all. Its Content
Security Policy allows inline script and style and ``data:`` images only, so a request the page
might try anyway is refused by the browser (and shows as a console error in the browser tests).
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; connect-src 'none'; media-src 'none'; frame-src 'none'; "
    "worker-src 'none'; base-uri 'none'; form-action 'none'"
)
PAGE = "index.html"
_PLACEHOLDER = re.compile(r"\{\{([A-Z]+)\}\}")


def _static(name: str) -> str:
    return resources.files("spotify_pipeline_tools.dashboard").joinpath("static", name).read_text("utf-8")


def inline_script(js: str) -> str:
    """Script text safe inside <script>: nothing in it can close the element or open a comment."""
    return js.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT").replace("<!--", "<\\!--")


def data_json(payload: dict[str, Any]) -> str:
    """Compact JSON for a <script type="application/json"> block: '<', '>' and '&' escaped."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def render_html(payload: dict[str, Any], *, title: str = "Spotify weekly charts") -> str:
    parts = {
        "CSP": CSP,
        "TITLE": html.escape(title),
        "CSS": _static("dashboard.css"),
        "DATA": data_json(payload),
        "CHARTS": inline_script(_static("charts.js")),
        "APP": inline_script(_static("dashboard.js")),
    }
    # One pass over the template only: nothing inserted is scanned for placeholders again.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _static("template.html"))


def write_dashboard(
    payload: dict[str, Any], out_dir: Path, *, title: str = "Spotify weekly charts", page: str | None = None
) -> Path:
    """Write ``out_dir/page`` (default index.html, atomically) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / (page or PAGE)
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(render_html(payload, title=title), encoding="utf-8")
    tmp.replace(target)
    return target
