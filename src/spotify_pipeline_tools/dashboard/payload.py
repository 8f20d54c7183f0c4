"""Warehouse rows to the page's compact JSON (pure; no I/O).

Columnar and indexed: every track is named once in ``tracks`` and referred to by its index;
markets likewise. Per week: scorecards, genres, the popularity/danceability points, the most
popular songs, the cluster scatter, the explorer's neighbours (each track's list in the
warehouse's rank order), the week-over-week movement and, for a week whose model was skipped,
why (``modelSkipped``: the load's note; null for a modelled week). Floats are rounded to 4 decimals.
Track, artist and genre names lose bidi controls here too: the page does not trust the warehouse to
hold only what transform wrote.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from spotify_pipeline.safe_text import strip_bidi
from spotify_pipeline_tools.dashboard.warehouse import Row, WarehouseRows

SCHEMA_VERSION = 1
ALL = "ALL"  # the views' market for "every market, each track once"
MOVEMENTS = ("new", "up", "down", "same", "dropped", "no_history")
SYNTHETIC_MARK = "(synthetic)"
SUMMARY_FIELDS = {
    "chart_entries": "entries",
    "tracks": "tracks",
    "artists": "artists",
    "genres": "genres",
    "tracks_with_features": "withFeatures",
    "avg_popularity": "popularity",
    "avg_danceability": "danceability",
    "avg_energy": "energy",
    "avg_valence": "valence",
    "avg_duration_ms": "durationMs",
    "explicit_share": "explicitShare",
}


def _r(value: Any, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _i(value: Any) -> int | None:
    return None if value is None else int(value)


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _split(markets: str | None) -> list[str]:
    return [m.strip() for m in (markets or "").split(",") if m.strip()]


def market_order(markets: Iterable[str]) -> list[str]:
    """GLOBAL first, then the others alphabetically (never the 'ALL' pseudo-market)."""
    found = {m for m in markets if m and m != ALL}
    return sorted(found, key=lambda m: (m != "GLOBAL", m))


class _Tracks:
    """The page's track dictionary: index per track id; name and artists from the latest week."""

    def __init__(self) -> None:
        self.info: dict[str, tuple[date, str | None, str | None]] = {}

    def see(self, week: date, track_id: str, name: str | None, artists: str | None) -> None:
        known = self.info.get(track_id)
        if known is None or (week, name is not None) >= (known[0], known[1] is not None):
            self.info[track_id] = (week, name, artists)

    def freeze(self) -> tuple[dict[str, int], dict[str, list[Any]]]:
        ids = sorted(self.info)
        index = {t: i for i, t in enumerate(ids)}
        return index, {
            "id": ids,
            "name": [strip_bidi(self.info[t][1] or t) for t in ids],
            "artists": [strip_bidi(self.info[t][2] or "") for t in ids],
        }


def _by_week(rows: Iterable[Row]) -> dict[date, list[Row]]:
    out: dict[date, list[Row]] = defaultdict(list)
    for r in rows:
        out[r["snapshot_date"]].append(r)
    return out


def is_synthetic(rows: WarehouseRows) -> bool:
    """The demo catalogue: the views count its '(synthetic)' track names; the names are checked too."""
    weeks = set(rows.selection.weeks)
    if any(int(r.get("synthetic_tracks") or 0) > 0 for r in rows.snapshots if r["snapshot_date"] in weeks):
        return True
    return any(SYNTHETIC_MARK in (r.get("track_name") or "") for r in rows.songs)


def build_payload(rows: WarehouseRows, *, generated_at: datetime) -> dict[str, Any]:
    sel = rows.selection
    weeks = list(sel.weeks)
    markets = market_order(r["market"] for r in rows.snapshots if r["snapshot_date"] in set(weeks))
    m_index = {m: i for i, m in enumerate(markets)}

    tracks = _Tracks()
    for r in rows.songs:
        if r["market"] == ALL:
            tracks.see(r["snapshot_date"], r["track_id"], r.get("track_name"), r.get("artist_names"))
    for r in rows.movement:
        tracks.see(r["snapshot_date"], r["track_id"], r.get("track_name"), r.get("artist_names"))
    for r in rows.points + rows.clusters + rows.recommendations:
        if r["track_id"] not in tracks.info:
            tracks.see(date.min, r["track_id"], None, None)
    for r in rows.recommendations:
        if r["neighbor_track_id"] not in tracks.info:
            tracks.see(date.min, r["neighbor_track_id"], None, None)
    t_index, track_table = tracks.freeze()

    snapshots = _by_week(rows.snapshots)
    summary = _by_week(rows.summary)
    genres = _by_week(rows.genres)
    points = _by_week(rows.points)
    songs = _by_week(rows.songs)
    clusters = _by_week(rows.clusters)
    recs = _by_week(rows.recommendations)
    moves = _by_week(rows.movement)
    skipped = {r["snapshot_date"]: r["model_skipped_reason"] for r in rows.model_skipped}

    out_weeks: dict[str, Any] = {}
    for week in weeks:
        out_weeks[week.isoformat()] = {
            "provenance": _provenance(snapshots.get(week, [])),
            "summary": _summary(summary.get(week, [])),
            "genres": _genres(genres.get(week, [])),
            "points": _points(points.get(week, []), m_index, t_index),
            "top": _top(songs.get(week, []), t_index, sel.top_songs),
            "songs": _songs(songs.get(week, []), m_index, t_index),
            **_clusters(clusters.get(week, []), t_index),
            "recs": _recs(recs.get(week, []), t_index),
            **_moves(moves.get(week, []), m_index, t_index),
            "modelSkipped": skipped.get(week),
        }

    all_weeks = sorted({r["snapshot_date"] for r in rows.snapshots})
    chart_sources = sorted(
        {s for r in rows.snapshots if r["snapshot_date"] in set(weeks) for s in _split(r["chart_source"])}
    )
    feature_sources = sorted(
        {s for r in rows.snapshots if r["snapshot_date"] in set(weeks) for s in _split(r.get("feature_source"))}
    )
    return {
        "version": SCHEMA_VERSION,
        "meta": {
            "generatedAt": generated_at.isoformat(timespec="seconds"),
            "source": {"project": rows.project, "dataset": rows.dataset, "where": rows.where},
            "markets": markets,
            "weeks": [w.isoformat() for w in weeks],
            "storedWeeks": [w.isoformat() for w in all_weeks],
            "defaultWeek": sel.default_week.isoformat(),
            "neighbours": sel.neighbours,
            "storedNeighbours": sel.stored_neighbours,
            "topSongs": sel.top_songs,
            "topGenres": sel.top_genres,
            "movements": list(MOVEMENTS),
            "chartSources": chart_sources,
            "featureSources": feature_sources,
            "synthetic": is_synthetic(rows),
        },
        "tracks": track_table,
        "weeks": out_weeks,
    }


def _provenance(rows: list[Row]) -> dict[str, Any]:
    return {
        r["market"]: {
            "chartSource": r["chart_source"],
            "featureSource": r.get("feature_source"),
            "entries": _i(r["chart_entries"]),
            "tracks": _i(r["tracks"]),
            "withFeatures": _i(r.get("tracks_with_features")),
            "synthetic": _i(r.get("synthetic_tracks")),
            "previous": _iso(r.get("previous_snapshot_date")),
            "latest": bool(r.get("is_latest")),
        }
        for r in sorted(rows, key=lambda r: str(r["market"]))
    }


def _summary(rows: list[Row]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: str(r["market"])):
        out[r["market"]] = {
            key: (_i(r[col]) if not col.startswith("avg_") and col != "explicit_share" else _r(r[col]))
            for col, key in SUMMARY_FIELDS.items()
        }
    return out


def _genres(rows: list[Row]) -> dict[str, list[list[Any]]]:
    out: dict[str, list[list[Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (str(r["market"]), int(r["genre_rank"]))):
        out[r["market"]].append(
            [
                strip_bidi(r["genre"]),
                _i(r["tracks"]),
                _i(r["artists"]),
                _i(r["main_genre_artists"]),
                _r(r["track_share"]),
            ]
        )
    return dict(out)


def _points(rows: list[Row], m_index: dict[str, int], t_index: dict[str, int]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {"m": [], "t": [], "r": [], "p": [], "d": []}
    for r in sorted(rows, key=lambda r: (m_index.get(r["market"], 1 << 30), int(r["chart_rank"]), r["track_id"])):
        if r["market"] not in m_index:
            continue
        cols["m"].append(m_index[r["market"]])
        cols["t"].append(t_index[r["track_id"]])
        cols["r"].append(_i(r["chart_rank"]))
        cols["p"].append(_i(r["popularity"]))
        cols["d"].append(_r(r["danceability"]))
    return cols


def _top(rows: list[Row], t_index: dict[str, int], limit: int) -> dict[str, list[list[Any]]]:
    """Per market (and 'ALL'): the ``limit`` most popular songs in popularity_rank order; no popularity, no bar."""
    out: dict[str, list[list[Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (str(r["market"]), int(r["popularity_rank"]))):
        if r["popularity"] is None or int(r["popularity_rank"]) > limit:
            continue
        out[r["market"]].append([t_index[r["track_id"]], _i(r["popularity"]), _i(r["chart_rank"])])
    return dict(out)


def _songs(rows: list[Row], m_index: dict[str, int], t_index: dict[str, int]) -> dict[str, list[Any]]:
    """The week's charting tracks (the views' 'ALL' rows): popularity, best chart rank, markets."""
    cols: dict[str, list[Any]] = {"t": [], "p": [], "r": [], "mk": []}
    for r in sorted((r for r in rows if r["market"] == ALL), key=lambda r: int(r["popularity_rank"])):
        cols["t"].append(t_index[r["track_id"]])
        cols["p"].append(_i(r["popularity"]))
        cols["r"].append(_i(r["chart_rank"]))
        cols["mk"].append([m_index[m] for m in _split(r["markets"]) if m in m_index])
    return cols


def _clusters(rows: list[Row], t_index: dict[str, int]) -> dict[str, Any]:
    cols: dict[str, list[Any]] = {"t": [], "c": [], "d": [], "e": [], "x": []}
    centroids: dict[int, list[Any]] = {}
    for r in sorted(rows, key=lambda r: (int(r["cluster"]), r["track_id"])):
        c = int(r["cluster"])
        cols["t"].append(t_index[r["track_id"]])
        cols["c"].append(c)
        cols["d"].append(_r(r["danceability"]))
        cols["e"].append(_r(r["energy"]))
        cols["x"].append(_r(r["distance_to_centroid"]))
        centroids[c] = [c, _i(r["cluster_size"]), _r(r["centroid_danceability"]), _r(r["centroid_energy"])]
    return {"clusters": cols, "centroids": [centroids[c] for c in sorted(centroids)]}


def _recs(rows: list[Row], t_index: dict[str, int]) -> dict[str, Any]:
    """Each track's neighbours in rank order: ``n[o[i]:o[i+1]]`` are track ``t[i]``'s neighbours.

    ``r`` (explicit ranks) is null when every list is ranks 1, 2, 3, ... as the warehouse stores them.
    """
    by_track: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_track[r["track_id"]].append(r)
    cols: dict[str, Any] = {"t": [], "o": [0], "n": [], "d": [], "x": [], "r": []}
    contiguous = True
    for track_id in sorted(by_track, key=lambda t: t_index[t]):
        ranked = sorted(by_track[track_id], key=lambda r: (int(r["rank"]), r["neighbor_track_id"]))
        cols["t"].append(t_index[track_id])
        for pos, r in enumerate(ranked, start=1):
            contiguous = contiguous and int(r["rank"]) == pos
            cols["n"].append(t_index[r["neighbor_track_id"]])
            cols["d"].append(_r(r["distance"], 3))
            cols["x"].append("1" if r["cross_market"] else "0")
            cols["r"].append(int(r["rank"]))
        cols["o"].append(len(cols["n"]))
    cols["x"] = "".join(cols["x"])
    if contiguous:
        cols["r"] = None
    return cols


def _moves(rows: list[Row], m_index: dict[str, int], t_index: dict[str, int]) -> dict[str, Any]:
    cols: dict[str, list[Any]] = {"m": [], "t": [], "r": [], "pr": [], "mv": []}
    previous: dict[str, str | None] = {}

    def order(r: Row) -> tuple[int, int, int, str]:
        rank = r["rank"] if r["rank"] is not None else 1 << 30
        return (m_index.get(r["market"], 1 << 30), int(rank), int(r["previous_rank"] or 0), r["track_id"])

    for r in sorted(rows, key=order):
        if r["market"] not in m_index:
            continue
        previous[r["market"]] = _iso(r["previous_snapshot_date"])
        cols["m"].append(m_index[r["market"]])
        cols["t"].append(t_index[r["track_id"]])
        cols["r"].append(_i(r["rank"]))
        cols["pr"].append(_i(r["previous_rank"]))
        cols["mv"].append(MOVEMENTS.index(r["movement"]))
    return {"moves": cols, "previous": previous}
