"""Manifests: the completion marker each stage writes last, and the only thing that triggers
the next stage. A manifest lists the stage's files with sizes, row counts and SHA-256, and
points at the exact upstream manifest (name, generation, checksum) it was computed from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from spotify_pipeline.layout import Stage

FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A manifest is malformed: permanent, reported and acknowledged."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileEntry:
    name: str  # full object name in the bucket
    sha256: str
    bytes: int
    rows: int | None = None
    table: str | None = None  # the BigQuery table the file feeds, for tabular outputs


@dataclass(frozen=True)
class UpstreamRef:
    name: str
    generation: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    stage: Stage
    snapshot_date: date
    run_id: str
    started_at: str
    finished_at: str
    files: tuple[FileEntry, ...]
    upstream: UpstreamRef | None = None
    sources: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] | None = None

    def file(self, table: str) -> FileEntry:
        for entry in self.files:
            if entry.table == table:
                return entry
        raise ManifestError(f"manifest of {self.stage}/{self.snapshot_date} lists no file for table {table!r}")

    @property
    def row_counts(self) -> dict[str, int]:
        return {f.table: f.rows for f in self.files if f.table is not None and f.rows is not None}

    def to_bytes(self) -> bytes:
        body = asdict(self)
        body["format"] = FORMAT_VERSION
        body["snapshot_date"] = self.snapshot_date.isoformat()
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Manifest:
        try:
            body = json.loads(data)
            if not isinstance(body, dict):
                raise ManifestError(f"{where}: expected a JSON object, got {type(body).__name__}")
            if body.get("format") != FORMAT_VERSION:
                raise ManifestError(f"{where}: field 'format' = {body.get('format')!r}: expected {FORMAT_VERSION}")
            upstream = body.get("upstream")
            return cls(
                stage=body["stage"],
                snapshot_date=date.fromisoformat(body["snapshot_date"]),
                run_id=body["run_id"],
                started_at=body["started_at"],
                finished_at=body["finished_at"],
                files=tuple(FileEntry(**f) for f in body["files"]),
                upstream=UpstreamRef(**upstream) if upstream else None,
                sources=dict(body.get("sources") or {}),
                summary=dict(body.get("summary") or {}),
                request=body.get("request"),
            )
        except ManifestError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{where}: not a valid manifest ({type(exc).__name__}: {exc})") from None
