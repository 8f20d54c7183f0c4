"""dashboard.payload and the choices of dashboard.warehouse: warehouse rows to the page's JSON (pure)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

import pytest

from spotify_pipeline_tools.dashboard.payload import MOVEMENTS, build_payload, market_order
from spotify_pipeline_tools.dashboard.warehouse import (
    AUTO_PAIR_BUDGET,
    DashboardError,
    Selection,
    WarehouseRows,
    choose_weeks,
    neighbour_count,
)

W1, W2 = date(2026, 11, 16), date(2026, 11, 23)
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def snap(day: date, market: str, **extra: Any) -> dict[str, Any]:
    return {
        "snapshot_date": day,
        "market": market,
        "chart_entries": 2,
        "tracks": 2,
        "tracks_with_features": 2,
        "synthetic_tracks": 0,
        "chart_source": "spotify-playlist",
        "feature_source": "spotify",
        "previous_snapshot_date": W1 if day == W2 else None,
        "recency_rank": 1 if day == W2 else 2,
        "is_latest": day == W2,
        **extra,
    }


def song(day: date, market: str, tid: str, name: str, pop: int | None, rank: int, markets: str) -> dict[str, Any]:
    return {
        "snapshot_date": day,
        "market": market,
        "track_id": tid,
        "track_name": name,
        "artist_names": f"Artist of {tid}",
        "popularity": pop,
        "chart_rank": 1,
        "markets": markets,
        "popularity_rank": rank,
    }


def rec(day: date, tid: str, rank: int, nb: str, cross: bool = False) -> dict[str, Any]:
    return {
        "snapshot_date": day,
        "track_id": tid,
        "rank": rank,
        "neighbor_track_id": nb,
        "distance": rank / 3,
        "cross_market": cross,
    }


def warehouse(**overrides: Any) -> WarehouseRows:
    rows = WarehouseRows(
        project="p",
        dataset="d",
        where="BigQuery",
        selection=Selection(weeks=(W1, W2), default_week=W2, neighbours=2, stored_neighbours=2),
        snapshots=[snap(W1, "GLOBAL"), snap(W2, "GLOBAL"), snap(W2, "BR"), snap(W2, "AR")],
        songs=[
            song(W1, "ALL", "t1", "Old name", 50, 1, "GLOBAL"),
            song(W2, "ALL", "t1", "One", 80, 1, "GLOBAL, BR"),
            song(W2, "ALL", "t2", "Two", None, 3, "BR"),
            song(W2, "ALL", "t3", "Three", 70, 2, "GLOBAL"),
            song(W2, "BR", "t1", "One", 80, 1, "GLOBAL, BR"),
            song(W2, "BR", "t2", "Two", None, 2, "BR"),
        ],
        recommendations=[
            rec(W2, "t3", 2, "t2", cross=True),
            rec(W2, "t1", 2, "t2"),
            rec(W2, "t3", 1, "t1"),
            rec(W2, "t1", 1, "t3"),
        ],
        movement=[
            {
                "snapshot_date": W2,
                "market": "GLOBAL",
                "previous_snapshot_date": W1,
                "track_id": "t1",
                "track_name": "One",
                "artist_names": "A",
                "rank": 1,
                "previous_rank": 2,
                "rank_change": 1,
                "movement": "up",
            },
            {
                "snapshot_date": W2,
                "market": "GLOBAL",
                "previous_snapshot_date": W1,
                "track_id": "t9",
                "track_name": "Gone",
                "artist_names": "Z",
                "rank": None,
                "previous_rank": 1,
                "rank_change": None,
                "movement": "dropped",
            },
        ],
    )
    for k, v in overrides.items():
        setattr(rows, k, v)
    return rows


def test_markets_global_first_then_alphabetical() -> None:
    assert market_order(["KR", "ALL", "GLOBAL", "BR", "AR"]) == ["GLOBAL", "AR", "BR", "KR"]
    assert build_payload(warehouse(), generated_at=NOW)["meta"]["markets"] == ["GLOBAL", "AR", "BR"]


def test_tracks_are_named_once_from_their_latest_week() -> None:
    tracks = build_payload(warehouse(), generated_at=NOW)["tracks"]
    assert tracks["id"] == ["t1", "t2", "t3", "t9"]
    assert tracks["name"] == ["One", "Two", "Three", "Gone"]  # t1 was "Old name" the week before


def test_neighbours_keep_the_warehouse_rank_order_whatever_the_row_order() -> None:
    for seed in range(5):
        rows = warehouse()
        random.Random(seed).shuffle(rows.recommendations)
        recs = build_payload(rows, generated_at=NOW)["weeks"][W2.isoformat()]["recs"]
        ids = build_payload(rows, generated_at=NOW)["tracks"]["id"]
        lists = {ids[t]: [ids[n] for n in recs["n"][recs["o"][i] : recs["o"][i + 1]]] for i, t in enumerate(recs["t"])}
        assert lists == {"t1": ["t3", "t2"], "t3": ["t1", "t2"]}
        assert recs["r"] is None  # ranks 1, 2, ... : implied by the position
        assert recs["x"] == "0001"
        assert recs["d"] == [round(1 / 3, 3), round(2 / 3, 3), round(1 / 3, 3), round(2 / 3, 3)]


def test_explicit_ranks_when_the_warehouse_ranks_have_gaps() -> None:
    rows = warehouse(recommendations=[rec(W2, "t1", 1, "t3"), rec(W2, "t1", 3, "t2")])
    assert build_payload(rows, generated_at=NOW)["weeks"][W2.isoformat()]["recs"]["r"] == [1, 3]


def test_top_songs_leave_out_songs_without_popularity_and_beyond_the_limit() -> None:
    rows = warehouse()
    rows.selection = Selection(weeks=(W1, W2), default_week=W2, neighbours=2, stored_neighbours=2, top_songs=2)
    top = build_payload(rows, generated_at=NOW)["weeks"][W2.isoformat()]["top"]
    assert top == {"ALL": [[0, 80, 1], [2, 70, 1]], "BR": [[0, 80, 1]]}


def test_songs_carry_their_markets_as_indices() -> None:
    songs = build_payload(warehouse(), generated_at=NOW)["weeks"][W2.isoformat()]["songs"]
    assert songs["t"] == [0, 2, 1]  # popularity_rank order
    assert songs["mk"] == [[0, 2], [0], [2]]  # GLOBAL=0, AR=1, BR=2


def test_movement_codes_and_previous_weeks() -> None:
    week = build_payload(warehouse(), generated_at=NOW)["weeks"][W2.isoformat()]
    assert [MOVEMENTS[m] for m in week["moves"]["mv"]] == ["up", "dropped"]
    assert week["moves"]["r"] == [1, None] and week["moves"]["pr"] == [2, 1]
    assert week["previous"] == {"GLOBAL": W1.isoformat()}


def test_a_market_without_an_earlier_week_is_listed_with_no_previous_week() -> None:
    """The page says which market has nothing to compare with: every market charting that week is in 'previous'."""
    first_in_br = {
        "snapshot_date": W2,
        "market": "BR",
        "previous_snapshot_date": None,
        "track_id": "t2",
        "track_name": "Two",
        "artist_names": "B",
        "rank": 1,
        "previous_rank": None,
        "rank_change": None,
        "movement": "no_history",
    }
    rows = warehouse()
    rows.movement.append(first_in_br)
    week = build_payload(rows, generated_at=NOW)["weeks"][W2.isoformat()]
    assert week["previous"] == {"GLOBAL": W1.isoformat(), "BR": None}


def test_an_earlier_snapshot_date_keeps_the_later_stored_weeks_in_meta() -> None:
    """--snapshot-date W1 with W2 stored: W1 is shown first, W2 stays the newest stored week (not on the page)."""
    rows = warehouse()
    rows.selection = Selection(weeks=(W1,), default_week=W1, neighbours=2, stored_neighbours=2)
    meta = build_payload(rows, generated_at=NOW)["meta"]
    assert (meta["weeks"], meta["defaultWeek"]) == (["2026-11-16"], "2026-11-16")
    assert meta["storedWeeks"] == ["2026-11-16", "2026-11-23"]


def test_synthetic_detection() -> None:
    assert build_payload(warehouse(), generated_at=NOW)["meta"]["synthetic"] is False
    flagged = warehouse(snapshots=[snap(W2, "GLOBAL", synthetic_tracks=3)])
    assert build_payload(flagged, generated_at=NOW)["meta"]["synthetic"] is True
    named = warehouse(songs=[song(W2, "ALL", "t1", "Demo Track 001 (synthetic)", 1, 1, "GLOBAL")])
    assert build_payload(named, generated_at=NOW)["meta"]["synthetic"] is True


def test_meta_provenance() -> None:
    meta = build_payload(warehouse(), generated_at=NOW)["meta"]
    assert meta["weeks"] == ["2026-11-16", "2026-11-23"] and meta["defaultWeek"] == "2026-11-23"
    assert (meta["chartSources"], meta["featureSources"]) == (["spotify-playlist"], ["spotify"])
    assert meta["source"] == {"project": "p", "dataset": "d", "where": "BigQuery"}
    assert meta["generatedAt"] == "2026-11-24T09:00:00+00:00"


def test_a_week_whose_model_was_skipped_says_why() -> None:
    reason = f"model skipped for snapshot {W1.isoformat()} (chart data still loaded): gate features_in_range failed"
    rows = warehouse(model_skipped=[{"snapshot_date": W1, "model_skipped_reason": reason}])
    weeks = build_payload(rows, generated_at=NOW)["weeks"]
    assert weeks[W1.isoformat()]["modelSkipped"] == reason
    assert weeks[W2.isoformat()]["modelSkipped"] is None  # modelled: its neighbours are on the page
    assert weeks[W2.isoformat()]["recs"]["t"]
    assert all(w["modelSkipped"] is None for w in build_payload(warehouse(), generated_at=NOW)["weeks"].values())


def test_choose_weeks() -> None:
    stored = [date(2026, 11, d) for d in (2, 9, 16, 23)]
    assert choose_weeks(stored, None, 12) == (tuple(stored), date(2026, 11, 23))
    assert choose_weeks(stored, date(2026, 11, 16), 2) == ((date(2026, 11, 9), date(2026, 11, 16)), date(2026, 11, 16))
    with pytest.raises(DashboardError, match="2026-11-30 is not stored; stored: 2026-11-02"):
        choose_weeks(stored, date(2026, 11, 30), 12)
    with pytest.raises(DashboardError, match="no chart snapshot"):
        choose_weeks([], None, 12)
    with pytest.raises(DashboardError, match="--weeks"):
        choose_weeks(stored, None, 0)


def test_neighbour_count() -> None:
    assert neighbour_count(None, tracks=143, stored=142) == 142  # the demo: every pair
    assert neighbour_count(None, tracks=10_000, stored=100) == AUTO_PAIR_BUDGET // 10_000
    assert neighbour_count(None, tracks=10**7, stored=100) == 10  # never fewer than 10 by default
    assert neighbour_count(5, tracks=10**7, stored=100) == 5
    assert neighbour_count(500, tracks=10, stored=9) == 9
    with pytest.raises(DashboardError):
        neighbour_count(0, tracks=1, stored=1)
