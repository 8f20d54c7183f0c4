"""The dashboard views of schemas/tables.json on the BigQuery emulator (SQL translated to DuckDB).

Two data sets: a hand-made warehouse whose every number is known (tests/browser/crafted.py), and
two weeks of the pipeline's own output on the demo catalogue, checked against the tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from browser.crafted import DE_WEEK, MODEL_SKIPPED, W1, W2, W3, crafted_dataset, ensure_pipeline_weeks, name, track_id
from helpers import bq, query

from spotify_pipeline.schema import views

pytestmark = pytest.mark.emulators

SLIM_RECOMMENDATIONS = {
    "snapshot_date",
    "track_id",
    "neighbor_track_id",
    "distance",
    "rank",
    "cross_market",
    "track_markets",
    "neighbor_markets",
}


@pytest.fixture(scope="module")
def crafted(stack: Any) -> Iterator[str]:
    with crafted_dataset(bq(stack)) as dataset:
        yield dataset


@pytest.fixture(scope="module")
def weeks(stack: Any) -> tuple[date, ...]:
    return ensure_pipeline_weeks(stack)


def rows_of(stack: Any, dataset: str, view: str, where: str = "TRUE", **params: Any) -> list[dict[str, Any]]:
    return query(stack, f"SELECT * FROM `local-project.{dataset}.{view}` WHERE {where}", **params)


def key(tid: str | None) -> str | None:
    return None if tid is None else tid.removeprefix("crafted")[0]


# ---- the views exist, locally as Terraform creates them ----


def test_every_view_is_provisioned_by_the_stack(stack: Any) -> None:
    found = {t.table_id: t.table_type for t in bq(stack).list_tables("local-project.spotify_charts")}
    assert {name_: found.get(name_) for name_ in views()} == {name_: "VIEW" for name_ in views()}


def test_views_read_only_the_slim_recommendation_columns() -> None:
    """Names come from tracks, so recommend may drop its name columns (issue 4)."""
    import re

    for spec in views().values():
        for alias in re.findall(r"\.recommendations` AS (\w+)", spec.sql):
            used = set(re.findall(rf"\b{alias}\.(\w+)", spec.sql))
            assert used <= SLIM_RECOMMENDATIONS, (spec.name, used - SLIM_RECOMMENDATIONS)


# ---- exact semantics on the hand-made warehouse ----


def test_weekly_movement(stack: Any, crafted: str) -> None:
    got = {
        (r["snapshot_date"], r["market"], key(r["track_id"])): (
            r["rank"],
            r["previous_rank"],
            r["rank_change"],
            r["movement"],
            r["previous_snapshot_date"],
            r["days_since_previous"],
            r["track_name"],
        )
        for r in rows_of(stack, crafted, "dash_weekly_movement")
    }
    assert got == {
        (W1, "GLOBAL", "a"): (1, None, None, "no_history", None, None, name("a", W1)),
        (W1, "GLOBAL", "b"): (2, None, None, "no_history", None, None, name("b", W1)),
        (W1, "GLOBAL", "c"): (3, None, None, "no_history", None, None, name("c", W1)),
        (W2, "GLOBAL", "b"): (1, 2, 1, "up", W1, 7, name("b", W2)),
        (W2, "GLOBAL", "a"): (2, 1, -1, "down", W1, 7, name("a", W2)),
        (W2, "GLOBAL", "d"): (3, None, None, "new", W1, 7, name("d", W2)),
        (W2, "GLOBAL", "c"): (None, 3, None, "dropped", W1, 7, name("c", W1)),  # named from the week it charted
        (W2, "BR", "a"): (1, None, None, "no_history", None, None, name("a", W2)),  # listed twice: best rank
        (W2, "BR", "e"): (2, None, None, "no_history", None, None, name("e", W2)),
        (DE_WEEK, "DE", "b"): (1, None, None, "no_history", None, None, name("b", DE_WEEK)),  # DE's first week
        (DE_WEEK, "DE", "a"): (2, None, None, "no_history", None, None, name("a", DE_WEEK)),
        # the market's previous STORED week, 14 days back (DE_WEEK in between is not GLOBAL's)
        (W3, "GLOBAL", "b"): (1, 1, 0, "same", W2, 14, name("b", W3)),
        (W3, "GLOBAL", "d"): (2, 3, 1, "up", W2, 14, name("d", W3)),
        (W3, "GLOBAL", "e"): (3, None, None, "new", W2, 14, name("e", W3)),
        (W3, "GLOBAL", "a"): (None, 2, None, "dropped", W2, 14, name("a", W2)),
        (W3, "BR", "e"): (1, 2, 1, "up", W2, 14, name("e", W3)),
        (W3, "BR", "a"): (2, 1, -1, "down", W2, 14, name("a", W3)),
    }


def test_market_summary(stack: Any, crafted: str) -> None:
    got = {(r["market"]): r for r in rows_of(stack, crafted, "dash_market_summary", "snapshot_date = @d", d=W2)}
    assert set(got) == {"ALL", "GLOBAL", "BR"}
    every = got["ALL"]
    # a, b, d, e once each although a charts in both markets (and twice in BR)
    assert (every["chart_entries"], every["tracks"], every["artists"], every["genres"]) == (6, 4, 4, 3)
    assert every["tracks_with_features"] == 3
    assert every["avg_popularity"] == pytest.approx(80.0)  # (80 + 70 + 90) / 3: e has none
    assert every["avg_danceability"] == pytest.approx(0.6)
    assert every["avg_duration_ms"] == pytest.approx(210_000)
    assert every["avg_duration_minutes"] == pytest.approx(3.5)
    assert every["explicit_share"] == pytest.approx(1 / 3)
    br = got["BR"]
    assert (br["chart_entries"], br["tracks"], br["artists"], br["genres"]) == (3, 2, 3, 2)
    assert br["avg_popularity"] == pytest.approx(80.0)


def test_top_songs_counts_each_song_once(stack: Any, crafted: str) -> None:
    got = [
        (r["market"], r["popularity_rank"], key(r["track_id"]), r["popularity"], r["chart_rank"], r["markets"])
        for r in rows_of(stack, crafted, "dash_top_songs", "snapshot_date = @d", d=W2)
    ]
    assert sorted(got) == sorted(
        [
            ("ALL", 1, "d", 90, 3, "GLOBAL"),
            ("ALL", 2, "a", 80, 1, "BR, GLOBAL"),
            ("ALL", 3, "b", 70, 1, "GLOBAL"),
            ("ALL", 4, "e", None, 2, "BR"),  # no popularity: ranked last
            ("GLOBAL", 1, "d", 90, 3, "GLOBAL"),
            ("GLOBAL", 2, "a", 80, 2, "BR, GLOBAL"),
            ("GLOBAL", 3, "b", 70, 1, "GLOBAL"),
            ("BR", 1, "a", 80, 1, "BR, GLOBAL"),  # listed twice in BR, one row, popularity not summed
            ("BR", 2, "e", None, 2, "BR"),
        ]
    )


def test_genres(stack: Any, crafted: str) -> None:
    got = {
        (r["market"], r["genre"]): (
            r["genre_rank"],
            r["tracks"],
            r["artists"],
            r["main_genre_artists"],
            r["track_share"],
        )
        for r in rows_of(stack, crafted, "dash_genres", "snapshot_date = @d", d=W2)
    }
    assert got == {
        ("ALL", "pop"): (1, 2, 2, 2, pytest.approx(0.5)),
        ("ALL", "dance"): (2, 1, 1, 0, pytest.approx(0.25)),
        ("ALL", "rock"): (3, 1, 1, 1, pytest.approx(0.25)),
        ("GLOBAL", "pop"): (1, 2, 2, 2, pytest.approx(2 / 3)),
        ("GLOBAL", "dance"): (2, 1, 1, 0, pytest.approx(1 / 3)),
        ("GLOBAL", "rock"): (3, 1, 1, 1, pytest.approx(1 / 3)),
        ("BR", "pop"): (1, 1, 2, 2, pytest.approx(0.5)),
        ("BR", "dance"): (2, 1, 1, 0, pytest.approx(0.5)),
    }


def test_snapshots_and_latest_chart(stack: Any, crafted: str) -> None:
    got = {
        (r["snapshot_date"], r["market"]): (
            r["chart_entries"],
            r["tracks"],
            r["previous_snapshot_date"],
            r["recency_rank"],
            r["is_latest"],
            r["synthetic_tracks"],
            r["chart_source"],
        )
        for r in rows_of(stack, crafted, "dash_snapshots")
    }
    assert got == {
        (W1, "GLOBAL"): (3, 3, None, 3, False, 0, "crafted"),
        (W2, "GLOBAL"): (3, 3, W1, 2, False, 0, "crafted"),
        (W3, "GLOBAL"): (3, 3, W2, 1, True, 1, "crafted"),
        (W2, "BR"): (3, 2, None, 2, False, 1, "crafted"),
        (DE_WEEK, "DE"): (2, 2, None, 1, True, 0, "crafted"),
        (W3, "BR"): (2, 2, W2, 1, True, 1, "crafted"),
    }
    latest = sorted(
        (r["market"], r["rank"], key(r["track_id"]), r["track_name"], r["spotify_url"])
        for r in rows_of(stack, crafted, "dash_latest_chart")
    )
    url = "https://open.spotify.com/track/"
    assert latest == [
        ("BR", 1, "e", name("e", W3), url + track_id("e")),
        ("BR", 2, "a", name("a", W3), url + track_id("a")),
        ("DE", 1, "b", name("b", DE_WEEK), url + track_id("b")),  # DE's latest week is not W3
        ("DE", 2, "a", name("a", DE_WEEK), url + track_id("a")),
        ("GLOBAL", 1, "b", name("b", W3), url + track_id("b")),
        ("GLOBAL", 2, "d", name("d", W3), url + track_id("d")),
        ("GLOBAL", 3, "e", name("e", W3), url + track_id("e")),
    ]


def test_recommendation_views_take_names_from_tracks(stack: Any, crafted: str) -> None:
    recs = rows_of(stack, crafted, "dash_recommendations", "snapshot_date = @d", d=W2)
    got = sorted((key(r["track_id"]), r["rank"], key(r["neighbor_track_id"])) for r in recs)
    assert got == [("a", 1, "b"), ("a", 2, "d"), ("b", 1, "a"), ("b", 2, "d"), ("d", 1, "b"), ("d", 2, "a")]
    for r in recs:
        assert r["track_name"] == name(key(r["track_id"]) or "", W2)
        assert r["neighbor_track_name"] == name(key(r["neighbor_track_id"]) or "", W2)
        assert "STALE" not in (r["track_artists"] + r["neighbor_artists"] + r["track_label"])
        assert r["neighbor_spotify_url"] == "https://open.spotify.com/track/" + r["neighbor_track_id"]
    b_to_a = next(r for r in recs if key(r["track_id"]) == "b" and r["rank"] == 1)
    assert (b_to_a["neighbor_markets"], b_to_a["cross_market"]) == ("BR, GLOBAL", True)
    by_market = sorted(
        (key(r["track_id"]), r["neighbor_market"], r["market_rank"], r["rank"], key(r["neighbor_track_id"]))
        for r in rows_of(stack, crafted, "dash_recommendations_by_market", "snapshot_date = @d", d=W2)
    )
    assert by_market == [
        ("a", "GLOBAL", 1, 1, "b"),
        ("a", "GLOBAL", 2, 2, "d"),
        ("b", "BR", 1, 1, "a"),
        ("b", "GLOBAL", 1, 1, "a"),
        ("b", "GLOBAL", 2, 2, "d"),
        ("d", "BR", 1, 2, "a"),  # a is d's 2nd song overall, its nearest in BR
        ("d", "GLOBAL", 1, 1, "b"),
        ("d", "GLOBAL", 2, 2, "a"),
    ]


def test_clusters(stack: Any, crafted: str) -> None:
    got = sorted(
        (
            key(r["track_id"]),
            r["cluster"],
            r["cluster_size"],
            r["danceability"],
            r["centroid_danceability"],
            r["markets"],
        )
        for r in rows_of(stack, crafted, "dash_clusters", "snapshot_date = @d", d=W2)
    )
    assert got == [
        ("a", 0, 2, 0.5, pytest.approx(0.55), "BR, GLOBAL"),
        ("b", 0, 2, 0.6, pytest.approx(0.55), "GLOBAL"),
        ("d", 1, 1, 0.7, pytest.approx(0.7), "GLOBAL"),
    ]


def test_model_status_is_the_latest_succeeded_load(stack: Any, crafted: str) -> None:
    got = {
        r["snapshot_date"]: (r["model_skipped"], r["model_skipped_reason"], r["run_id"])
        for r in rows_of(stack, crafted, "dash_model_status")
    }
    assert got == {
        W1: (True, MODEL_SKIPPED, "crafted-2026-01-05-1"),
        W2: (False, None, "crafted-2026-01-12-60"),  # a later load modelled the week its first load skipped
        DE_WEEK: (False, None, "crafted-2026-01-19-0"),
        W3: (False, None, "crafted-2026-01-26-0"),  # the later failed load does not count
    }


# ---- the pipeline's own output, checked against its tables ----


def test_model_status_matches_the_run_log(stack: Any, weeks: tuple[date, ...]) -> None:
    loads = query(
        stack,
        "SELECT snapshot_date, run_id, finished_at, error FROM pipeline_runs "
        "WHERE stage = 'load' AND status = 'succeeded' AND snapshot_date IS NOT NULL",
    )
    latest: dict[date, dict[str, Any]] = {}
    for r in sorted(loads, key=lambda r: (r["finished_at"], r["run_id"])):
        latest[r["snapshot_date"]] = r
    status = {r["snapshot_date"]: r for r in query(stack, "SELECT * FROM dash_model_status")}
    assert set(weeks) <= set(status) and set(status) == set(latest)
    for day, r in latest.items():
        skipped = (r["error"] or "").startswith("model skipped")
        shown = status[day]
        assert (shown["run_id"], shown["model_skipped"], shown["model_skipped_reason"]) == (
            r["run_id"],
            skipped,
            r["error"] if skipped else None,
        ), day


def test_every_view_answers_on_pipeline_output(stack: Any, weeks: tuple[date, ...]) -> None:
    for view_name in views():
        n = query(stack, f"SELECT COUNT(*) AS n FROM {view_name} WHERE snapshot_date = @d", d=weeks[-1])[0]["n"]
        assert n > 0, view_name


def test_explorer_view_matches_the_recommendations_table(stack: Any, weeks: tuple[date, ...]) -> None:
    day = weeks[-1]
    table_rows = query(
        stack,
        "SELECT track_id, neighbor_track_id, `rank`, distance, cross_market FROM recommendations "
        "WHERE snapshot_date = @d ORDER BY track_id, `rank`",
        d=day,
    )
    view_rows = query(
        stack,
        "SELECT track_id, neighbor_track_id, `rank`, distance, cross_market, track_name, neighbor_track_name "
        "FROM dash_recommendations WHERE snapshot_date = @d ORDER BY track_id, `rank`",
        d=day,
    )
    strip = ("track_id", "neighbor_track_id", "rank", "distance", "cross_market")
    assert [tuple(r[k] for k in strip) for r in view_rows] == [tuple(r[k] for k in strip) for r in table_rows]
    names = {
        r["track_id"]: r["track_name"] for r in query(stack, "SELECT * FROM tracks WHERE snapshot_date = @d", d=day)
    }
    assert all(r["neighbor_track_name"] == names[r["neighbor_track_id"]] for r in view_rows)
    assert all(r["track_name"] == names[r["track_id"]] for r in view_rows)


def test_top_songs_and_summary_match_the_tables(stack: Any, weeks: tuple[date, ...]) -> None:
    day = weeks[-1]
    tracks = query(stack, "SELECT track_id, popularity, danceability FROM tracks WHERE snapshot_date = @d", d=day)
    top = query(
        stack, "SELECT track_id, popularity FROM dash_top_songs WHERE snapshot_date = @d AND market = 'ALL'", d=day
    )
    assert sorted((r["track_id"], r["popularity"]) for r in top) == sorted(
        (r["track_id"], r["popularity"]) for r in tracks
    )
    summary = query(stack, "SELECT * FROM dash_market_summary WHERE snapshot_date = @d AND market = 'ALL'", d=day)[0]
    assert summary["tracks"] == len(tracks)
    dance = [r["danceability"] for r in tracks if r["danceability"] is not None]
    assert summary["avg_danceability"] == pytest.approx(sum(dance) / len(dance))
    artists = query(stack, "SELECT COUNT(DISTINCT artist_id) AS n FROM track_artists WHERE snapshot_date = @d", d=day)
    assert summary["artists"] == artists[0]["n"]
    moves = query(
        stack,
        "SELECT COUNT(*) AS n FROM dash_weekly_movement WHERE snapshot_date = @d AND movement != 'dropped'",
        d=day,
    )
    entries = query(
        stack, "SELECT COUNT(DISTINCT CONCAT(market, track_id)) AS n FROM chart_entries WHERE snapshot_date = @d", d=day
    )
    assert moves[0]["n"] == entries[0]["n"]
