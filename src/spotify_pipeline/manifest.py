"""Manifests: the completion marker each stage writes last, and the only thing that triggers
the next stage. A manifest lists the stage's files with sizes, row counts and SHA-256, and
points at the exact upstream manifest (name, generation, checksum) it was computed from.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from typing import Annotated, Any, Self

import msgspec
from msgspec import UNSET, UnsetType

from spotify_pipeline import layout
from spotify_pipeline.layout import Stage
from spotify_pipeline.validation import field_error

FORMAT_VERSION = 1
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
# What a missing or mistyped field should have been, by path (list indices as []): the wording of
# every manifest error the pipeline has reported (pipeline_runs, docs/reliability.md).
_EXPECTED = {
    **dict.fromkeys(("run_id", "started_at", "finished_at", "upstream.name", "upstream.sha256"), "expected a string"),
    **dict.fromkeys(("files[].name", "parts[].run_id"), "expected a string"),
    **dict.fromkeys(("upstream.generation", "files[].bytes", "files[].rows"), "expected a non-negative integer"),
    **dict.fromkeys(("parts[].markets", "parts[].files"), "expected a list of strings"),
    **dict.fromkeys(("sources", "parts[].sources"), "expected an object of strings"),
    "stage": f"expected one of {', '.join(layout.STAGES)}",
    "snapshot_date": "expected an ISO date YYYY-MM-DD",
    "files": "expected a list of file entries",
    "files[]": "expected a file entry object",
    "files[].sha256": "expected 64 lower-case hex digits",
    "files[].table": "expected a string or null",
    "upstream": "expected an object or null",
    "request": "expected an object or null",
    "summary": "expected an object",
    "parts": "expected a list of parts",
    "parts[]": "expected a part object",
}


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
        markets = tuple(sorted(ExtractSummary.of(self).entries_per_market))
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
            key = re.sub(r"\[\d+\]", "[]", name)  # parts[0].markets[1] -> parts[].markets[], then parts[].markets
            if "unknown field" in reason:
                reason = "unknown field of a file entry"  # the only object that refuses unknown fields
            else:
                reason = _EXPECTED.get(key, _EXPECTED.get(key.removesuffix("[]"), reason))
            raise ManifestError(f"{where}: field {name!r} = {repr(value)[:200]}: {reason}") from None
        SUMMARIES[manifest.stage].read(manifest.summary, where)  # raises naming the summary's field
        listed = {f.name for f in manifest.files}
        for i, part in enumerate(manifest.parts):
            missing = [name for name in part.files if name not in listed]
            if missing:
                raise ManifestError(
                    f"{where}: field 'parts[{i}].files' = {missing[0]!r}: not listed in the manifest's files"
                )
        return manifest


# -- summaries: what each stage's manifest says about its run, under ``summary`` -------------------
# Fields a stage always writes have a default only so that manifests written before the field
# existed still read; fields a stage writes only sometimes are UNSET when absent and stay absent.


class _Summary(msgspec.Struct, kw_only=True):
    @classmethod
    def of(cls, manifest: Manifest) -> Self:
        """The manifest's summary read as this kind (checked by :meth:`Manifest.from_bytes`)."""
        return cls.read(manifest.summary, layout.manifest_name(manifest.stage, manifest.snapshot_date))

    @classmethod
    def read(cls, summary: dict[str, Any], where: str) -> Self:
        try:
            return msgspec.convert(summary, cls)
        except msgspec.ValidationError as exc:
            name, value, reason = field_error(exc, summary)
            raise ManifestError(f"{where}: field 'summary.{name}' = {repr(value)[:200]}: {reason}") from None

    def as_dict(self) -> dict[str, Any]:
        """What :attr:`Manifest.summary` holds: the fields, UNSET ones left out."""
        body: dict[str, Any] = msgspec.to_builtins(self)
        return body


class ExtractSummary(_Summary):
    run_entries_per_market: dict[str, int] = {}  # this run's chart entries per market
    entries_per_market: dict[str, int] = {}  # the week's, every part's markets
    removed_markets: list[str] = []
    superseded_runs: list[str] = []  # runs of the week whose every market this run replaced or removed
    distinct_tracks: int = 0
    distinct_artists: int = 0
    tracks_without_features: int = 0
    features_by_provider: dict[str, int] = {}
    metadata: str = ""  # where track metadata came from
    requests: dict[str, int] = {}  # per API
    spotify_requests: int = 0
    cache_hits: dict[str, int] = {}
    unavailable: dict[str, str] = {}  # source -> why it could not be used
    snapshots_in_run: list[str] = []
    chart_file: dict[str, Any] | UnsetType = UNSET  # runs from a chart file
    gates_forced: str | UnsetType = UNSET  # the chart gates that failed when a run forced past them


class WeekSummary(_Summary):
    """What transform, recommend and load manifests all say: the week's markets and the runs that supplied them."""

    entries_per_market: dict[str, int] | UnsetType = UNSET
    runs: dict[str, list[str]] | UnsetType = UNSET  # run id -> its markets


class TransformSummary(WeekSummary):
    tracks_without_features: int = 0
    features_by_provider: dict[str, int] = {}
    markets: list[str] = []


class RecommendSummary(WeekSummary):
    modelled_tracks: int = 0
    n_clusters: int | UnsetType = UNSET  # the model's parameters, when it ran
    neighbours_per_track: int | UnsetType = UNSET
    random_state: int | UnsetType = UNSET
    model_skipped: str | UnsetType | None = UNSET  # why the model did not run


class LoadSummary(WeekSummary):
    row_counts: dict[str, int] = {}
    dataset: str = ""
    runs_loaded: list[str] = []  # runs whose markets this load brought in for the first time
    model_skipped: str | UnsetType = UNSET


SUMMARIES: dict[Stage, type[_Summary]] = {
    "extract": ExtractSummary,
    "transform": TransformSummary,
    "recommend": RecommendSummary,
    "load": LoadSummary,
}
