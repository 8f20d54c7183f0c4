"""A week is the union of its markets: the raw objects one run writes for a week (names and bytes
as listed in :mod:`.extract`'s doc), and the week's manifest merged with the markets already stored.

Extract fetches (:func:`spotify_pipeline.extract.run_extract`); this module writes and publishes
what it fetched, per snapshot date. Transform reads the raw chart objects with the same names.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import msgspec

from spotify_pipeline import layout
from spotify_pipeline.errors import DataError
from spotify_pipeline.events import RunRequest
from spotify_pipeline.manifest import ExtractSummary, FileEntry, Manifest, Part
from spotify_pipeline.sources import FeatureProvider
from spotify_pipeline.store import ConcurrentPublish, MergingStore, StaleObject

log = logging.getLogger(__name__)

Batch = tuple[list[str], dict[str, Any]]


def json_bytes(obj: Any) -> bytes:
    # Key order as received; no re-sorting, so the object reads like the API's answer.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def track_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The track of a playlist row: under ``item`` since 2026, ``track`` before; None for gaps/episodes."""
    obj = row.get("item") or row.get("track")
    if not isinstance(obj, dict) or obj.get("type", "track") != "track" or not obj.get("id"):
        return None
    return obj


@dataclass
class ChartSnapshot:
    snapshot_date: date
    chart_objects: list[tuple[str, bytes, int]] = field(default_factory=list)  # (name below prefix, data, rows)
    track_ids: list[str] = field(default_factory=list)
    entries_per_market: dict[str, int] = field(default_factory=dict)
    ranks: dict[str, list[int]] = field(default_factory=dict)  # market -> ranks of its entries

    def add_track(self, tid: str) -> None:
        if tid not in self.track_ids:
            self.track_ids.append(tid)

    def duplicate_ranks(self) -> tuple[tuple[str, int, int], ...]:
        """(market, rank, times) of every rank a market holds more than once."""
        out = []
        for market, ranks in sorted(self.ranks.items()):
            seen: dict[int, int] = {}
            for rank in ranks:
                seen[rank] = seen.get(rank, 0) + 1
            out += [(market, rank, times) for rank, times in sorted(seen.items()) if times > 1]
        return tuple(out)


@dataclass
class Fetched:
    """Everything the run fetched or found in the cache, before anything is written."""

    tracks: dict[str, dict[str, Any]] = field(default_factory=dict)  # embedded, fetched or cached objects
    track_batches: list[Batch] = field(default_factory=list)
    artist_batches: list[Batch] = field(default_factory=list)
    feature_batches: dict[str, list[Batch]] = field(default_factory=dict)  # provider -> batches
    cached: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> id -> entry used
    provider_of: dict[str, str] = field(default_factory=dict)  # track id -> provider with its features
    unavailable: dict[str, str] = field(default_factory=dict)
    metadata: str = "spotify"


# -- writing ------------------------------------------------------------------------------------------


def _batches_for(batches: list[Batch], ids: set[str], folder: str, key: str) -> list[tuple[str, bytes, int]]:
    """The batches (as received) that answer any of ``ids``, numbered as fetched."""
    return [
        (f"{folder}/batch-{n:03d}.json", json_bytes(body), len(body.get(key) or []))
        for n, (asked, body) in enumerate(batches)
        if ids.intersection(asked)
    ]


def snapshot_objects(snap: ChartSnapshot, fetched: Fetched) -> tuple[list[tuple[str, bytes, int]], set[str]]:
    tids = set(snap.track_ids)
    artists = {
        a["id"]
        for t in snap.track_ids
        for a in (fetched.tracks.get(t) or {}).get("artists") or []
        if isinstance(a, dict) and a.get("id")
    }
    objects = list(snap.chart_objects)
    objects += _batches_for(fetched.track_batches, tids, "tracks", "tracks")
    objects += _batches_for(fetched.artist_batches, artists, "artists", "artists")
    objects += _batches_for(
        fetched.feature_batches.get(FeatureProvider.SPOTIFY, []), tids, "audio_features", "audio_features"
    )
    objects += _batches_for(fetched.feature_batches.get(FeatureProvider.RECCOBEATS, []), tids, "reccobeats", "content")
    for kind, entries in sorted(fetched.cached.items()):
        wanted = artists if kind == "artists" else tids
        used = {oid: entry for oid, entry in sorted(entries.items()) if oid in wanted}
        if used:
            objects.append((f"cached/{kind}.json", json_bytes({"kind": kind, "entries": used}), len(used)))
    return objects, artists


PUBLISH_ATTEMPTS = 8  # merges retried after losing a race to a concurrent run of the same week


# Raw chart objects, by name (the layout in :mod:`.extract`'s doc); transform parses them with these too.
PAGE_RE = re.compile(r"/playlists/(?P<market>[A-Z]+)/(?P<playlist>[A-Za-z0-9]+)/page-\d+\.json$")
CHART_RE = re.compile(r"/charts/(?P<market>GLOBAL|[A-Z]{2})\.json$")


def chart_market(name: str) -> str | None:
    """The market a raw object holds chart entries of (its chart pages or chart-file rows); None for
    metadata and feature batches, which serve every market of their run."""
    found = PAGE_RE.search(name) or CHART_RE.search(name)
    return found["market"] if found else None


def merge_week(
    previous: Manifest | None, new_files: list[FileEntry], part: Part | None, remove: tuple[str, ...]
) -> tuple[tuple[FileEntry, ...], tuple[Part, ...]]:
    """Pure: the week's files and parts after one run. The run's markets (``part``) and ``remove``
    replace or drop those markets; every other market stays with the part that supplied it."""
    replaced = set(part.markets if part else ()) | set(remove)
    entries = {f.name: f for f in (previous.files if previous else ())}
    parts: list[Part] = []
    files: list[FileEntry] = []
    for old in previous.week_parts() if previous else ():
        markets = tuple(m for m in old.markets if m not in replaced)
        if not markets:
            continue
        kept = tuple(n for n in old.files if chart_market(n) in (None, *markets))
        parts.append(Part(old.run_id, markets, kept, dict(old.sources)))
        files += [entries[n] for n in kept if n in entries]
    if part is not None:
        parts.append(part)
        files += new_files
    return tuple(files), tuple(parts)


def _week_entries(parts: tuple[Part, ...], previous: Manifest | None, own: dict[str, int]) -> dict[str, int]:
    known = ExtractSummary.of(previous).entries_per_market if previous else {}
    return {m: own[m] if m in own else int(known.get(m, 0)) for p in parts for m in p.markets}


def publish_week(
    request: RunRequest,
    store: MergingStore,
    snap: ChartSnapshot,
    objects: list[tuple[str, bytes, int]],
    summary: ExtractSummary,
    sources_row: dict[str, str],
    now: Callable[[], datetime],
) -> tuple[Manifest, int]:
    """Write the run's objects and publish the week merged with what is stored, with the generation
    precondition; on a lost race (a concurrent run of the same week published first) merge again
    with the winner's manifest, in a fresh folder, so both runs' markets end up in the week."""
    day = snap.snapshot_date
    prefix = layout.prefix("extract", day)
    name = layout.manifest_name("extract", day)
    for _attempt in range(PUBLISH_ATTEMPTS):
        try:
            previous, base, _ = store.read_manifest(name)
        except StaleObject:
            previous, base = None, 0  # no week stored yet (or it vanished while being read)
        if request.remove_markets and not snap.entries_per_market:
            stored = {m for p in previous.week_parts() for m in p.markets} if previous else set()
            absent = sorted(set(request.remove_markets) - stored)
            if absent:
                held = ", ".join(sorted(stored)) or "nothing"
                raise DataError(
                    f"week {day}: cannot remove {', '.join(absent)}: the stored week holds {held} "
                    f"(gs://{store.bucket_name}/{name})"
                )
        store.begin(day, base)
        files = [store.write(prefix + obj, data, "application/json", rows=rows) for obj, data, rows in objects]
        part = (
            Part(request.run_id, tuple(sorted(snap.entries_per_market)), tuple(f.name for f in files), sources_row)
            if snap.entries_per_market
            else None
        )
        week_files, parts = merge_week(previous, files, part, request.remove_markets)
        if not parts:
            raise DataError(f"week {day}: removing {', '.join(request.remove_markets)} would leave it empty")
        manifest = Manifest(
            stage="extract",
            snapshot_date=day,
            run_id=request.run_id,
            started_at=sources_row["fetched_at"],
            finished_at=now().isoformat(),
            files=week_files,
            sources=dict(sources_row),
            summary=msgspec.structs.replace(
                summary,
                entries_per_market=_week_entries(parts, previous, snap.entries_per_market),
                # Runs of the week whose every market this run replaced or removed: superseded by it.
                superseded_runs=sorted(
                    {p.run_id for p in previous.week_parts()} - {p.run_id for p in parts} if previous else set()
                ),
            ).as_dict(),
            request=request.to_message(),
            parts=parts,
        )
        try:
            generation = store.publish(manifest)  # nothing published on a lost race, the folder deleted
        except ConcurrentPublish as exc:
            log.info("week %s: a concurrent run published first; merging again: %s", day, exc)
            continue
        return manifest, generation
    raise ConcurrentPublish(name, 0)  # transient: the event is redelivered and merges again
