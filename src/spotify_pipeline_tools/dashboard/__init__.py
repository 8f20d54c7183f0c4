"""The static dashboard: the seed's Data Studio report as one self-contained HTML file.

``warehouse`` reads the dashboard views (``schemas/tables.json`` "views") through
google-cloud-bigquery, ``payload`` turns the rows into compact, columnar JSON, and ``render``
inlines that JSON, the page's script and style and plotly.js into a page that opens offline.
None of this is imported by the four functions; plotly is needed only to render.
"""

from __future__ import annotations

from spotify_pipeline_tools.dashboard.payload import build_payload
from spotify_pipeline_tools.dashboard.render import render_html, write_dashboard
from spotify_pipeline_tools.dashboard.warehouse import Selection, WarehouseRows, read_warehouse

__all__ = ["Selection", "WarehouseRows", "build_payload", "read_warehouse", "render_html", "write_dashboard"]
