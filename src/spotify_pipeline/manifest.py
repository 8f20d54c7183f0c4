"""Manifests: the completion marker each stage writes last, and the only thing that triggers
the next stage. A manifest lists the stage's files with sizes, row counts and SHA-256, and
points at the exact upstream manifest (name, generation, checksum) it was computed from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from spotify_pipeline.layout import STAGES, Stage

FORMAT_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
class Part:
    """One extract run's share of a week (extract manifests only).

    A week is the union of its markets: each run replaces the markets it names and keeps the
    others, so a week's extract manifest lists one part per run that still supplies a market.
    ``files`` are names of entries of :attr:`Manifest.files` (the part's chart objects for its
    ``markets``, and its metadata and feature batches); ``sources`` are that run's sources.
    """

    run_id: str
    markets: tuple[str, ...]
    files: tuple[str, ...]
    sources: dict[str, str] = field(default_factory=dict)


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
        body = asdict(self)
        if not self.parts:
            del body["parts"]  # only extract manifests have parts
        body["format"] = FORMAT_VERSION
        body["snapshot_date"] = self.snapshot_date.isoformat()
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
        field_ = _Fields(where)
        stage = field_.text(body, "stage")
        if stage not in STAGES:
            raise field_.bad("stage", stage, f"expected one of {', '.join(STAGES)}")
        raw_date = field_.text(body, "snapshot_date")
        try:
            snapshot = date.fromisoformat(raw_date)
        except ValueError:
            raise field_.bad("snapshot_date", raw_date, "expected an ISO date YYYY-MM-DD") from None
        files = body.get("files")
        if not isinstance(files, list):
            raise field_.bad("files", files, "expected a list of file entries")
        upstream = body.get("upstream")
        if upstream is not None and not isinstance(upstream, dict):
            raise field_.bad("upstream", upstream, "expected an object or null")
        for name in ("sources", "summary"):
            if body.get(name) is not None and not isinstance(body[name], dict):
                raise field_.bad(name, body[name], "expected an object")
        sources = body.get("sources") or {}
        if not all(isinstance(v, str) for v in sources.values()):
            raise field_.bad("sources", sources, "expected an object of strings")
        request = body.get("request")
        if request is not None and not isinstance(request, dict):
            raise field_.bad("request", request, "expected an object or null")
        raw_parts = body.get("parts") or []
        if not isinstance(raw_parts, list):
            raise field_.bad("parts", raw_parts, "expected a list of parts")
        parsed_files = tuple(field_.file(f, f"files[{i}]") for i, f in enumerate(files))
        listed = {f.name for f in parsed_files}
        parts = tuple(field_.part(p, f"parts[{i}]", listed) for i, p in enumerate(raw_parts))
        return cls(
            stage=stage,  # checked against STAGES above
            snapshot_date=snapshot,
            run_id=field_.text(body, "run_id"),
            started_at=field_.text(body, "started_at"),
            finished_at=field_.text(body, "finished_at"),
            files=parsed_files,
            upstream=(
                UpstreamRef(
                    field_.text(upstream, "name", "upstream."),
                    field_.integer(upstream, "generation", "upstream."),
                    field_.text(upstream, "sha256", "upstream."),
                )
                if upstream
                else None
            ),
            sources=dict(sources),
            summary=dict(body.get("summary") or {}),
            request=request,
            parts=parts,
        )


class _Fields:
    """Typed field access for :meth:`Manifest.from_bytes`, with errors naming object, field and value."""

    def __init__(self, where: str) -> None:
        self.where = where

    def bad(self, name: str, value: object, reason: str) -> ManifestError:
        shown = repr(value)
        return ManifestError(f"{self.where}: field {name!r} = {shown[:200]}: {reason}")

    def text(self, body: dict[str, Any], name: str, path: str = "") -> str:
        value = body.get(name)
        if not isinstance(value, str):
            raise self.bad(path + name, value, "expected a string")
        return value

    def integer(self, body: dict[str, Any], name: str, path: str = "") -> int:
        value = body.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.bad(path + name, value, "expected a non-negative integer")
        return value

    def optional_integer(self, body: dict[str, Any], name: str, path: str = "") -> int | None:
        return None if body.get(name) is None else self.integer(body, name, path)

    def strings(self, body: dict[str, Any], name: str, path: str) -> tuple[str, ...]:
        value = body.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.bad(path + name, value, "expected a list of strings")
        return tuple(value)

    def part(self, entry: object, path: str, listed: set[str]) -> Part:
        if not isinstance(entry, dict):
            raise self.bad(path, entry, "expected a part object")
        files = self.strings(entry, "files", path + ".")
        missing = [name for name in files if name not in listed]
        if missing:
            raise self.bad(f"{path}.files", missing[0], "not listed in the manifest's files")
        sources = entry.get("sources") or {}
        if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
            raise self.bad(f"{path}.sources", sources, "expected an object of strings")
        return Part(self.text(entry, "run_id", path + "."), self.strings(entry, "markets", path + "."), files, sources)

    def file(self, entry: object, path: str) -> FileEntry:
        if not isinstance(entry, dict):
            raise self.bad(path, entry, "expected a file entry object")
        unknown = sorted(set(entry) - {"name", "sha256", "bytes", "rows", "table"})
        if unknown:
            raise self.bad(f"{path}.{unknown[0]}", entry[unknown[0]], "unknown field of a file entry")
        sha = self.text(entry, "sha256", path + ".")
        if not _SHA256.fullmatch(sha):
            raise self.bad(f"{path}.sha256", sha, "expected 64 lower-case hex digits")
        table = entry.get("table")
        if table is not None and not isinstance(table, str):
            raise self.bad(f"{path}.table", table, "expected a string or null")
        rows = self.optional_integer(entry, "rows", path + ".")
        return FileEntry(
            name=self.text(entry, "name", path + "."),
            sha256=sha,
            bytes=self.integer(entry, "bytes", path + "."),
            rows=rows,
            table=table,
        )
