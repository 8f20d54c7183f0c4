"""Helpers for the chart-source and feature-provider tests: the stand-in's controls, an in-memory
bucket, and extract's clients wired to them (no emulators)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import requests

from spotify_pipeline import layout
from spotify_pipeline.config import Settings
from spotify_pipeline.events import ObjectRef
from spotify_pipeline.extract import ChartObject, Sources
from spotify_pipeline.manifest import FileEntry, Manifest
from spotify_pipeline.sources.cache import Cache, MemoryCacheBackend
from spotify_pipeline.sources.http import RetryPolicy
from spotify_pipeline.sources.reccobeats import ReccoBeatsApi
from spotify_pipeline.spotify_api import SpotifyApi
from spotify_pipeline.store import ConcurrentPublish, StaleObject

CHARTS = Path(__file__).resolve().parents[2] / "fixtures" / "charts"
CLIENT_ID = "sources-test-client"
# Generated per test session, like the stack's: no credential-shaped literal in the tests.
CLIENT_SECRET = secrets.token_urlsafe(24)
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


@dataclass
class Standin:
    url: str

    def stats(self) -> dict[str, int]:
        body: dict[str, Any] = requests.get(self.url + "/_standin/stats", timeout=5).json()
        return dict(body["by_route"])

    def reset(self) -> None:
        requests.post(self.url + "/_standin/reset", timeout=5).raise_for_status()

    def mode(self, mode: str) -> None:
        requests.post(self.url + "/_standin/mode", json={"mode": mode}, timeout=5).raise_for_status()

    def fault(self, **spec: Any) -> None:
        requests.post(self.url + "/_standin/faults", json=spec, timeout=5).raise_for_status()

    def settings(self, **overrides: Any) -> Settings:
        base = {
            "spotify_client_id": CLIENT_ID,
            "spotify_client_secret": CLIENT_SECRET,
            "spotify_api_base": self.url + "/v1/",
            "spotify_token_url": self.url + "/api/token",
            "reccobeats_api_base": self.url + "/reccobeats/v1/",
            "spotify_timeout_seconds": 2,
        }
        return Settings(**{**base, **overrides})


class MemoryStore:
    """The surface the stages write through (store.MergingStore, store.StageStore), in memory: no run folders, and
    generations that count the manifest's writes."""

    bucket_name = "memory-bucket"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.manifests: dict[str, Manifest] = {}
        self.generations: dict[str, int] = {}
        self.bases: dict[date, int] = {}

    def read_manifest(self, name: str, generation: int | None = None) -> tuple[Manifest, int, str]:
        if name not in self.manifests:
            raise StaleObject(f"{name} does not exist")
        return self.manifests[name], self.generations[name], hashlib.sha256(self.objects[name]).hexdigest()

    def begin(self, snapshot: date, base_generation: int) -> object:
        self.bases[snapshot] = base_generation
        return None

    def write(
        self, name: str, data: bytes, content_type: str, *, rows: int | None = None, table: str | None = None
    ) -> FileEntry:
        self.objects[name] = data
        return FileEntry(name, hashlib.sha256(data).hexdigest(), len(data), rows, table)

    def publish(self, manifest: Manifest) -> int:
        """With the precondition of the base ``begin`` was given (extract; other stages: none), then
        whatever of the week the manifest does not list is gone (no run folders here)."""
        name = layout.manifest_name(manifest.stage, manifest.snapshot_date)
        base = self.bases.pop(manifest.snapshot_date, self.generations.get(name, 0))
        if self.generations.get(name, 0) != base:
            raise ConcurrentPublish(name, base)
        self.objects[name] = manifest.to_bytes()
        self.manifests[name] = manifest
        self.generations[name] = self.generations.get(name, 0) + 1
        listed = {f.name for f in manifest.files} | {name}
        prefix = layout.prefix(manifest.stage, manifest.snapshot_date)
        for stale in [n for n in self.objects if n.startswith(prefix) and n not in listed]:
            del self.objects[stale]
        return self.generations[name]

    def read_verified(self, entry: FileEntry) -> bytes:
        return self.objects[entry.name]


@dataclass
class Harness:
    standin: Standin
    settings: Settings
    files: dict[str, bytes] = field(default_factory=dict)
    cache: MemoryCacheBackend = field(default_factory=MemoryCacheBackend)
    sleeps: list[float] = field(default_factory=list)

    def sources(self) -> Sources:
        policy = RetryPolicy(
            retry_after_cap=self.settings.retry_after_cap_seconds,
            budget=self.settings.retry_budget_seconds,
            sleep=self.sleeps.append,
        )

        def read_chart(ref: ObjectRef) -> ChartObject:
            return ChartObject(self.files[ref.name], 7, "2026-11-20T08:00:00+00:00")

        return Sources(
            spotify=lambda: SpotifyApi(self.settings, policy=policy),
            reccobeats=lambda: ReccoBeatsApi(self.settings.reccobeats_api_base, 2.0, policy),
            read_chart=read_chart,
            cache=Cache(self.cache if self.settings.cache_enabled else None),
        )
