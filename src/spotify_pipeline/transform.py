"""Transform: raw API responses into typed, clean datasets (one Parquet file per table)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from spotify_pipeline import layout
from spotify_pipeline.errors import DataError
from spotify_pipeline.extract import track_of
from spotify_pipeline.manifest import FileEntry, Manifest, UpstreamRef
from spotify_pipeline.schema import table
from spotify_pipeline.store import BucketStore
from spotify_pipeline.tabular import parquet_bytes, to_arrow

MODEL_FEATURES = ("danceability", "energy", "loudness", "valence")
OTHER_FEATURES = ("acousticness", "instrumentalness", "liveness", "speechiness", "tempo")
INT_FEATURES = ("key", "mode", "time_signature")
TABLES = ("chart_entries", "tracks", "artists", "track_artists", "artist_genres", "model_features")

_PAGE_RE = re.compile(r"/playlists/(?P<market>[A-Z]+)/(?P<playlist>[A-Za-z0-9]+)/page-\d+\.json$")


def _load_json(name: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}: not JSON ({exc.msg} at line {exc.lineno})") from None


def build_tables(
    raw: list[tuple[str, Any]], snapshot: date, chart_source: str, feature_source: str
) -> dict[str, pd.DataFrame]:
    """Pure: raw objects (name, parsed JSON), in manifest order, to the six clean tables."""
    entries: list[dict[str, Any]] = []
    track_objs: dict[str, dict[str, Any]] = {}
    artist_objs: dict[str, dict[str, Any]] = {}
    features: dict[str, dict[str, Any]] = {}

    for name, body in raw:
        page = _PAGE_RE.search(name)
        if page:
            offset = int(body.get("offset") or 0)
            for i, item in enumerate(body.get("items") or []):
                track = track_of(item)
                if track is None:
                    continue
                track_objs.setdefault(track["id"], track)
                entries.append(
                    {
                        "snapshot_date": snapshot,
                        "market": page["market"],
                        "rank": offset + i + 1,
                        "track_id": track["id"],
                        "playlist_id": page["playlist"],
                        "added_at": pd.Timestamp(item["added_at"]) if item.get("added_at") else None,
                        "chart_source": chart_source,
                    }
                )
        elif "/artists/" in name:
            for artist in body.get("artists") or []:
                if artist and artist.get("id"):
                    artist_objs[artist["id"]] = artist
        elif "/audio_features/" in name:
            for feat in body.get("audio_features") or []:
                if feat and feat.get("id"):
                    features[feat["id"]] = feat
        else:
            raise DataError(f"{name}: unexpected object in the extract manifest")
    if not entries:
        raise DataError("extract manifest holds no chart entries: every playlist was empty")

    chart = pd.DataFrame(entries).sort_values(["market", "rank"], kind="stable").reset_index(drop=True)
    dup = chart.duplicated(["market", "rank"])
    if dup.any():
        bad = chart[dup].iloc[0]
        raise DataError(f"chart_entries: market {bad['market']} has rank {bad['rank']} twice")
    markets_of = chart.groupby("track_id")["market"].agg(lambda s: sorted(set(s)))
    best_rank = chart.groupby("track_id")["rank"].min()

    track_rows, credit_rows = [], []
    for tid in sorted(track_objs):
        t = track_objs[tid]
        feat = features.get(tid) or {}
        credits = [a for a in t.get("artists") or [] if a.get("id")]
        row: dict[str, Any] = {
            "snapshot_date": snapshot,
            "track_id": tid,
            "track_name": t.get("name"),
            "artist_ids": [a["id"] for a in credits],
            "artist_names": [a.get("name") or "" for a in credits],
            "primary_artist_id": credits[0]["id"] if credits else None,
            "album_id": (t.get("album") or {}).get("id"),
            "album_name": (t.get("album") or {}).get("name"),
            "album_release_date": (t.get("album") or {}).get("release_date"),
            "duration_ms": t.get("duration_ms"),
            "explicit": t.get("explicit"),
            "popularity": t.get("popularity"),
            "isrc": (t.get("external_ids") or {}).get("isrc"),
            "spotify_url": (t.get("external_urls") or {}).get("spotify"),
            "markets": markets_of[tid],
            "best_rank": int(best_rank[tid]),
        }
        for col in (*MODEL_FEATURES, *OTHER_FEATURES):
            value = feat.get(col)
            row[col] = float(value) if value is not None else None
        for col in INT_FEATURES:
            value = feat.get(col)
            row[col] = int(value) if value is not None else None
        row["has_features"] = all(row[c] is not None for c in MODEL_FEATURES)
        row["feature_source"] = feature_source if feat else None
        row["chart_source"] = chart_source
        track_rows.append(row)
        for pos, a in enumerate(credits):
            credit_rows.append(
                {"snapshot_date": snapshot, "track_id": tid, "artist_id": a["id"], "artist_position": pos}
            )
            # An artist missing from the artists response still gets a row, from the credit.
            artist_objs.setdefault(a["id"], {"id": a["id"], "name": a.get("name")})

    tracks = pd.DataFrame(track_rows)
    for col in ("duration_ms", "popularity", "best_rank", *INT_FEATURES):
        tracks[col] = tracks[col].astype("Int64")

    artist_rows, genre_rows = [], []
    for aid in sorted(artist_objs):
        a = artist_objs[aid]
        genres = [g for g in a.get("genres") or [] if g]
        artist_rows.append(
            {
                "snapshot_date": snapshot,
                "artist_id": aid,
                "artist_name": a.get("name"),
                "popularity": a.get("popularity"),
                "followers": (a.get("followers") or {}).get("total"),
                "genres": genres,
                "main_genre": genres[0] if genres else None,
            }
        )
        for pos, genre in enumerate(genres):
            genre_rows.append(
                {
                    "snapshot_date": snapshot,
                    "artist_id": aid,
                    "genre": genre,
                    "genre_position": pos,
                    "is_main": pos == 0,
                }
            )
    artists = pd.DataFrame(artist_rows)
    for col in ("popularity", "followers"):
        artists[col] = artists[col].astype("Int64")

    return {
        "chart_entries": chart[table("chart_entries").column_names],
        "tracks": tracks,
        "artists": artists,
        "track_artists": pd.DataFrame(credit_rows, columns=table("track_artists").column_names),
        "artist_genres": pd.DataFrame(genre_rows, columns=table("artist_genres").column_names),
        "model_features": model_features(tracks),
    }


def model_features(tracks: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct track with all four features; z-scores use the population std.

    A feature that is constant over the snapshot has std 0; its z-score is 0 rather than NaN.
    """
    usable = tracks[tracks["has_features"]].sort_values("track_id")
    out = usable[["snapshot_date", "track_id", *MODEL_FEATURES]].copy()
    for col in MODEL_FEATURES:
        values = out[col].to_numpy(dtype=np.float64)
        std = values.std(ddof=0) if len(values) else 0.0
        out[f"{col}_z"] = (values - values.mean()) / std if std > 0 else np.zeros(len(values))
    out["feature_source"] = usable["feature_source"].to_numpy()
    return out.reset_index(drop=True)[table("model_features").column_names]


def run_transform(
    raw_manifest: Manifest, upstream: UpstreamRef, store: BucketStore, now: Callable[[], datetime]
) -> tuple[Manifest, int]:
    started = now()
    raw = [(f.name, _load_json(f.name, store.read_verified(f))) for f in raw_manifest.files]
    chart_source = raw_manifest.sources.get("chart_source", "spotify-playlist")
    feature_source = raw_manifest.sources.get("feature_source", "spotify")
    frames = build_tables(raw, raw_manifest.snapshot_date, chart_source, feature_source)

    prefix = layout.prefix("transform", raw_manifest.snapshot_date)
    blobs = [(name, parquet_bytes(to_arrow(df, table(name))), len(df)) for name, df in frames.items()]
    files: list[FileEntry] = [
        store.write(f"{prefix}{name}.parquet", data, "application/vnd.apache.parquet", rows=rows, table=name)
        for name, data, rows in blobs
    ]
    tracks = frames["tracks"]
    manifest = Manifest(
        stage="transform",
        snapshot_date=raw_manifest.snapshot_date,
        run_id=raw_manifest.run_id,
        started_at=started.isoformat(),
        finished_at=now().isoformat(),
        files=tuple(files),
        upstream=upstream,
        sources=dict(raw_manifest.sources),
        summary={
            "tracks_without_features": int((~tracks["has_features"]).sum()),
            "markets": sorted(frames["chart_entries"]["market"].unique().tolist()),
        },
    )
    name = layout.manifest_name("transform", raw_manifest.snapshot_date)
    generation = store.write_manifest(manifest, name)
    store.delete_stale(prefix, {f.name for f in files} | {name})
    return manifest, generation
