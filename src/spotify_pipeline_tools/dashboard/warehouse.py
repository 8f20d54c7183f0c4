"""Read the dashboard views through google-cloud-bigquery (BigQuery, or the local emulator).

Only the views of ``schemas/tables.json`` are read, never the tables: what the page shows is
what Looker Studio shows. Every query is restricted to the embedded weeks; the explorer takes
each track's ``neighbours`` nearest songs, in the warehouse's rank order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from spotify_pipeline.schema import view
from spotify_pipeline_tools.bq_query import run_query

if TYPE_CHECKING:
    from google.cloud import bigquery

Row = dict[str, Any]

# Explorer pairs embedded across all weeks when --neighbours is not given: every stored
# neighbour for a small catalogue (the demo's 143 tracks: all 142), fewer for a large one
# (10,000 tracks: 30 each), so the page stays well under 10 MB.
AUTO_PAIR_BUDGET = 300_000
MIN_AUTO_NEIGHBOURS = 10
DEFAULT_WEEKS = 12
TOP_SONGS = 15
TOP_GENRES = 50


class DashboardError(RuntimeError):
    """Nothing to show (no stored snapshot, an unknown --snapshot-date) or a bad option."""


@dataclass(frozen=True)
class Selection:
    """What the page embeds."""

    weeks: tuple[date, ...]  # ascending; the snapshot selector's choices
    default_week: date  # shown first (--snapshot-date, else the latest stored week)
    neighbours: int  # per track, ranks 1..neighbours
    stored_neighbours: int  # the largest rank stored in the embedded weeks
    top_songs: int = TOP_SONGS
    top_genres: int = TOP_GENRES


@dataclass
class WarehouseRows:
    """Rows of each dashboard view for the selected weeks (``snapshots``: every stored week)."""

    project: str
    dataset: str
    where: str
    selection: Selection
    snapshots: list[Row]
    summary: list[Row] = field(default_factory=list)
    genres: list[Row] = field(default_factory=list)
    points: list[Row] = field(default_factory=list)
    songs: list[Row] = field(default_factory=list)
    clusters: list[Row] = field(default_factory=list)
    recommendations: list[Row] = field(default_factory=list)
    movement: list[Row] = field(default_factory=list)
    model_skipped: list[Row] = field(default_factory=list)  # weeks whose model was skipped, with the reason


def choose_weeks(stored: Sequence[date], snapshot_date: date | None, weeks: int) -> tuple[tuple[date, ...], date]:
    """The ``weeks`` most recent stored snapshots up to ``snapshot_date`` (default: the latest)."""
    if weeks < 1:
        raise DashboardError("--weeks must be at least 1")
    dates = sorted(set(stored))
    if not dates:
        raise DashboardError("the warehouse has no chart snapshot yet: run the pipeline first")
    if snapshot_date is None:
        snapshot_date = dates[-1]
    elif snapshot_date not in dates:
        known = ", ".join(d.isoformat() for d in dates)
        raise DashboardError(f"snapshot {snapshot_date.isoformat()} is not stored; stored: {known}")
    upto = [d for d in dates if d <= snapshot_date]
    return tuple(upto[-weeks:]), snapshot_date


def neighbour_count(requested: int | None, tracks: int, stored: int, budget: int = AUTO_PAIR_BUDGET) -> int:
    """Neighbours embedded per track: as requested, else every stored one within the pair budget."""
    if requested is not None:
        if requested < 1:
            raise DashboardError("--neighbours must be at least 1")
        return min(requested, stored) if stored else requested
    if stored == 0:
        return MIN_AUTO_NEIGHBOURS
    affordable = budget // max(tracks, 1)
    return max(1, min(stored, max(MIN_AUTO_NEIGHBOURS, affordable)))


def _view(project: str, dataset: str, name: str) -> str:
    view(name)  # a KeyError names the known views if the schema source lost one
    return f"`{project}.{dataset}.{name}`"


def _query(client: bigquery.Client, sql: str, weeks: Sequence[date], **ints: int) -> list[Row]:
    from google.cloud import bigquery

    params: list[Any] = [bigquery.ArrayQueryParameter("weeks", "DATE", list(weeks))]
    params += [bigquery.ScalarQueryParameter(k, "INT64", v) for k, v in ints.items()]
    return run_query(client, sql, f"the dashboard's query of {_source(sql)}", params=params).rows


def _source(sql: str) -> str:
    """The view a dashboard query reads (named when it times out)."""
    found = re.search(r"FROM `[^`]*\.([A-Za-z0-9_]+)`", sql)
    return found.group(1) if found else "the warehouse"


def read_warehouse(
    client: bigquery.Client,
    project: str,
    dataset: str,
    *,
    snapshot_date: date | None = None,
    weeks: int = DEFAULT_WEEKS,
    neighbours: int | None = None,
    where: str = "BigQuery",
) -> WarehouseRows:
    """Every row the page needs, from the dashboard views."""

    def v(name: str) -> str:
        return _view(project, dataset, name)

    snapshots = run_query(client, f"SELECT * FROM {v('dash_snapshots')}", "the dashboard's dash_snapshots").rows
    snapshots.sort(key=lambda r: (r["snapshot_date"], r["market"]))
    chosen, default = choose_weeks([r["snapshot_date"] for r in snapshots], snapshot_date, weeks)

    stats = _query(
        client,
        f"SELECT snapshot_date, COUNT(DISTINCT track_id) AS tracks, MAX(`rank`) AS max_rank "
        f"FROM {v('dash_recommendations')} WHERE snapshot_date IN UNNEST(@weeks) GROUP BY snapshot_date",
        chosen,
    )
    tracks = sum(int(r["tracks"]) for r in stats)
    stored = max((int(r["max_rank"] or 0) for r in stats), default=0)
    selection = Selection(
        weeks=chosen,
        default_week=default,
        neighbours=neighbour_count(neighbours, tracks, stored),
        stored_neighbours=stored,
    )
    rows = WarehouseRows(project=project, dataset=dataset, where=where, selection=selection, snapshots=snapshots)
    in_weeks = "WHERE snapshot_date IN UNNEST(@weeks)"
    rows.summary = _query(client, f"SELECT * FROM {v('dash_market_summary')} {in_weeks}", chosen)
    rows.genres = _query(
        client,
        f"SELECT snapshot_date, market, genre, tracks, artists, main_genre_artists, track_share, genre_rank "
        f"FROM {v('dash_genres')} {in_weeks} AND genre_rank <= @top_genres",
        chosen,
        top_genres=selection.top_genres,
    )
    rows.points = _query(
        client,
        f"SELECT snapshot_date, market, track_id, chart_rank, popularity, danceability "
        f"FROM {v('dash_popularity_danceability')} {in_weeks}",
        chosen,
    )
    # market 'ALL' rows give every charting track of a week (names, artists, markets, popularity).
    rows.songs = _query(
        client,
        f"SELECT snapshot_date, market, track_id, track_name, artist_names, popularity, chart_rank, markets, "
        f"popularity_rank FROM {v('dash_top_songs')} {in_weeks} AND (market = 'ALL' OR popularity_rank <= @top_songs)",
        chosen,
        top_songs=selection.top_songs,
    )
    rows.clusters = _query(
        client,
        f"SELECT snapshot_date, track_id, cluster, distance_to_centroid, danceability, energy, cluster_size, "
        f"centroid_danceability, centroid_energy FROM {v('dash_clusters')} {in_weeks}",
        chosen,
    )
    rows.recommendations = _query(
        client,
        f"SELECT snapshot_date, track_id, `rank`, neighbor_track_id, distance, cross_market "
        f"FROM {v('dash_recommendations')} {in_weeks} AND `rank` <= @neighbours "
        f"ORDER BY snapshot_date, track_id, `rank`",
        chosen,
        neighbours=selection.neighbours,
    )
    rows.movement = _query(
        client,
        f"SELECT snapshot_date, market, previous_snapshot_date, track_id, track_name, artist_names, `rank`, "
        f"previous_rank, rank_change, movement FROM {v('dash_weekly_movement')} {in_weeks}",
        chosen,
    )
    rows.model_skipped = _query(
        client,
        f"SELECT snapshot_date, model_skipped_reason FROM {v('dash_model_status')} {in_weeks} AND model_skipped",
        chosen,
    )
    return rows
