"""The model over a :class:`~spotify_pipeline.recommend.catalogue.Catalogue`: clusters, and the
recommendations table, one chunk of rows at a time.

* KMeans on the z-scores (``n_clusters``, fixed ``random_state``, one thread, so the result does
  not depend on the machine): each track's cluster and euclidean distance to its centroid.
* Neighbours (:mod:`.knn`): each track's neighbours ranked 1..k, never the track itself. Up to
  ``all_pairs_max_tracks`` tracks every pair is written (the seed's output), above it the top
  ``top_k``. Exact: the same lists as brute force.
* Cross-market: every pair carries the markets each side charts in, and ``cross_market`` says
  the neighbour charts in a market the track does not.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spotify_pipeline.features import MODEL_FEATURES, Z_COLUMNS
from spotify_pipeline.recommend.catalogue import Catalogue, Markets, catalogue
from spotify_pipeline.recommend.knn import neighbour_chunks
from spotify_pipeline.schema import table

if TYPE_CHECKING:
    import pandas as pd

_T = TypeVar("_T")

KMEANS_MULTI_INIT_MAX_TRACKS = 2000  # KMeans n_init=10 up to this many tracks, 1 above
RECOMMENDATION_INT_TYPES = {"rank": pa.int32()}  # Parquet INT32; BigQuery loads it into INT64


@dataclass(frozen=True)
class ModelParams:
    n_clusters: int = 5
    random_state: int = 42
    top_k: int = 100
    all_pairs_max_tracks: int = 2000

    def neighbours_per_track(self, n_tracks: int) -> int:
        k = n_tracks - 1 if n_tracks <= self.all_pairs_max_tracks else self.top_k
        return max(0, min(k, n_tracks - 1))


# --- clusters ---------------------------------------------------------------------------------


def fit_clusters(z: np.ndarray, params: ModelParams) -> tuple[np.ndarray, np.ndarray]:
    """KMeans labels and each row's distance to its centroid (z units).

    k-means++ with ``random_state``; 10 initialisations up to KMEANS_MULTI_INIT_MAX_TRACKS tracks
    (the seed's setting, cheap there), 1 above (scikit-learn's ``n_init="auto"`` choice: at 1M
    tracks one run takes ~1 s). One thread, so the floating-point sums, and with them the labels,
    are the same on any machine.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

    n_clusters = min(params.n_clusters, len(z))
    n_init = 10 if len(z) <= KMEANS_MULTI_INIT_MAX_TRACKS else 1
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct points than clusters
        model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=params.random_state).fit(z)
    labels = np.asarray(model.labels_, dtype=np.int64)
    diff = z - model.cluster_centers_[labels]
    diff *= diff
    return labels, np.sqrt(diff.sum(axis=1))


def cluster_tables(cat: Catalogue, snapshot: date, params: ModelParams) -> tuple[pa.Table, pa.Table]:
    """track_clusters (track-id order) and clusters (centroids in original units, non-empty only)."""
    labels, to_centroid = fit_clusters(cat.z, params)
    n = len(cat)
    day = _date_array(snapshot, n)
    track_clusters = pa.Table.from_arrays(
        [day, cat.ids, pa.array(labels), pa.array(to_centroid)], schema=table("track_clusters").arrow_schema()
    )
    size = np.bincount(labels, minlength=min(params.n_clusters, n))
    present = np.flatnonzero(size)
    sums = [np.bincount(labels, weights=cat.raw[:, j], minlength=len(size)) for j in range(len(MODEL_FEATURES))]
    clusters = pa.Table.from_arrays(
        [_date_array(snapshot, len(present)), pa.array(present.astype(np.int64)), pa.array(size[present])]
        + [pa.array(s[present] / size[present]) for s in sums],
        schema=table("clusters").arrow_schema(),
    )
    return track_clusters, clusters


# --- recommendations --------------------------------------------------------------------------


def _date_array(day: date, n: int) -> pa.Array:
    days = (day - date(1970, 1, 1)).days
    return pa.array(np.full(n, days, dtype=np.int32)).view(pa.date32())


def recommendations_schema() -> pa.Schema:
    """The recommendations table's Arrow schema (tables.json), with compact integer types."""
    base = table("recommendations").arrow_schema()
    return pa.schema(
        [pa.field(f.name, RECOMMENDATION_INT_TYPES.get(f.name, f.type), nullable=f.nullable) for f in base]
    )


def wire_schema(markets: Markets) -> pa.Schema:
    """How chunks travel to the writer: ids and markets dictionary-encoded (the Parquet writer
    takes the indices as they are), otherwise :func:`recommendations_schema`."""
    ids = pa.dictionary(pa.int32(), pa.string())
    encoded = {
        "track_id": ids,
        "neighbor_track_id": ids,
        "track_markets": markets.list_type(),
        "neighbor_markets": markets.list_type(),
    }
    return pa.schema([f.with_type(encoded.get(f.name, f.type)) for f in recommendations_schema()])


def _ids_dictionary(ids: pa.Array, rows: np.ndarray, scratch: np.ndarray) -> pa.Array:
    """dictionary<int32, string> of ``ids[rows]`` whose dictionary holds the distinct rows only.
    ``scratch``: int32 zeros of len(ids), left so."""
    scratch[rows] = 1
    distinct = np.flatnonzero(scratch)
    scratch[distinct] = np.arange(len(distinct), dtype=np.int32)
    position = scratch[rows]
    scratch[distinct] = 0
    return pa.DictionaryArray.from_arrays(pa.array(position), ids.take(pa.array(distinct)))


def recommendation_batch(
    cat: Catalogue, snapshot: date, rows: np.ndarray, idx: np.ndarray, dist: np.ndarray, scratch: np.ndarray
) -> pa.RecordBatch:
    """One chunk of the recommendations table (wire schema): ``rows``' neighbours ``idx`` at
    ``dist``, ranked. ``scratch``: int32 zeros of len(cat), left so."""
    n_rows, k = idx.shape
    src = np.repeat(rows, k)
    dst = idx.reshape(-1)
    schema = wire_schema(cat.markets)
    columns: dict[str, pa.Array] = {
        "snapshot_date": _date_array(snapshot, len(src)),
        "track_id": pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(np.arange(n_rows, dtype=np.int32), k)), cat.ids.take(pa.array(rows))
        ),
        "track_markets": cat.markets.take(src),
        "neighbor_track_id": _ids_dictionary(cat.ids, dst, scratch),
        "neighbor_markets": cat.markets.take(dst),
        "distance": pa.array(dist.reshape(-1)),
        "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n_rows)),
        "cross_market": pa.array(cat.markets.cross(rows, k, dst)),
    }
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)


Sink = Callable[[pa.RecordBatch], None]


@dataclass(frozen=True)
class ModelResult:
    track_clusters: pa.Table
    clusters: pa.Table
    tracks: int
    neighbours_per_track: int
    recommendation_rows: int


def _prefetch(items: Iterator[_T], depth: int = 1) -> Generator[_T, None, None]:
    """``items``, computed by a background thread up to ``depth`` ahead: on two cores the next
    chunk's neighbours are found while this chunk is written (the k-d tree, numpy and Arrow
    release the GIL). Stops the thread if the consumer stops early; re-raises its errors."""
    import queue
    import threading

    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))

    thread = threading.Thread(target=work, name="recommend-neighbours", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def run_model(
    cat: Catalogue, snapshot: date, params: ModelParams, sink: Sink, timings: dict[str, float] | None = None
) -> ModelResult:
    """The model, for the function and the command alike: clusters, and neighbours to ``sink`` in
    chunks (found and encoded by a background thread while the previous chunk is written).
    ``timings`` (if given) receives the seconds of each phase."""
    began = time.perf_counter()
    k = params.neighbours_per_track(len(cat))
    scratch = np.zeros(len(cat), dtype=np.int32)
    batches = _prefetch(
        recommendation_batch(cat, snapshot, chunk_rows, idx, dist, scratch)
        for chunk_rows, idx, dist in neighbour_chunks(cat.z, k)
    )
    try:
        track_clusters, clusters = cluster_tables(cat, snapshot, params)
        clustered = time.perf_counter()
        rows = 0
        for batch in batches:
            sink(batch)
            rows += batch.num_rows
    finally:
        batches.close()
    if timings is not None:
        timings["clusters"] = clustered - began
        timings["neighbours"] = time.perf_counter() - clustered
    return ModelResult(track_clusters, clusters, len(cat), k, rows)


# --- the pure, in-memory form (small inputs, tests) ---------------------------------------------


def build_model_tables(
    features: pd.DataFrame, tracks: pd.DataFrame, snapshot: date, params: ModelParams
) -> dict[str, pd.DataFrame]:
    """Pure: model_features + tracks -> recommendations, track_clusters, clusters, in track-id
    (then rank) order. The same code as the stage, collected in memory."""
    feats = pa.Table.from_pandas(features[["track_id", *MODEL_FEATURES, *Z_COLUMNS]], preserve_index=False)
    meta = pa.table(
        {
            "track_id": pa.array(tracks["track_id"].tolist(), pa.string()),
            "markets": pa.array([_as_list(m) for m in tracks["markets"]], pa.list_(pa.string())),
        }
    )
    cat = catalogue(feats, meta)
    batches: list[pa.RecordBatch] = []
    result = run_model(cat, snapshot, params, batches.append)
    rec = pa.Table.from_batches(batches, schema=wire_schema(cat.markets)).cast(recommendations_schema())
    rec = rec.take(pc.sort_indices(rec, [("track_id", "ascending"), ("rank", "ascending")]))
    return {
        "recommendations": rec.to_pandas(),
        "track_clusters": result.track_clusters.to_pandas(),
        "clusters": result.clusters.to_pandas(),
    }


def _as_list(values: Any) -> list[str]:
    return [] if values is None else [str(v) for v in values]
