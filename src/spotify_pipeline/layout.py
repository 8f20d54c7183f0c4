"""Where every object of a run lives in the data bucket.

    extract/snapshot_date=2026-11-23/playlists/GLOBAL/<playlist id>/page-000.json   raw API responses
    extract/snapshot_date=2026-11-23/artists/batch-000.json
    extract/snapshot_date=2026-11-23/audio_features/batch-000.json
    extract/snapshot_date=2026-11-23/_manifest.json                   written last
    transform/snapshot_date=2026-11-23/<table>.parquet + _manifest.json
    recommend/snapshot_date=2026-11-23/<table>.parquet + _manifest.json
    load/snapshot_date=2026-11-23/_manifest.json                      receipt of the load

A stage acts only on its upstream stage's ``_manifest.json``; every other object is ignored
by name, without being read. Stages write under their own prefix only, and no stage consumes
its own manifest, so nothing a stage writes can trigger itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

Stage = Literal["extract", "transform", "recommend", "load"]
STAGES: tuple[Stage, ...] = ("extract", "transform", "recommend", "load")
MANIFEST = "_manifest.json"

# The stage whose manifest triggers each bucket-triggered stage.
UPSTREAM: dict[Stage, Stage] = {"transform": "extract", "recommend": "transform", "load": "recommend"}

_MANIFEST_RE = re.compile(r"^(extract|transform|recommend|load)/snapshot_date=(\d{4}-\d{2}-\d{2})/_manifest\.json$")


def prefix(stage: Stage, snapshot_date: date) -> str:
    return f"{stage}/snapshot_date={snapshot_date.isoformat()}/"


def manifest_name(stage: Stage, snapshot_date: date) -> str:
    return prefix(stage, snapshot_date) + MANIFEST


@dataclass(frozen=True)
class ManifestRef:
    stage: Stage
    snapshot_date: date


def parse_manifest_name(name: str) -> ManifestRef | None:
    """The stage and snapshot of a manifest object name; None for any other object."""
    match = _MANIFEST_RE.match(name)
    if match is None:
        return None
    try:
        snapshot = date.fromisoformat(match.group(2))
    except ValueError:
        return None
    stage: Stage = match.group(1)  # type: ignore[assignment]  # the regex admits only stage names
    return ManifestRef(stage, snapshot)
