"""Extract: Spotify chart playlists, artists and audio features, stored as received."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from spotify_pipeline import layout
from spotify_pipeline.events import RunRequest
from spotify_pipeline.manifest import FileEntry, Manifest
from spotify_pipeline.store import BucketStore

if TYPE_CHECKING:  # transform imports track_of and must not need spotipy
    from spotify_pipeline.spotify_api import SpotifyApi

log = logging.getLogger(__name__)


def _json_bytes(obj: Any) -> bytes:
    # Key order as received; no re-sorting, so the object reads like the API's answer.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def track_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The track of a playlist row: under ``item`` since 2026, ``track`` before; None for gaps/episodes."""
    obj = row.get("item") or row.get("track")
    if not isinstance(obj, dict) or obj.get("type", "track") != "track" or not obj.get("id"):
        return None
    return obj


def run_extract(
    request: RunRequest, api: SpotifyApi, store: BucketStore, now: Callable[[], datetime]
) -> tuple[Manifest, int]:
    """Fetch everything for one snapshot, write raw objects, then the manifest; return it and its generation."""
    started = now()
    prefix = layout.prefix("extract", request.snapshot_date)
    files: list[FileEntry] = []
    track_ids: list[str] = []
    artist_ids: list[str] = []
    entries_per_market: dict[str, int] = {}

    # Fetch everything first, then write: a failure mid-fetch leaves nothing partial behind.
    pending: list[tuple[str, bytes, int]] = []
    for market in request.markets:
        count = 0
        playlist_id = request.playlists[market]
        for page_no, page in enumerate(api.playlist_pages(playlist_id, market)):
            rows = page.get("items") or []
            pending.append(
                (f"{prefix}playlists/{market}/{playlist_id}/page-{page_no:03d}.json", _json_bytes(page), len(rows))
            )
            for row in rows:
                track = track_of(row)
                if track is None:
                    continue
                count += 1
                if track["id"] not in track_ids:
                    track_ids.append(track["id"])
                for artist in track.get("artists") or []:
                    if artist.get("id") and artist["id"] not in artist_ids:
                        artist_ids.append(artist["id"])
        entries_per_market[market] = count

    for batch_no, body in enumerate(api.artists(artist_ids)):
        pending.append(
            (f"{prefix}artists/batch-{batch_no:03d}.json", _json_bytes(body), len(body.get("artists") or []))
        )
    missing_features = 0
    for batch_no, body in enumerate(api.audio_features(track_ids)):
        feats = body.get("audio_features") or []
        missing_features += sum(1 for f in feats if f is None)
        pending.append((f"{prefix}audio_features/batch-{batch_no:03d}.json", _json_bytes(body), len(feats)))

    for name, data, rows in pending:
        files.append(store.write(name, data, "application/json", rows=rows))

    manifest = Manifest(
        stage="extract",
        snapshot_date=request.snapshot_date,
        run_id=request.run_id,
        started_at=started.isoformat(),
        finished_at=now().isoformat(),
        files=tuple(files),
        sources={"chart_source": request.chart_source, "feature_source": ",".join(request.feature_providers)},
        summary={
            "entries_per_market": entries_per_market,
            "distinct_tracks": len(track_ids),
            "distinct_artists": len(artist_ids),
            "tracks_without_features": missing_features,
            "spotify_requests": api.requests_sent,
        },
        request=request.to_message(),
    )
    name = layout.manifest_name("extract", request.snapshot_date)
    generation = store.write_manifest(manifest, name)
    # Objects of an earlier run of this snapshot that this one did not write (fewer pages, fewer markets).
    removed = store.delete_stale(prefix, {f.name for f in files} | {name})
    if removed:
        log.info("removed %d objects of an earlier run under %s", len(removed), prefix)
    return manifest, generation
