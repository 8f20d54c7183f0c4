"""Recommend: exact neighbours (checked against brute force), model tables, determinism."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from spotify_pipeline.errors import DataError
from spotify_pipeline.features import MODEL_FEATURES, Z_COLUMNS
from spotify_pipeline.recommend import ModelParams, build_model_tables, knn, nearest_neighbours
from spotify_pipeline.schema import table
from spotify_pipeline.tabular import parquet_bytes, read_parquet, to_arrow
from spotify_pipeline.transform import build_tables

SNAPSHOT = date(2026, 11, 23)
MARKETS = ("BR", "GLOBAL", "KR")
GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "raw"


# --- brute force reference ------------------------------------------------------------------


def brute_force(z: np.ndarray, k: int, keys: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Full N x N distance matrix; each row's others sorted by (distance, key), key = index by default."""
    n = len(z)
    d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(d, np.inf)
    keys = np.arange(n) if keys is None else keys
    order = np.array([np.lexsort((keys, d[i])) for i in range(n)])[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


def random_z(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4))


def binary_z(n: int, seed: int) -> np.ndarray:
    """Values from {0, 1} in 4 dims: only 16 distinct points, so distances tie everywhere."""
    return np.random.default_rng(seed).integers(0, 2, size=(n, 4)).astype(np.float64)


def check_against_brute_force(z: np.ndarray, k: int) -> None:
    idx, dist = nearest_neighbours(z, k)
    want_idx, want_dist = brute_force(z, k)
    assert idx.shape == dist.shape == (len(z), k)
    np.testing.assert_array_equal(idx, want_idx)  # same neighbours, same order
    np.testing.assert_allclose(dist, want_dist, rtol=1e-12, atol=0)
    assert not (idx == np.arange(len(z))[:, None]).any(), "a track is its own neighbour"


# --- nearest_neighbours ---------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 10, 299])
def test_random_data_matches_brute_force(k: int) -> None:
    check_against_brute_force(random_z(300, seed=7), k)


@pytest.mark.parametrize("k", [7, 199])
def test_tie_heavy_data_matches_brute_force(k: int) -> None:
    z = binary_z(200, seed=11)
    assert len({tuple(r) for r in z}) <= 16
    check_against_brute_force(z, k)


def test_tie_heavy_data_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knn, "CHUNK_ROWS", 37)
    check_against_brute_force(binary_z(200, seed=12), 9)
    check_against_brute_force(random_z(150, seed=13), 149)


def test_all_identical_points_rank_by_index() -> None:
    z = np.zeros((25, 4))
    idx, dist = nearest_neighbours(z, 24)
    assert (dist == 0).all()
    for i in range(25):
        assert idx[i].tolist() == [j for j in range(25) if j != i]


def test_k_is_capped_at_the_other_points() -> None:
    idx, dist = nearest_neighbours(random_z(20, seed=1), 1000)
    assert idx.shape == dist.shape == (20, 19)
    assert all(sorted(row) == [j for j in range(20) if j != i] for i, row in enumerate(idx.tolist()))


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_points_have_no_neighbours(n: int) -> None:
    idx, dist = nearest_neighbours(np.zeros((n, 4)), 5)
    assert idx.shape == dist.shape == (n, 0)


# --- build_model_tables ---------------------------------------------------------------------


def make_inputs(n: int, seed: int, z: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """model_features and tracks frames for n tracks, rows deliberately not in track-id order."""
    rng = np.random.default_rng(seed)
    ids = [f"{rng.integers(0, 36**6):06x}{i:016d}"[-22:] for i in range(n)]
    raw = np.column_stack(
        [rng.uniform(0.3, 0.95, n), rng.uniform(0.2, 0.97, n), rng.uniform(-20, -1, n), rng.uniform(0.05, 0.97, n)]
    )
    if z is None:
        z = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    features = pd.DataFrame(
        {
            "snapshot_date": SNAPSHOT,
            "track_id": ids,
            **{c: raw[:, i] for i, c in enumerate(MODEL_FEATURES)},
            **{c: z[:, i] for i, c in enumerate(Z_COLUMNS)},
            "feature_source": "spotify",
        }
    )
    markets = []
    for _ in range(n):
        chosen = [m for m in MARKETS if rng.random() < 0.4]
        markets.append(chosen or [MARKETS[int(rng.integers(0, 3))]])
    tracks = pd.DataFrame(
        {
            "track_id": ids,
            "track_name": [f"Track {i}" for i in range(n)],
            "artist_names": [[f"Artist {i}"] + ([f"Guest {i}"] if i % 3 == 0 else []) for i in range(n)],
            "markets": [list(reversed(m)) for m in markets],  # unsorted on purpose
        }
    )
    order = rng.permutation(n)
    return features.iloc[order].reset_index(drop=True), tracks.iloc[rng.permutation(n)].reset_index(drop=True)


def params(**overrides: Any) -> ModelParams:
    base: dict[str, Any] = {"n_clusters": 3, "random_state": 0, "top_k": 5, "all_pairs_max_tracks": 2000}
    return ModelParams(**{**base, **overrides})


def z_by_id(features: pd.DataFrame) -> dict[str, np.ndarray]:
    return {tid: row for tid, row in zip(features["track_id"], features[list(Z_COLUMNS)].to_numpy(), strict=True)}


@pytest.mark.parametrize(
    ("n", "limit", "k", "per_track"),
    [
        (40, 2000, 5, 39),
        (40, 40, 5, 39),
        (41, 40, 5, 5),
        (30, 10, 7, 7),
        (8, 2, 100, 7),
    ],
)
def test_recommendation_counts(n: int, limit: int, k: int, per_track: int) -> None:
    features, tracks = make_inputs(n, seed=n)
    rec = build_model_tables(features, tracks, SNAPSHOT, params(all_pairs_max_tracks=limit, top_k=k))["recommendations"]
    assert len(rec) == n * per_track
    assert rec.groupby("track_id").size().eq(per_track).all()
    assert (rec["track_id"] != rec["neighbor_track_id"]).all()
    assert not rec.duplicated(["track_id", "neighbor_track_id"]).any()
    for _, group in rec.groupby("track_id"):
        assert group["rank"].tolist() == list(range(1, per_track + 1))


def test_neighbours_are_the_nearest_by_distance_then_id() -> None:
    features, tracks = make_inputs(60, seed=5)
    rec = build_model_tables(features, tracks, SNAPSHOT, params(all_pairs_max_tracks=10, top_k=8))["recommendations"]
    zs = z_by_id(features)
    ids = np.array(sorted(zs))
    z = np.array([zs[t] for t in ids])
    want_idx, want_dist = brute_force(z, 8, keys=ids)
    for i, tid in enumerate(ids):
        got = rec[rec["track_id"] == tid].sort_values("rank")
        assert got["neighbor_track_id"].tolist() == ids[want_idx[i]].tolist()
        np.testing.assert_allclose(got["distance"].to_numpy(), want_dist[i], rtol=1e-12)


def test_ties_are_broken_by_neighbour_id() -> None:
    n = 60
    z = binary_z(n, seed=3)
    features, tracks = make_inputs(n, seed=3, z=z)
    rec = build_model_tables(features, tracks, SNAPSHOT, params(all_pairs_max_tracks=10, top_k=12))["recommendations"]
    zs = z_by_id(features)
    ids = np.array(sorted(zs))
    want_idx, _ = brute_force(np.array([zs[t] for t in ids]), 12, keys=ids)
    ties = 0
    for i, tid in enumerate(ids):
        got = rec[rec["track_id"] == tid].sort_values("rank")
        pairs = list(zip(got["distance"], got["neighbor_track_id"], strict=True))
        assert pairs == sorted(pairs), tid
        assert got["neighbor_track_id"].tolist() == ids[want_idx[i]].tolist(), tid
        ties += int(got["distance"].duplicated().sum())
    assert ties > 100, "the data should be tie-heavy"


def test_row_metadata_and_cross_market() -> None:
    features, tracks = make_inputs(30, seed=9)
    rec = build_model_tables(features, tracks, SNAPSHOT, params())["recommendations"]
    meta = tracks.set_index("track_id")
    for row in rec.itertuples():
        mine, theirs = set(meta.at[row.track_id, "markets"]), set(meta.at[row.neighbor_track_id, "markets"])
        assert row.cross_market == bool(theirs - mine), row
        assert list(row.track_markets) == sorted(mine) and list(row.neighbor_markets) == sorted(theirs)
    assert rec["cross_market"].any() and not rec["cross_market"].all()
    assert set(rec["snapshot_date"]) == {SNAPSHOT}
    assert "track_name" not in rec.columns  # names join from tracks (slim table at catalogue scale)


@pytest.mark.parametrize(("n", "n_clusters"), [(50, 4), (3, 5)])
def test_clusters_partition_the_tracks(n: int, n_clusters: int) -> None:
    features, tracks = make_inputs(n, seed=21)
    out = build_model_tables(features, tracks, SNAPSHOT, params(n_clusters=n_clusters))
    tc, clusters = out["track_clusters"], out["clusters"]
    expected_clusters = min(n, n_clusters)
    assert sorted(tc["track_id"]) == sorted(features["track_id"])
    assert clusters["cluster"].tolist() == list(range(expected_clusters))
    assert clusters["size"].sum() == n
    assert dict(zip(clusters["cluster"], clusters["size"], strict=True)) == tc["cluster"].value_counts().to_dict()
    raw = features.set_index("track_id")
    zs = z_by_id(features)
    for c in clusters.itertuples():
        members = tc.loc[tc["cluster"] == c.cluster, "track_id"].tolist()
        for feature in MODEL_FEATURES:  # centroids in original units: the members' mean
            assert getattr(c, feature) == pytest.approx(raw.loc[members, feature].mean(), rel=1e-12, abs=1e-12)
        centre = np.mean([zs[t] for t in members], axis=0)
        got = tc.set_index("track_id").loc[members, "distance_to_centroid"].to_numpy()
        np.testing.assert_allclose(got, [np.linalg.norm(zs[t] - centre) for t in members], atol=1e-9)


def test_deterministic_frames_and_parquet_bytes() -> None:
    features, tracks = make_inputs(80, seed=4)
    p = params(all_pairs_max_tracks=20, top_k=10)
    first = build_model_tables(features, tracks, SNAPSHOT, p)
    shuffled = features.sample(frac=1.0, random_state=1).reset_index(drop=True)
    second = build_model_tables(shuffled, tracks, SNAPSHOT, p)
    assert set(first) == {"recommendations", "track_clusters", "clusters"}
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])
        a = parquet_bytes(to_arrow(first[name], table(name)))
        b = parquet_bytes(to_arrow(second[name], table(name)))
        assert a == b, name


def test_empty_input_is_a_data_error() -> None:
    features, tracks = make_inputs(5, seed=1)
    with pytest.raises(DataError, match="empty"):
        build_model_tables(features.iloc[0:0], tracks, SNAPSHOT, params())


def test_duplicate_track_is_a_data_error() -> None:
    features, tracks = make_inputs(5, seed=1)
    doubled = pd.concat([features, features.iloc[[2]]], ignore_index=True)
    with pytest.raises(DataError, match="twice"):
        build_model_tables(doubled, tracks, SNAPSHOT, params())


# --- on the transform's real output, through Parquet as run_recommend reads it ----------------


def test_golden_snapshot_through_parquet() -> None:
    manifest = json.loads((GOLDEN / "extract/snapshot_date=2026-11-23/_manifest.json").read_text())
    raw = [(f["name"], json.loads((GOLDEN / f["name"]).read_text(encoding="utf-8"))) for f in manifest["files"]]
    clean = build_tables(raw, SNAPSHOT, chart_source="spotify-playlist", feature_source="spotify")

    def via_parquet(name: str) -> pd.DataFrame:
        return read_parquet(parquet_bytes(to_arrow(clean[name], table(name))))

    features, tracks = via_parquet("model_features"), via_parquet("tracks")
    out = build_model_tables(features, tracks, SNAPSHOT, ModelParams())
    rec = out["recommendations"]
    n = len(features)
    assert n == 142 and len(rec) == n * (n - 1)  # below the default all-pairs limit: every pair
    for name, df in out.items():
        to_arrow(df, table(name))  # conforms to the schema
    # Tracks with identical feature vectors are each other's nearest neighbour, at distance 0.
    vectors: dict[tuple[float, ...], list[str]] = {}
    for name, body in raw:
        if "/audio_features/" in name:
            for f in body["audio_features"]:
                if f:
                    vectors.setdefault(tuple(f[c] for c in MODEL_FEATURES), []).append(f["id"])
    twins = [sorted(ids) for ids in vectors.values() if len(ids) > 1]
    assert len(twins) == 3  # the demo catalogue plants three such pairs
    first = rec[rec["rank"] == 1].set_index("track_id")
    for a, b in twins:
        assert first.at[a, "neighbor_track_id"] == b and first.at[b, "neighbor_track_id"] == a
        assert first.at[a, "distance"] == 0.0
    assert int((rec["distance"] == 0.0).sum()) == 2 * len(twins)  # no other pair is at distance 0
