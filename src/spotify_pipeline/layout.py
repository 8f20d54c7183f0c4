"""Where every object of a run lives in the data bucket.

    extract/snapshot_date=2026-11-23/run=<run folder>/playlists/GLOBAL/<playlist id>/page-000.json   raw API responses
    extract/snapshot_date=2026-11-23/run=<run folder>/artists/batch-000.json
    extract/snapshot_date=2026-11-23/run=<run folder>/audio_features/batch-000.json
    extract/snapshot_date=2026-11-23/_manifest.json                   written last; lists the files above
    transform/snapshot_date=2026-11-23/run=<run folder>/<table>.parquet + transform/.../_manifest.json
    recommend/snapshot_date=2026-11-23/run=<run folder>/<table>.parquet + recommend/.../_manifest.json
    load/snapshot_date=2026-11-23/_manifest.json                      receipt of the load

A stage acts only on its upstream stage's ``_manifest.json``; every other object is ignored
by name, without being read. Stages write under their own prefix only, and no stage consumes
its own manifest, so nothing a stage writes can trigger itself.

Each execution of a stage writes its data files into a run folder of its own,
``run=<run id>.<base generation>.<nonce>``: the run id, the generation of the stage's manifest
when the execution began (0: none yet) and 8 random hex digits (two deliveries of one event
never share a folder). The manifest keeps its fixed name, is published last with the generation
precondition ``ifGenerationMatch=<base generation>``, and is the only way to find the current
files. Because generations only grow, a folder whose base generation is older than the current
manifest's can never be published any more: the publisher deletes such folders (an earlier run's,
a crashed or a losing concurrent execution's), and leaves alone the folders of executions that
began after it published (see :class:`spotify_pipeline.store.RunScopedStore`). File contents do
not depend on the folder: same inputs, byte-identical files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal, get_args

# Chart files a run may read: dropped into inbox/ (each one starts a run) or uploaded under uploads/
# by the CLI (`run --charts-csv FILE`, `backfill`), which starts nothing by itself.
INBOX_PREFIX = "inbox/"
UPLOADS_PREFIX = "uploads/"
CHART_FILE_PREFIXES = (INBOX_PREFIX, UPLOADS_PREFIX)

# A Literal rather than a StrEnum: mypy checks every stage name written as a string against it, and
# the names appear in ~60 places (object names, log lines, table rows) that stay plain strings.
Stage = Literal["extract", "transform", "recommend", "load"]
STAGES: tuple[Stage, ...] = get_args(Stage)  # in pipeline order
MANIFEST = "_manifest.json"

# The stage whose manifest triggers each bucket-triggered stage.
UPSTREAM: dict[Stage, Stage] = {"transform": "extract", "recommend": "transform", "load": "recommend"}

_STAGE_NAME = "|".join(STAGES)
_MANIFEST_RE = re.compile(rf"^({_STAGE_NAME})/snapshot_date=(\d{{4}}-\d{{2}}-\d{{2}})/_manifest\.json$")
_RUN_FOLDER_RE = re.compile(
    rf"^(?P<prefix>(?:{_STAGE_NAME})/snapshot_date=\d{{4}}-\d{{2}}-\d{{2}}/)"
    r"run=(?P<run_id>[A-Za-z0-9_-]{1,64})\.(?P<base>\d{1,20})\.(?P<nonce>[0-9a-f]{8})/"
)


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


@dataclass(frozen=True)
class RunFolder:
    """The folder one execution of a stage writes its data files into (see the module doc)."""

    prefix: str  # the stage's snapshot prefix, e.g. ``transform/snapshot_date=2026-11-23/``
    run_id: str
    base_generation: int  # the stage manifest's generation when the execution began; 0: none
    nonce: str

    @property
    def path(self) -> str:
        return f"{self.prefix}run={self.run_id}.{self.base_generation}.{self.nonce}/"


def run_folder(stage: Stage, snapshot_date: date, run_id: str, base_generation: int, nonce: str) -> RunFolder:
    return RunFolder(prefix(stage, snapshot_date), run_id, base_generation, nonce)


def parse_run_folder(name: str) -> RunFolder | None:
    """The run folder an object lives in; None for an object outside any run folder."""
    match = _RUN_FOLDER_RE.match(name)
    if match is None:
        return None
    return RunFolder(match["prefix"], match["run_id"], int(match["base"]), match["nonce"])
