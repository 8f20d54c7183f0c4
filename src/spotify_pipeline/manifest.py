"""Manifests: the completion marker each stage writes last, and the only thing that triggers
the next stage. A manifest lists the stage's files with sizes, row counts and SHA-256, and
points at the exact upstream manifest (name, generation, checksum) it was computed from.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Annotated, Any

import msgspec

from spotify_pipeline.layout import Stage
from spotify_pipeline.validation import field_error

FORMAT_VERSION = 1
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class ManifestError(ValueError):
    """A manifest is malformed: permanent, reported and acknowledged."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str  # full object name in the bucket
    sha256: Sha256
    bytes: NonNegative
    rows: NonNegative | None = None
    table: str | None = None  # the BigQuery table the file feeds, for tabular outputs


class UpstreamRef(msgspec.Struct, frozen=True):
    name: str
    generation: NonNegative
    sha256: str


class Part(msgspec.Struct, frozen=True):
    """One extract run's share of a week (extract manifests only).

    A week is the union of its markets: each run replaces the markets it names and keeps the
    others, so a week's extract manifest lists one part per run that still supplies a market.
    ``files`` are names of entries of :attr:`Manifest.files` (the part's chart objects for its
    ``markets``, and its metadata and feature batches); ``sources`` are that run's sources.
    """

    run_id: str
    markets: tuple[str, ...]
    files: tuple[str, ...]
    sources: dict[str, str] = {}


class Manifest(msgspec.Struct, frozen=True):
    stage: Stage
    snapshot_date: date
    run_id: str
    started_at: str
    finished_at: str
    files: tuple[FileEntry, ...]
    upstream: UpstreamRef | None = None
    sources: dict[str, str] = {}
    summary: dict[str, Any] = {}
    request: dict[str, Any] | None = None
    parts: tuple[Part, ...] = ()

    def week_parts(self) -> tuple[Part, ...]:
        """The parts of an extract manifest; a manifest written before parts existed is one part."""
        if self.parts:
            return self.parts
        markets = tuple(sorted(self.summary.get("entries_per_market") or {}))
        return (Part(self.run_id, markets, tuple(f.name for f in self.files), dict(self.sources)),)

    def file(self, table: str) -> FileEntry:
        for entry in self.files:
            if entry.table == table:
                return entry
        raise ManifestError(f"manifest of {self.stage}/{self.snapshot_date} lists no file for table {table!r}")

    @property
    def row_counts(self) -> dict[str, int]:
        return {f.table: f.rows for f in self.files if f.table is not None and f.rows is not None}

    def to_bytes(self) -> bytes:
        body = msgspec.to_builtins(self)  # the date as YYYY-MM-DD, tuples as lists
        if not self.parts:
            del body["parts"]  # only extract manifests have parts
        body["format"] = FORMAT_VERSION
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Manifest:
        """Parse and type-check a manifest; anything else is a :class:`ManifestError` naming
        ``where``, the field and the value."""
        try:
            body = json.loads(data)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ManifestError(f"{where}: not a valid manifest (not JSON: {type(exc).__name__}: {exc})") from None
        if not isinstance(body, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(body).__name__}")
        if body.get("format") != FORMAT_VERSION:
            raise ManifestError(f"{where}: field 'format' = {body.get('format')!r}: expected {FORMAT_VERSION}")
        try:
            manifest = msgspec.convert(body, cls)
        except msgspec.ValidationError as exc:
            name, value, reason = field_error(exc, body)
            raise ManifestError(f"{where}: field {name!r} = {repr(value)[:200]}: {reason}") from None
        listed = {f.name for f in manifest.files}
        for i, part in enumerate(manifest.parts):
            missing = [name for name in part.files if name not in listed]
            if missing:
                raise ManifestError(
                    f"{where}: field 'parts[{i}].files' = {missing[0]!r}: not listed in the manifest's files"
                )
        return manifest
