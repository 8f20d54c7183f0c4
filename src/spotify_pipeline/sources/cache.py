"""What earlier weeks already fetched, kept in the data bucket under ``cache/``.

A track's audio features, an artist's genres and a track's album/credits do not change week to
week, so a week where 80 % of the tracks were already seen asks the APIs only about the new
20 %. One JSON object per kind (``cache/tracks.json``, ``cache/artists.json``,
``cache/features-spotify.json``, ``cache/features-reccobeats.json``), mapping an id to
``{"fetched_at": ISO time, "value": the object as received, or null}``. A null value is a
negative answer (Spotify has no features for the track, ReccoBeats does not know it): it is
cached too, so the same question is not asked every week. Values from different feature
providers are never mixed: each provider has its own object.

Writes use a generation precondition; when two runs race, the loser re-reads, merges and tries
again. The cache is an optimisation only: a failure to read or write it is logged, never fatal.
Objects under ``cache/`` trigger nothing (every function ignores them by name).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import google.cloud.storage as storage

log = logging.getLogger(__name__)

PREFIX = "cache/"
KINDS = ("tracks", "artists", "features-spotify", "features-reccobeats")
Entry = dict[str, Any]  # {"fetched_at": str, "value": dict | None}


class CacheBackend(Protocol):
    def load(self, kind: str) -> tuple[dict[str, Entry], int]:
        """Entries and the generation they were read at (0: no object yet)."""
        ...

    def save(self, kind: str, entries: dict[str, Entry], generation: int) -> bool:
        """Write if the object is still at ``generation``; False when another writer got there first."""
        ...


class GcsCacheBackend:
    def __init__(self, bucket: storage.Bucket) -> None:
        self.bucket = bucket

    def load(self, kind: str) -> tuple[dict[str, Entry], int]:
        blob = self.bucket.get_blob(PREFIX + kind + ".json")
        if blob is None:
            return {}, 0
        generation = int(blob.generation or 0)
        body = json.loads(blob.download_as_bytes(if_generation_match=generation))
        return (dict(body.get("entries") or {}) if isinstance(body, dict) else {}), generation

    def save(self, kind: str, entries: dict[str, Entry], generation: int) -> bool:
        from google.api_core.exceptions import PreconditionFailed

        data = json.dumps({"kind": kind, "entries": entries}, sort_keys=True, separators=(",", ":")).encode()
        try:
            self.bucket.blob(PREFIX + kind + ".json").upload_from_string(
                data, content_type="application/json", if_generation_match=generation
            )
        except PreconditionFailed:
            return False
        return True


class MemoryCacheBackend:
    """For tests: the same contract, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[dict[str, Entry], int]] = {}

    def load(self, kind: str) -> tuple[dict[str, Entry], int]:
        entries, generation = self.objects.get(kind, ({}, 0))
        return json.loads(json.dumps(entries)), generation

    def save(self, kind: str, entries: dict[str, Entry], generation: int) -> bool:
        if self.objects.get(kind, ({}, 0))[1] != generation:
            return False
        self.objects[kind] = (json.loads(json.dumps(entries)), generation + 1)
        return True


@dataclass
class Cache:
    backend: CacheBackend | None
    _loaded: dict[str, tuple[dict[str, Entry], int]] = field(default_factory=dict)
    _pending: dict[str, dict[str, Entry]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def _entries(self, kind: str) -> dict[str, Entry]:
        if kind not in self._loaded:
            try:
                self._loaded[kind] = self.backend.load(kind) if self.backend is not None else ({}, 0)
            except Exception as exc:  # an optimisation only: a broken cache means fetching again
                log.warning("cache %s unreadable, ignoring it: %s", kind, exc)
                self._loaded[kind] = ({}, -1)
        return self._loaded[kind][0]

    def get(self, kind: str, ids: Iterable[str]) -> dict[str, Entry]:
        """Cached entries of ``ids`` (only those present)."""
        entries = self._entries(kind)
        found = {i: entries[i] for i in ids if i in entries}
        self.hits[kind] = self.hits.get(kind, 0) + len(found)
        return found

    def put(self, kind: str, oid: str, value: dict[str, Any] | None, fetched_at: str) -> None:
        self._pending.setdefault(kind, {})[oid] = {"fetched_at": fetched_at, "value": value}

    def flush(self, attempts: int = 3) -> None:
        if self.backend is None:
            return
        for kind, new in self._pending.items():
            entries, generation = self._loaded.get(kind, ({}, 0))
            for _ in range(attempts):
                if generation < 0:
                    break
                merged = {**entries, **new}
                try:
                    if self.backend.save(kind, merged, generation):
                        self._loaded[kind] = (merged, generation)
                        break
                    entries, generation = self.backend.load(kind)
                except Exception as exc:
                    log.warning("cache %s not written (next run fetches again): %s", kind, exc)
                    break
            else:
                log.warning("cache %s not written: %d concurrent writers won", kind, attempts)
        self._pending.clear()
