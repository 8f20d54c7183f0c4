"""Warehouse data for the dashboard tests: the pipeline's two demo weeks, and a small hand-made
warehouse whose every dashboard number is known in advance.

Shared by tests/integration/test_views.py (the views' SQL on the BigQuery emulator) and the browser
tests (the page's movement tables). The pipeline's demo catalogue charts the same songs every week,
so its week-over-week view shows no movement; this data set has every kind of it.

Four stored weeks, three markets, five tracks; between W2 and W3 a week of DE alone (DE_WEEK), so
GLOBAL and BR go two weeks without a stored chart and DE's first week is not the first stored week:

    GLOBAL  W1: a1 b2 c3        W2: b1 a2 d3 (c dropped)      W3: b1 d2 e3 (a dropped)
    BR      (none)              W2: a1 a5 e2 (first week)     W3: e1 a2
    DE      DE_WEEK only: b1 a2 (first week; a week after W2, a week before W3)

Track names carry the week ("Song a w2"), so a drop-out named from the previous week is visible;
the recommendations' own name columns (while the table has them) say "STALE", so a view that read
them instead of joining tracks would show it. Track e has no audio features and no popularity, and
its artist is known only by name (a chart file's artist: id ``name:Artist x4``).

The model of W1 was skipped (failed feature gates): its clusters and recommendations are empty and
its load recorded why (``MODEL_SKIPPED``, with markup characters the page must show as text). W2's
first load skipped the model too, but a later load modelled it: the latest succeeded load counts.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

W1, W2, W3 = date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 26)
DE_WEEK = date(2026, 1, 19)  # DE's first stored week, and no other market's
WEEKS = (W1, W2, DE_WEEK, W3)
CHARTS: dict[date, dict[str, list[str]]] = {
    W1: {"GLOBAL": ["a", "b", "c"]},
    W2: {"GLOBAL": ["b", "a", "d"], "BR": ["a", "e", "x", "x", "a"]},  # "x": no entry at that rank
    DE_WEEK: {"DE": ["b", "a"]},
    W3: {"GLOBAL": ["b", "d", "e"], "BR": ["e", "a"]},
}
POPULARITY = {"a": 80, "b": 70, "c": 60, "d": 90, "e": None}
DANCEABILITY = {"a": 0.5, "b": 0.6, "c": 0.4, "d": 0.7, "e": None}
DURATION_MS = {"a": 200_000, "b": 220_000, "c": 210_000, "d": 180_000, "e": 240_000}
EXPLICIT = {"a": True, "b": False, "c": False, "d": False, "e": None}
NAME_ONLY_ARTIST = "name:Artist x4"  # transform.artist_key("Artist x4")
CREDITS = {"a": ["x1", "x2"], "b": ["x2"], "c": ["x3"], "d": ["x3"], "e": [NAME_ONLY_ARTIST]}
GENRES = {"x1": ["pop", "dance"], "x2": ["pop"], "x3": ["rock"], NAME_ONLY_ARTIST: []}
# Neighbours per week among the modelled tracks (all but e), rank order.
NEIGHBOURS = {"a": ["b", "d", "c"], "b": ["a", "d", "c"], "c": ["a", "b", "d"], "d": ["b", "a", "c"]}
CLUSTER = {"a": 0, "b": 0, "c": 1, "d": 1}
MODEL_SKIPPED = (
    f"model skipped for snapshot {W1.isoformat()} (chart data still loaded): gate features_in_range failed: "
    "danceability <b>1.7</b> > 1 & energy < 0. Model it anyway: spotify-pipeline replay --force"
)
# (snapshot, minutes after the week's first load, stage, status, error) of pipeline_runs
RUNS = (
    (W1, 0, "recommend", "succeeded", MODEL_SKIPPED),
    (W1, 1, "load", "succeeded", MODEL_SKIPPED),
    (W2, 0, "load", "succeeded", f"model skipped for snapshot {W2.isoformat()} (chart data still loaded): 1 track(s)"),
    (W2, 60, "load", "succeeded", None),  # re-run with features: modelled
    (DE_WEEK, 0, "load", "succeeded", None),
    (W3, 0, "load", "succeeded", None),
    (W3, 5, "load", "failed", "model skipped: a failed load does not count"),
)
MODELLED_WEEKS = (W2, DE_WEEK, W3)


def track_id(key: str) -> str:
    return f"crafted{key}".ljust(22, "0")


def name(key: str, week: date) -> str:
    suffix = " (synthetic)" if key == "e" else ""
    return f"Song {key} w{WEEKS.index(week) + 1}{suffix}"


def artist_name(artist_id: str) -> str:
    return artist_id.removeprefix("name:") if artist_id.startswith("name:") else f"Artist {artist_id}"


def entries(week: date) -> list[tuple[str, int, str]]:
    """(market, rank, track key) of a week's charts."""
    return [(m, r, k) for m, keys in CHARTS[week].items() for r, k in enumerate(keys, start=1) if k != "x"]


def charting(week: date) -> dict[str, list[str]]:
    """Track key -> markets it charts in that week (sorted)."""
    out: dict[str, set[str]] = {}
    for m, _, k in entries(week):
        out.setdefault(k, set()).add(m)
    return {k: sorted(v) for k, v in sorted(out.items())}


def rows(renamed: Mapping[str, str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows; ``renamed``: track key -> the track's name in every week instead of name()."""
    out: dict[str, list[dict[str, Any]]] = {
        t: []
        for t in (
            "chart_entries",
            "tracks",
            "track_artists",
            "artist_genres",
            "artists",
            "model_features",
            "track_clusters",
            "clusters",
            "recommendations",
            "pipeline_runs",
        )
    }
    for week in WEEKS:
        day = week
        markets = charting(week)
        for m, r, k in entries(week):
            out["chart_entries"].append(
                {"snapshot_date": day, "market": m, "rank": r, "track_id": track_id(k), "chart_source": "crafted"}
            )
        for k, ms in markets.items():
            best = min(r for m, r, kk in entries(week) if kk == k)
            has = DANCEABILITY[k] is not None
            out["tracks"].append(
                {
                    "snapshot_date": day,
                    "track_id": track_id(k),
                    "track_name": (renamed or {}).get(k) or name(k, week),
                    "artist_ids": CREDITS[k],
                    "artist_names": [artist_name(a) for a in CREDITS[k]],
                    "primary_artist_id": CREDITS[k][0],
                    "duration_ms": DURATION_MS[k],
                    "explicit": EXPLICIT[k],
                    "popularity": POPULARITY[k],
                    "markets": ms,
                    "best_rank": best,
                    "danceability": DANCEABILITY[k],
                    "energy": 0.5 if has else None,
                    "loudness": -6.0 if has else None,
                    "valence": 0.5 if has else None,
                    "has_features": has,
                    "feature_source": "crafted" if has else None,
                    "chart_source": "crafted",
                }
            )
            for pos, a in enumerate(CREDITS[k]):
                out["track_artists"].append(
                    {"snapshot_date": day, "track_id": track_id(k), "artist_id": a, "artist_position": pos}
                )
        artists = sorted({a for k in markets for a in CREDITS[k]})
        for a in artists:
            out["artists"].append(
                {"snapshot_date": day, "artist_id": a, "artist_name": artist_name(a), "genres": GENRES[a]}
            )
            for pos, g in enumerate(GENRES[a]):
                out["artist_genres"].append(
                    {"snapshot_date": day, "artist_id": a, "genre": g, "genre_position": pos, "is_main": pos == 0}
                )
        featured = [k for k in markets if DANCEABILITY[k] is not None]
        for k in featured:
            feats = {"danceability": DANCEABILITY[k], "energy": 0.5, "loudness": -6.0, "valence": 0.5}
            out["model_features"].append(
                {
                    "snapshot_date": day,
                    "track_id": track_id(k),
                    **feats,
                    **{f"{f}_z": 0.0 for f in feats},
                    "feature_source": "crafted",
                }
            )
        modelled = featured if week in MODELLED_WEEKS else []  # a skipped model's tables are empty
        for k in modelled:
            out["track_clusters"].append(
                {"snapshot_date": day, "track_id": track_id(k), "cluster": CLUSTER[k], "distance_to_centroid": 0.25}
            )
            ranked = [n for n in NEIGHBOURS[k] if n in modelled]
            for rank, n in enumerate(ranked, start=1):
                out["recommendations"].append(
                    {
                        "snapshot_date": day,
                        "track_id": track_id(k),
                        "track_name": "STALE",
                        "track_artists": "STALE",
                        "track_markets": markets[k],
                        "neighbor_track_id": track_id(n),
                        "neighbor_track_name": "STALE",
                        "neighbor_artists": "STALE",
                        "neighbor_markets": markets[n],
                        "distance": round(0.1 * rank + 0.01 * ord(k), 6),
                        "rank": rank,
                        "cross_market": bool(set(markets[n]) - set(markets[k])),
                    }
                )
        for c in sorted({CLUSTER[k] for k in modelled}):
            members = [k for k in modelled if CLUSTER[k] == c]
            dance = [DANCEABILITY[k] for k in members]
            out["clusters"].append(
                {
                    "snapshot_date": day,
                    "cluster": c,
                    "size": len(members),
                    "danceability": sum(d for d in dance if d is not None) / len(members),
                    "energy": 0.5,
                    "loudness": -6.0,
                    "valence": 0.5,
                }
            )
    for day, minutes, stage, status, error in RUNS:
        started = datetime(day.year, day.month, day.day, 6, tzinfo=UTC) + timedelta(minutes=minutes)
        out["pipeline_runs"].append(
            {
                "run_id": f"crafted-{day.isoformat()}-{minutes}",
                "snapshot_date": day,
                "stage": stage,
                "status": status,
                "started_at": started,
                "finished_at": started + timedelta(seconds=30),
                "duration_seconds": 30.0,
                "error": error,
            }
        )
    return out


@contextmanager
def crafted_dataset(client: Any, renamed: Mapping[str, str] | None = None) -> Iterator[str]:
    """A fresh dataset with the tables and views of tables.json and the rows above; dropped after."""
    from google.cloud import bigquery

    from spotify_pipeline.schema import table
    from spotify_pipeline_tools.provision import ensure_dataset

    dataset = f"dash_crafted_{uuid.uuid4().hex[:8]}"
    ensure_dataset(client, dataset)
    try:
        for name_, data in rows(renamed).items():
            spec = table(name_)
            # As the loader loads (Parquet with list inference); columns a table does not have are left out.
            body = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(data, schema=spec.arrow_schema()), body)
            config = bigquery.LoadJobConfig(
                schema=spec.bigquery_schema(),
                source_format=bigquery.SourceFormat.PARQUET,
                write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            )
            config.parquet_options = bigquery.ParquetOptions()
            config.parquet_options.enable_list_inference = True
            body.seek(0)
            client.load_table_from_file(body, f"{client.project}.{dataset}.{name_}", job_config=config).result()
        yield dataset
    finally:
        client.delete_dataset(f"{client.project}.{dataset}", delete_contents=True, not_found_ok=True)


PIPELINE_WEEKS = (date(2026, 11, 16), date(2026, 11, 23))


def ensure_pipeline_weeks(stack: Any) -> tuple[date, ...]:
    """Two weekly runs of the demo catalogue on the session's stack (once, whichever test asks first)."""
    from helpers import query, run_pipeline

    for day in PIPELINE_WEEKS:
        run_id = f"dash-{day.isoformat()}"
        done = query(
            stack,
            "SELECT COUNT(*) AS n FROM pipeline_runs WHERE run_id = @r AND stage = 'load' AND status = 'succeeded'",
            r=run_id,
        )
        if not done[0]["n"]:
            run_pipeline(stack, day, run_id, timeout=180)
    return PIPELINE_WEEKS
