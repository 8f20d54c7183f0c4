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
from spotify_pipeline.sources.reccobeats import match_by_href
from spotify_pipeline.store import BucketStore
from spotify_pipeline.tabular import parquet_bytes, to_arrow

MODEL_FEATURES = ("danceability", "energy", "loudness", "valence")
OTHER_FEATURES = ("acousticness", "instrumentalness", "liveness", "speechiness", "tempo")
INT_FEATURES = ("key", "mode", "time_signature")
TABLES = ("chart_entries", "tracks", "artists", "track_artists", "artist_genres", "model_features")

_PAGE_RE = re.compile(r"/playlists/(?P<market>[A-Z]+)/(?P<playlist>[A-Za-z0-9]+)/page-\d+\.json$")
_CHART_RE = re.compile(r"/charts/(?P<market>GLOBAL|[A-Z]{2})\.json$")
_CACHED_RE = re.compile(r"/cached/(?P<kind>[a-z-]+)\.json$")


def _load_json(name: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}: not JSON ({exc.msg} at line {exc.lineno})") from None


def _features_of(
    tid: str,
    chain: tuple[str, ...],
    dataset: dict[str, dict[str, Any]],
    provided: dict[str, dict[str, dict[str, Any]]],
    cached: dict[str, dict[str, dict[str, Any]]],
    fetched_at: datetime | None,
    chart_time: datetime | None,
) -> tuple[dict[str, Any], str | None, datetime | None]:
    """The first provider in ``chain`` with features for ``tid``: (features, provider, fetched_at)."""
    for provider in chain:
        if provider == "dataset" and dataset.get(tid):
            return dataset[tid], provider, chart_time
        if provider in provided and provided[provider].get(tid):
            return provided[provider][tid], provider, fetched_at
        entry = cached.get(f"features-{provider}", {}).get(tid)
        if entry and entry.get("value"):
            return entry["value"], provider, _timestamp(entry.get("fetched_at"))
    return {}, None, None


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return pd.Timestamp(value).to_pydatetime()
    except ValueError:
        return None


def build_tables(
    raw: list[tuple[str, Any]],
    snapshot: date,
    chart_source: str,
    feature_source: str,
    *,
    fetched_at: datetime | None = None,
) -> dict[str, pd.DataFrame]:
    """Pure: raw objects (name, parsed JSON), in manifest order, to the six clean tables.

    ``feature_source`` is the extract's provider chain (``dataset,spotify``, say): each track takes
    its features from the first provider in that order that has them, and records which one.
    ``fetched_at`` is when the extract fetched (cached objects carry their own time).
    """
    entries: list[dict[str, Any]] = []
    track_objs: dict[str, dict[str, Any]] = {}
    chart_rows: dict[str, dict[str, Any]] = {}  # track id -> first chart-file row (names, features, extras)
    chart_time: datetime | None = None  # when the chart file was last written (dataset features' time)
    artist_objs: dict[str, dict[str, Any]] = {}
    provided: dict[str, dict[str, dict[str, Any]]] = {"spotify": {}, "reccobeats": {}}
    cached: dict[str, dict[str, dict[str, Any]]] = {}
    chain = tuple(p.strip() for p in feature_source.split(",") if p.strip())

    for name, body in raw:
        page = _PAGE_RE.search(name)
        chart_file = _CHART_RE.search(name)
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
        elif chart_file:
            chart_time = chart_time or _timestamp((body.get("source") or {}).get("updated"))
            for line in body.get("entries") or []:
                entries.append(
                    {
                        "snapshot_date": snapshot,
                        "market": chart_file["market"],
                        "rank": int(line["rank"]),
                        "track_id": line["track_id"],
                        "playlist_id": None,
                        "added_at": None,
                        "chart_source": chart_source,
                    }
                )
                known = chart_rows.setdefault(line["track_id"], line)
                if known.get("features") is None and line.get("features") is not None:
                    chart_rows[line["track_id"]] = {**known, "features": line["features"]}
        elif "/tracks/" in name:
            for track in body.get("tracks") or []:
                if isinstance(track, dict) and track.get("id"):
                    track_objs.setdefault(track["id"], track)
        elif "/artists/" in name:
            for artist in body.get("artists") or []:
                if artist and artist.get("id"):
                    artist_objs[artist["id"]] = artist
        elif "/audio_features/" in name:
            for feat in body.get("audio_features") or []:
                if feat and feat.get("id"):
                    provided["spotify"][feat["id"]] = feat
        elif "/reccobeats/" in name:
            provided["reccobeats"].update(match_by_href(body))
        elif _CACHED_RE.search(name):
            kind = str(body.get("kind") or _CACHED_RE.search(name)["kind"])  # type: ignore[index]
            cached.setdefault(kind, {}).update(body.get("entries") or {})
        else:
            raise DataError(f"{name}: unexpected object in the extract manifest")
    if not entries:
        raise DataError("extract manifest holds no chart entries: every playlist was empty")
    for tid, entry in cached.get("tracks", {}).items():
        if entry.get("value"):
            track_objs.setdefault(tid, {**entry["value"], "_fetched_at": entry.get("fetched_at")})
    for aid, entry in cached.get("artists", {}).items():
        if entry.get("value"):
            artist_objs.setdefault(aid, {**entry["value"], "_fetched_at": entry.get("fetched_at")})
    dataset = {tid: row["features"] for tid, row in chart_rows.items() if row.get("features")}

    chart = pd.DataFrame(entries).sort_values(["market", "rank"], kind="stable").reset_index(drop=True)
    dup = chart.duplicated(["market", "rank"])
    if dup.any():
        bad = chart[dup].iloc[0]
        raise DataError(f"chart_entries: market {bad['market']} has rank {bad['rank']} twice")
    markets_of = chart.groupby("track_id")["market"].agg(lambda s: sorted(set(s)))
    best_rank = chart.groupby("track_id")["rank"].min()

    track_rows, credit_rows = [], []
    credited: set[str] = set()
    for tid in sorted(set(chart["track_id"])):
        t = track_objs.get(tid) or {}
        row_csv = chart_rows.get(tid) or {}
        extra = row_csv.get("extra") or {}
        feat, provider, feat_time = _features_of(tid, chain, dataset, provided, cached, fetched_at, chart_time)
        credits = [a for a in t.get("artists") or [] if a.get("id")]
        album = t.get("album") or {}
        popularity = t.get("popularity")
        row: dict[str, Any] = {
            "snapshot_date": snapshot,
            "track_id": tid,
            "track_name": t.get("name") or row_csv.get("track_name"),
            "artist_ids": [a["id"] for a in credits],
            "artist_names": [a.get("name") or "" for a in credits]
            if credits
            else list(row_csv.get("artist_names") or []),
            "primary_artist_id": credits[0]["id"] if credits else None,
            "album_id": album.get("id"),
            "album_name": album.get("name") or extra.get("album_name"),
            "album_release_date": album.get("release_date") or extra.get("album_release_date"),
            "duration_ms": t.get("duration_ms") if t.get("duration_ms") is not None else extra.get("duration_ms"),
            "explicit": t.get("explicit") if t.get("explicit") is not None else extra.get("explicit"),
            "popularity": popularity if popularity is not None else extra.get("popularity"),
            "isrc": (t.get("external_ids") or {}).get("isrc"),
            "spotify_url": (t.get("external_urls") or {}).get("spotify") or f"https://open.spotify.com/track/{tid}",
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
        row["feature_source"] = provider
        row["chart_source"] = chart_source
        row["features_fetched_at"] = feat_time
        track_rows.append(row)
        for pos, a in enumerate(credits):
            credited.add(a["id"])
            credit_rows.append(
                {"snapshot_date": snapshot, "track_id": tid, "artist_id": a["id"], "artist_position": pos}
            )
            # An artist missing from the artists response still gets a row, from the credit.
            artist_objs.setdefault(a["id"], {"id": a["id"], "name": a.get("name")})

    tracks = pd.DataFrame(track_rows)
    for col in ("duration_ms", "popularity", "best_rank", *INT_FEATURES):
        tracks[col] = tracks[col].astype("Int64")

    artist_rows, genre_rows = [], []
    for aid in sorted(credited):
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
                "fetched_at": _timestamp(a.get("_fetched_at")) or fetched_at,
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
    artists = pd.DataFrame(artist_rows, columns=table("artists").column_names)
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
    fetched_at = _timestamp(raw_manifest.sources.get("fetched_at") or raw_manifest.started_at)
    frames = build_tables(raw, raw_manifest.snapshot_date, chart_source, feature_source, fetched_at=fetched_at)

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
            "features_by_provider": {
                str(k): int(v) for k, v in tracks["feature_source"].dropna().value_counts().sort_index().items()
            },
            "markets": sorted(frames["chart_entries"]["market"].unique().tolist()),
        },
    )
    name = layout.manifest_name("transform", raw_manifest.snapshot_date)
    generation = store.write_manifest(manifest, name)
    store.delete_stale(prefix, {f.name for f in files} | {name})
    return manifest, generation
