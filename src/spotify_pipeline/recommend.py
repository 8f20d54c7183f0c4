"""Recommend: the seed's model, done right.

Input: one row per distinct track with all four features (``model_features``), z-scored with
the population std. KMeans (fixed seed) gives each track a cluster and its distance to the
centroid; euclidean distance on the z-scores ranks each track's neighbours (rank 1 = nearest,
ties broken by neighbour track id, no self pairs). Up to ``all_pairs_max_tracks`` tracks every
pair is written (the seed's output); above it, the top ``k``. Neighbours come from a k-d tree,
never from an N x N matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from spotify_pipeline import layout
from spotify_pipeline.errors import DataError
from spotify_pipeline.manifest import FileEntry, Manifest, UpstreamRef
from spotify_pipeline.schema import table
from spotify_pipeline.store import BucketStore
from spotify_pipeline.tabular import lists, parquet_bytes, read_parquet, to_arrow
from spotify_pipeline.transform import MODEL_FEATURES

Z_COLUMNS = tuple(f"{c}_z" for c in MODEL_FEATURES)
CHUNK_ROWS = 4096


@dataclass(frozen=True)
class ModelParams:
    n_clusters: int = 5
    random_state: int = 42
    top_k: int = 100
    all_pairs_max_tracks: int = 2000


def nearest_neighbours(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row of ``z`` among the other rows.

    Rows must be sorted by track id: ties in distance are broken by row index, i.e. by id.
    Returns (indices, distances), each N x k, distances recomputed exactly so equal vectors tie.
    """
    from scipy.spatial import cKDTree

    n = len(z)
    k = min(k, n - 1)
    if k <= 0:
        return np.empty((n, 0), dtype=np.int64), np.empty((n, 0), dtype=np.float64)
    tree = cKDTree(z)
    out_idx = np.empty((n, k), dtype=np.int64)
    out_dist = np.empty((n, k), dtype=np.float64)
    for start in range(0, n, CHUNK_ROWS):
        rows = np.arange(start, min(start + CHUNK_ROWS, n))
        # One spare beyond self, plus a margin so boundary ties can be settled by id.
        query_k = min(n, k + 1 + 8)
        while True:
            _, cand = tree.query(z[rows], k=query_k)
            cand = np.asarray(cand, dtype=np.int64).reshape(len(rows), query_k)
            dist = np.sqrt(((z[rows][:, None, :] - z[cand]) ** 2).sum(axis=2))
            dist[cand == rows[:, None]] = np.inf  # self is never a neighbour
            order = np.lexsort((cand, dist), axis=1)
            cand = np.take_along_axis(cand, order, axis=1)
            dist = np.take_along_axis(dist, order, axis=1)
            # Exact only if the k-th distance is strictly below the farthest candidate seen,
            # or every point was a candidate.
            if query_k == n or bool(np.all(dist[:, k - 1] < dist[:, query_k - 2])):
                break
            query_k = min(n, query_k * 2)
        out_idx[rows] = cand[:, :k]
        out_dist[rows] = dist[:, :k]
    return out_idx, out_dist


def fit_clusters(z: np.ndarray, params: ModelParams) -> tuple[np.ndarray, np.ndarray]:
    """KMeans labels and each row's distance to its centroid (z units)."""
    from sklearn.cluster import KMeans

    n_clusters = min(params.n_clusters, len(z))
    model = KMeans(n_clusters=n_clusters, random_state=params.random_state, n_init=10).fit(z)
    labels = model.labels_.astype(np.int64)
    distance = np.linalg.norm(z - model.cluster_centers_[labels], axis=1)
    return labels, distance


def build_model_tables(
    features: pd.DataFrame, tracks: pd.DataFrame, snapshot: date, params: ModelParams
) -> dict[str, pd.DataFrame]:
    """Pure: model_features + tracks -> recommendations, track_clusters, clusters."""
    features = features.sort_values("track_id", kind="stable").reset_index(drop=True)
    if features["track_id"].duplicated().any():
        raise DataError("model_features: a track appears twice; expected one row per distinct track")
    if len(features) == 0:
        raise DataError("model_features is empty: no track of this snapshot has all four audio features")
    z = features[list(Z_COLUMNS)].to_numpy(dtype=np.float64)
    ids = features["track_id"].to_numpy()

    labels, to_centroid = fit_clusters(z, params)
    track_clusters = pd.DataFrame(
        {
            "snapshot_date": snapshot,
            "track_id": ids,
            "cluster": labels,
            "distance_to_centroid": to_centroid,
        }
    )
    grouped = features.assign(cluster=labels).groupby("cluster", sort=True)
    clusters = grouped[list(MODEL_FEATURES)].mean().reset_index()
    clusters.insert(1, "size", grouped.size().to_numpy().astype(np.int64))
    clusters.insert(0, "snapshot_date", snapshot)

    n = len(ids)
    k = n - 1 if n <= params.all_pairs_max_tracks else params.top_k
    idx, dist = nearest_neighbours(z, k)
    k = idx.shape[1]

    meta = tracks.set_index("track_id").reindex(ids)
    names = meta["track_name"].to_numpy(dtype=object)
    artists = np.array([", ".join(lists(a)) for a in meta["artist_names"]], dtype=object)
    markets = [sorted(lists(m)) for m in meta["markets"]]
    market_sets = [set(m) for m in markets]
    src = np.repeat(np.arange(n), k)
    dst = idx.reshape(-1)
    recommendations = pd.DataFrame(
        {
            "snapshot_date": snapshot,
            "track_id": ids[src],
            "track_name": names[src],
            "track_artists": artists[src],
            "track_markets": [markets[i] for i in src],
            "neighbor_track_id": ids[dst],
            "neighbor_track_name": names[dst],
            "neighbor_artists": artists[dst],
            "neighbor_markets": [markets[j] for j in dst],
            "distance": dist.reshape(-1),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), n),
            "cross_market": [bool(market_sets[j] - market_sets[i]) for i, j in zip(src, dst, strict=True)],
        }
    )
    return {"recommendations": recommendations, "track_clusters": track_clusters, "clusters": clusters}


def run_recommend(
    clean: Manifest, upstream: UpstreamRef, store: BucketStore, params: ModelParams, now: Callable[[], datetime]
) -> tuple[Manifest, int]:
    started = now()
    features = read_parquet(store.read_verified(clean.file("model_features")))
    tracks = read_parquet(store.read_verified(clean.file("tracks")))
    frames = build_model_tables(features, tracks, clean.snapshot_date, params)
    prefix = layout.prefix("recommend", clean.snapshot_date)
    files: list[FileEntry] = []
    for name, df in frames.items():
        data = parquet_bytes(to_arrow(df, table(name)))
        files.append(
            store.write(f"{prefix}{name}.parquet", data, "application/vnd.apache.parquet", rows=len(df), table=name)
        )
    manifest = Manifest(
        stage="recommend",
        snapshot_date=clean.snapshot_date,
        run_id=clean.run_id,
        started_at=started.isoformat(),
        finished_at=now().isoformat(),
        files=tuple(files),
        upstream=upstream,
        sources=dict(clean.sources),
        summary={
            "modelled_tracks": len(features),
            "n_clusters": int(frames["clusters"].shape[0]),
            "neighbours_per_track": int(frames["recommendations"].shape[0] // max(len(features), 1)),
            "random_state": params.random_state,
        },
    )
    name = layout.manifest_name("recommend", clean.snapshot_date)
    generation = store.write_manifest(manifest, name)
    store.delete_stale(prefix, {f.name for f in files} | {name})
    return manifest, generation
