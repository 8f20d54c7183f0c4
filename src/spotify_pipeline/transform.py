"""Transform: raw API responses into typed, clean datasets (one Parquet file per table)."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from spotify_pipeline import layout
from spotify_pipeline.errors import DataError
from spotify_pipeline.features import INT_FEATURES, MODEL_FEATURES, OTHER_FEATURES, zscore
from spotify_pipeline.manifest import FileEntry, Manifest, TransformSummary, UpstreamRef
from spotify_pipeline.raw_records import _Raw, _timestamp
from spotify_pipeline.safe_text import strip_bidi
from spotify_pipeline.schema import table, table_names
from spotify_pipeline.sources import ChartSource, FeatureProvider
from spotify_pipeline.sources.charts_csv import MAX_RANK
from spotify_pipeline.sources.reccobeats import match_by_href
from spotify_pipeline.store import StageStore
from spotify_pipeline.tabular import parquet_bytes, to_arrow
from spotify_pipeline.week import CHART_RE, PAGE_RE, track_of

TABLES = table_names("transform")  # what run_transform writes (tables.json's transform group)

ARTIST_NAME_KEY = "name:"  # artist_id of an artist known only by name (a chart file, no Spotify metadata)

_CACHED_RE = re.compile(r"/cached/(?P<kind>[a-z-]+)\.json$")


def artist_key(name: str) -> str:
    """The artist_id of an artist known only by its name: ``name:`` and the name, NFC, trimmed,
    inner whitespace collapsed, bidi controls dropped as from every display name (a Spotify artist id
    never contains a colon)."""
    return ARTIST_NAME_KEY + " ".join(unicodedata.normalize("NFC", strip_bidi(name)).split())


def _load_json(name: str, data: bytes) -> Any:
    if not data.strip():
        raise DataError(f"{name}: empty object ({len(data)} bytes), expected a JSON document")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: byte {exc.start} is not UTF-8, expected a JSON document") from None
    except RecursionError:
        raise DataError(f"{name}: JSON nested too deeply") from None


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
        if provider == FeatureProvider.DATASET and dataset.get(tid):
            return dataset[tid], provider, chart_time
        if provider in provided and provided[provider].get(tid):
            return provided[provider][tid], provider, fetched_at
        entry = cached.get(f"features-{provider}", {}).get(tid)
        if entry and entry.get("value"):
            return entry["value"], provider, _timestamp(entry.get("fetched_at"))
    return {}, None, None


@dataclass
class PartInput:
    """One extract part of a week: its raw objects (name, parsed JSON) in manifest order, and the
    sources they came from (:class:`spotify_pipeline.manifest.Part`)."""

    raw: list[tuple[str, Any]]
    chart_source: str
    feature_source: str  # the part's provider chain, e.g. ``dataset,spotify``
    fetched_at: datetime | None = None


@dataclass
class _Parsed:
    """What one part's raw objects hold, before the week is assembled."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    track_objs: dict[str, dict[str, Any]] = field(default_factory=dict)
    chart_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # track id -> first chart-file row
    chart_time: datetime | None = None  # when the chart file was last written (dataset features' time)
    artist_objs: dict[str, dict[str, Any]] = field(default_factory=dict)
    provided: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {FeatureProvider.SPOTIFY: {}, FeatureProvider.RECCOBEATS: {}}
    )
    cached: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    dataset: dict[str, dict[str, Any]] = field(default_factory=dict)
    chain: tuple[str, ...] = ()
    fetched_at: datetime | None = None


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
    return build_week_tables([PartInput(raw, chart_source, feature_source, fetched_at)], snapshot)


def _parse_part(part: PartInput, snapshot: date) -> _Parsed:
    out = _Parsed(chain=tuple(p.strip() for p in part.feature_source.split(",") if p.strip()))
    out.fetched_at = part.fetched_at
    entries, track_objs, chart_rows = out.entries, out.track_objs, out.chart_rows
    artist_objs, provided, cached = out.artist_objs, out.provided, out.cached
    chart_source = part.chart_source
    chart_time: datetime | None = None
    for name, body in part.raw:
        page = PAGE_RE.search(name)
        chart_file = CHART_RE.search(name)
        chk = _Raw(name)
        body = chk.obj(body, "(the object)")
        if page:
            offset = chk.integer(body.get("offset"), "offset", 0, MAX_RANK) or 0
            for i, item in enumerate(chk.items(body.get("items"), "items")):
                if item is None:
                    continue
                item = chk.obj(item, f"items[{i}]")
                raw_track = track_of(item)
                if raw_track is None:
                    continue
                key = "item" if item.get("item") else "track"
                track = chk.track(raw_track, f"items[{i}].{key}")
                track_objs.setdefault(track["id"], track)
                entries.append(
                    {
                        "snapshot_date": snapshot,
                        "market": page["market"],
                        "rank": offset + i + 1,
                        "track_id": track["id"],
                        "playlist_id": page["playlist"],
                        "added_at": chk.time(item.get("added_at"), f"items[{i}].added_at"),
                        "chart_source": chart_source,
                    }
                )
        elif chart_file:
            source = chk.obj(body.get("source"), "source", optional=True) or {}
            chart_time = chart_time or chk.time(source.get("updated"), "source.updated")
            for i, raw_line in enumerate(chk.items(body.get("entries"), "entries")):
                line = chk.chart_entry(raw_line, f"entries[{i}]")
                entries.append(
                    {
                        "snapshot_date": snapshot,
                        "market": chart_file["market"],
                        "rank": line["rank"],
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
            for i, track in enumerate(chk.items(body.get("tracks"), "tracks")):
                if track is not None:
                    clean = chk.track(track, f"tracks[{i}]")
                    track_objs.setdefault(clean["id"], clean)
        elif "/artists/" in name:
            for i, artist in enumerate(chk.items(body.get("artists"), "artists")):
                if artist is not None:
                    clean = chk.artist(artist, f"artists[{i}]")
                    artist_objs[clean["id"]] = clean
        elif "/audio_features/" in name:
            for i, feat in enumerate(chk.items(body.get("audio_features"), "audio_features")):
                if feat is not None:
                    feat = chk.obj(feat, f"audio_features[{i}]")
                    tid = chk.text(feat.get("id"), f"audio_features[{i}].id", optional=False)
                    provided[FeatureProvider.SPOTIFY][tid] = chk.features(feat, f"audio_features[{i}]")
        elif "/reccobeats/" in name:
            chk.items(body.get("content"), "content")
            for tid, feat in match_by_href(body).items():
                provided[FeatureProvider.RECCOBEATS][tid] = chk.features(feat, f"content[href={tid}]")
        elif cached_name := _CACHED_RE.search(name):
            kind = chk.text(body.get("kind"), "kind") or cached_name["kind"]
            entries_by_id = chk.obj(body.get("entries"), "entries", optional=True) or {}
            cached.setdefault(kind, {}).update(
                {oid: chk.cached(kind, entry, f"entries.{oid}") for oid, entry in entries_by_id.items()}
            )
        else:
            raise DataError(f"{name}: unexpected object in the extract manifest")
    for tid, entry in cached.get("tracks", {}).items():
        if entry.get("value"):
            track_objs.setdefault(tid, {**entry["value"], "_fetched_at": entry.get("fetched_at")})
    for aid, entry in cached.get("artists", {}).items():
        if entry.get("value"):
            artist_objs.setdefault(aid, {**entry["value"], "_fetched_at": entry.get("fetched_at")})
    out.dataset = {tid: row["features"] for tid, row in chart_rows.items() if row.get("features")}
    out.chart_time = chart_time
    return out


def build_week_tables(parts: list[PartInput], snapshot: date) -> dict[str, pd.DataFrame]:
    """Pure: a week's parts (oldest first) to the six clean tables. Each part supplies chart entries
    for its markets; a track's metadata, artists and features come from the newest part that has
    them, each with that part's sources and times, so a market kept from an earlier run keeps its data."""
    parsed = [_parse_part(p, snapshot) for p in parts]
    entries = [e for p in parsed for e in p.entries]
    if not entries:
        raise DataError("extract manifest holds no chart entries: every playlist was empty")
    newest_first = list(reversed(parsed))
    track_objs: dict[str, dict[str, Any]] = {}
    chart_rows: dict[str, dict[str, Any]] = {}
    artist_objs: dict[str, dict[str, Any]] = {}
    for p in newest_first:
        for tid, obj in p.track_objs.items():
            track_objs.setdefault(tid, obj)
        for tid, chart_row in p.chart_rows.items():
            chart_rows.setdefault(tid, chart_row)
        for aid, obj in p.artist_objs.items():
            artist_objs.setdefault(aid, {**obj, "_part_fetched_at": p.fetched_at})
    part_of_market = {e["market"]: i for i, p in enumerate(parsed) for e in p.entries}
    source_of_market = {e["market"]: e["chart_source"] for e in entries}

    def features_of(tid: str) -> tuple[dict[str, Any], str | None, datetime | None]:
        for p in newest_first:
            found = _features_of(tid, p.chain, p.dataset, p.provided, p.cached, p.fetched_at, p.chart_time)
            if found[1] is not None:
                return found
        return {}, None, None

    fetched_at = parsed[-1].fetched_at
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
        feat, provider, feat_time = features_of(tid)
        credits = [a for a in t.get("artists") or [] if a.get("id")]
        if not credits:  # no Spotify metadata answered: the chart file's names, under a documented key
            credits = [{"id": artist_key(n), "name": n} for n in row_csv.get("artist_names") or () if n.strip()]
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
        # The newest source among the markets it charts in (sources differ only across parts).
        newest_market = max(markets_of[tid], key=lambda m: part_of_market[m])
        row["chart_source"] = source_of_market[newest_market]
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
                "fetched_at": _timestamp(a.get("_fetched_at")) or a.get("_part_fetched_at") or fetched_at,
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
    z = zscore(out[list(MODEL_FEATURES)].to_numpy(dtype=np.float64))
    for j, col in enumerate(MODEL_FEATURES):
        out[f"{col}_z"] = z[:, j]
    out["feature_source"] = usable["feature_source"].to_numpy()
    return out.reset_index(drop=True)[table("model_features").column_names]


def run_transform(
    raw_manifest: Manifest, upstream: UpstreamRef, store: StageStore, now: Callable[[], datetime]
) -> tuple[Manifest, int]:
    started = now()
    entries = {f.name: f for f in raw_manifest.files}
    parts = raw_manifest.week_parts()
    inputs = []
    for part in parts:
        src = part.sources or raw_manifest.sources
        inputs.append(
            PartInput(
                raw=[(n, _load_json(n, store.read_verified(entries[n]))) for n in part.files],
                chart_source=src.get("chart_source", ChartSource.SPOTIFY_PLAYLIST),
                feature_source=src.get("feature_source", FeatureProvider.SPOTIFY),
                fetched_at=_timestamp(src.get("fetched_at") or raw_manifest.started_at),
            )
        )
    frames = build_week_tables(inputs, raw_manifest.snapshot_date)

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
        summary=TransformSummary(
            tracks_without_features=int((~tracks["has_features"]).sum()),
            features_by_provider={
                str(k): int(v) for k, v in tracks["feature_source"].dropna().value_counts().sort_index().items()
            },
            markets=sorted(frames["chart_entries"]["market"].unique().tolist()),
            entries_per_market={
                str(m): int(n) for m, n in frames["chart_entries"].groupby("market").size().sort_index().items()
            },
            # The runs whose markets this week holds, so each run can be told its own outcome.
            runs={p.run_id: list(p.markets) for p in parts},
        ).as_dict(),
    )
    return manifest, store.publish(manifest)
