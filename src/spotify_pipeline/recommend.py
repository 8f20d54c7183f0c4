"""Recommend: clusters and exact ranked neighbours, from 143 tracks to a whole catalogue.

Semantics (docs/recommendations.md has the long form):

* Model input: one row per distinct track with all four features (``MODEL_FEATURES``), in
  track-id order. Features are z-scored with the population std over that set (a constant
  feature scores 0).
* KMeans on the z-scores (``n_clusters``, fixed ``random_state``, one thread, so the result does
  not depend on the machine): each track's cluster and euclidean distance to its centroid.
* Neighbours: euclidean distance on the z-scores, ``sqrt(((a0-b0)**2 + (a1-b1)**2) + ...)``
  in float64, in that order, so equal vectors are at exactly 0 and the distance is symmetric.
  Each track's neighbours are all other tracks ranked by (distance, neighbour track id); rank
  1..k, never the track itself. Up to ``all_pairs_max_tracks`` tracks every pair is written (the
  seed's output), above it the top ``top_k``. Exact: the same lists as brute force.
* Cross-market: every pair carries the markets each side charts in, and ``cross_market`` says
  the neighbour charts in a market the track does not.

How: a k-d tree over the distinct feature vectors (duplicates collapsed, so thousands of identical
vectors cost one query), queried in the tree's own order, a chunk of vectors at a time. Each
chunk's candidates get exact distances; a track whose k-th neighbour is not strictly nearer than
the farthest candidate (a tie at the boundary) is queried again with twice the candidates, so
ties are always settled by id among *all* tied tracks. Never an N x N matrix: memory is O(N) for
the input plus O(chunk x k) for the rows being written, which go straight to a Parquet writer.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spotify_pipeline import layout
from spotify_pipeline.errors import DataError
from spotify_pipeline.features import MODEL_FEATURES, Z_COLUMNS, zscore
from spotify_pipeline.manifest import FileEntry, Manifest, RecommendSummary, TransformSummary, UpstreamRef
from spotify_pipeline.safe_text import csv_safe_table
from spotify_pipeline.schema import table
from spotify_pipeline.store import StageStore

if TYPE_CHECKING:
    import pandas as pd

_T = TypeVar("_T")

CHUNK_ROWS = 16384  # feature vectors queried per k-d tree call (at most)
MIN_CHUNKS = 8  # smaller inputs still come in several chunks, so computing and writing overlap
MIN_CHUNK_ROWS = 1024
CHUNK_PAIRS = 1 << 20  # recommendation rows per chunk written (at most about)
MAX_CANDIDATES = 1 << 20  # chunk x candidates per call, bounds the per-chunk arrays (~30 MB)
EXPAND_ITEMS = 1 << 22  # tracks expanded at once when duplicate vectors or ties need sorting
BOUNDARY_TOL = 1e-12  # relative margin between tree and exact distances at the boundary
KMEANS_MULTI_INIT_MAX_TRACKS = 2000  # KMeans n_init=10 up to this many tracks, 1 above
RECOMMENDATION_INT_TYPES = {"rank": pa.int32()}  # Parquet INT32; BigQuery loads it into INT64


def preload() -> None:
    """Import the model's heavy dependencies now (they load lazily on first use otherwise)."""
    import scipy.spatial
    import sklearn.cluster
    import threadpoolctl  # type: ignore[import-untyped, unused-ignore]

    del scipy, sklearn, threadpoolctl


@dataclass(frozen=True)
class ModelParams:
    n_clusters: int = 5
    random_state: int = 42
    top_k: int = 100
    all_pairs_max_tracks: int = 2000

    def neighbours_per_track(self, n_tracks: int) -> int:
        k = n_tracks - 1 if n_tracks <= self.all_pairs_max_tracks else self.top_k
        return max(0, min(k, n_tracks - 1))


# --- model input ------------------------------------------------------------------------------

MARKETS_TYPE = pa.list_(pa.field("element", pa.string(), nullable=False))


def _index_type(size: int) -> pa.DataType:
    return pa.int8() if size <= 127 else pa.int16() if size <= 32767 else pa.int32()


@dataclass(frozen=True)
class Markets:
    """Per track, the sorted distinct markets it charts in: codes into ``vocab`` (a CSR layout,
    from which any selection of tracks becomes a list column without Python objects) and bit
    sets (for ``cross_market``)."""

    vocab: pa.Array  # string, sorted, distinct
    offsets: np.ndarray  # (n + 1,) int64
    codes: np.ndarray  # flat codes into vocab; each track's ascending
    bits: np.ndarray  # (ceil(len(vocab) / 64), n) uint64: word w of every track's market set

    @property
    def value_type(self) -> pa.DataType:
        return pa.dictionary(_index_type(len(self.vocab)), pa.string())

    @staticmethod
    def from_lists(values: pa.Array | pa.ChunkedArray, owner: np.ndarray | None, n: int) -> Markets:
        """From a list<string> column whose row i belongs to track ``owner[i]`` (-1: to none;
        default: track i). A track's markets are the union over its rows; nulls and empty
        strings are ignored."""
        arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        flat = pc.list_flatten(arr)
        parent = np.asarray(pc.list_parent_indices(arr), dtype=np.int64)
        track = parent if owner is None else np.asarray(owner, dtype=np.int64)[parent]
        ok = np.asarray(pc.and_(pc.is_valid(flat), pc.not_equal(pc.utf8_length(flat), 0)).fill_null(False))
        ok &= track >= 0
        flat, track = flat.filter(pa.array(ok)), track[ok]
        vocab = pc.unique(flat).sort()
        codes = np.asarray(pc.index_in(flat, value_set=vocab), dtype=np.int64)
        keys = np.sort(track * max(1, len(vocab)) + codes)  # by track, then market name
        if len(keys) > 1:
            keys = keys[np.append(True, keys[1:] != keys[:-1])]
        tracks, codes = np.divmod(keys, max(1, len(vocab)))
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(tracks, minlength=n), out=offsets[1:])
        bits = np.zeros((math.ceil(len(vocab) / 64), n), dtype=np.uint64)
        np.bitwise_or.at(bits, (codes // 64, tracks), np.left_shift(np.uint64(1), (codes % 64).astype(np.uint64)))
        small = codes.astype(_index_type(len(vocab)).to_pandas_dtype())
        return Markets(vocab, offsets, small, bits)

    @staticmethod
    def empty(n: int) -> Markets:
        return Markets.from_lists(pa.array([], MARKETS_TYPE), None, n)

    def take(self, rows: np.ndarray) -> pa.Array:
        """list<dictionary<string>>: the markets of each of ``rows``, in order."""
        lengths = (self.offsets[1:] - self.offsets[:-1])[rows]
        out = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=out[1:])
        at = np.repeat(self.offsets[:-1][rows] - out[:-1], lengths) + np.arange(out[-1])
        values = pa.DictionaryArray.from_arrays(pa.array(self.codes[at]), self.vocab)
        if out[-1] >= 2**31:  # more than a list<> chunk can hold: large_list, same values
            return pa.LargeListArray.from_arrays(pa.array(out), values, type=self.list_type(large=True))
        return pa.ListArray.from_arrays(pa.array(out.astype(np.int32)), values, type=self.list_type())

    def list_type(self, large: bool = False) -> pa.DataType:
        element = pa.field("element", self.value_type, nullable=False)
        return pa.large_list(element) if large else pa.list_(element)

    def lists(self) -> pa.Array:
        """list<string> of every track (for small outputs)."""
        return self.take(np.arange(len(self.offsets) - 1)).cast(MARKETS_TYPE)

    def cross(self, rows: np.ndarray, k: int, dst: np.ndarray) -> np.ndarray:
        """Per pair (each of ``rows`` repeated k times, against ``dst``): the neighbour charts in a
        market the track does not."""
        out = np.zeros(len(dst), dtype=bool)
        for word in self.bits:
            out |= (word[dst] & ~np.repeat(word[rows], k)) != 0
        return out


@dataclass(frozen=True)
class Catalogue:
    """The model input: distinct tracks in track-id order, features raw and z-scored."""

    ids: pa.Array  # string, ascending, distinct
    raw: np.ndarray  # (n, 4) float64, original units (the z-scores when only those were given)
    z: np.ndarray  # (n, 4) float64
    markets: Markets
    merged_rows: int = 0  # input rows merged into an earlier row of the same track
    conflicting_tracks: int = 0  # of those, tracks whose rows disagreed on a feature

    def __len__(self) -> int:
        return len(self.ids)


def _float_matrix(tbl: pa.Table, columns: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
    out = np.empty((len(rows), len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        col = tbl[name]
        if col.null_count:
            raise DataError(f"model input: {col.null_count} rows have no {name}")
        out[:, j] = np.asarray(col.to_numpy(), dtype=np.float64)[rows]
    if not np.isfinite(out).all():
        raise DataError(f"model input: non-finite values in {', '.join(columns)}")
    return out


def catalogue(features: pa.Table, markets: pa.Table | None = None, *, merge_duplicates: bool = False) -> Catalogue:
    """Model input from ``features``: track_id and the four features, z-scored here over these
    rows, or with their ``_z`` columns, used as given (model_features: transform z-scored them
    over exactly these rows, with :func:`zscore`'s formula).

    Markets come from a ``markets`` list column of ``features`` or, if given, from the ``markets``
    table (track_id, markets: the clean ``tracks`` table); a track found in neither has none.
    A track on several rows is an error, or with ``merge_duplicates`` its first row is kept and
    its markets are the union of its rows'.
    """
    if "track_id" not in features.column_names:
        raise DataError("model input has no track_id column")
    if features.num_rows == 0:
        raise DataError("model_features is empty: no track of this snapshot has all four audio features")
    ids = features["track_id"].combine_chunks().cast(pa.string())
    if ids.null_count:
        raise DataError(f"model input: {ids.null_count} rows have no track_id")
    order = np.asarray(pc.sort_indices(ids), dtype=np.int64)  # stable: a track's rows keep their order
    ids = ids.take(pa.array(order))
    first = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        first[1:] = np.asarray(pc.not_equal(ids.slice(1), ids.slice(0, len(order) - 1)))
    if not first.all():
        if not merge_duplicates:
            raise DataError(
                f"model_features: track {ids[int(np.argmin(first))].as_py()} appears twice; "
                "expected one row per distinct track"
            )
        ids = ids.filter(pa.array(first))
    keep = order[first]

    has_raw = all(c in features.column_names for c in MODEL_FEATURES)
    if all(c in features.column_names for c in Z_COLUMNS):  # model_features: z-scored by transform
        z = _float_matrix(features, Z_COLUMNS, keep) + 0.0  # -0.0 -> 0.0
        raw = _float_matrix(features, MODEL_FEATURES, keep) if has_raw else z
    elif has_raw:
        raw = _float_matrix(features, MODEL_FEATURES, keep)
        z = zscore(raw)
    else:
        raise DataError(f"model input needs the columns {', '.join(MODEL_FEATURES)} (or {', '.join(Z_COLUMNS)})")

    conflicts = 0
    if not first.all():
        names = MODEL_FEATURES if has_raw else Z_COLUMNS
        values = _float_matrix(features, names, order)
        differs = np.zeros(len(order), dtype=bool)
        differs[1:] = (values[1:] != values[:-1]).any(axis=1)
        conflicts = len(np.unique(np.cumsum(first)[differs & ~first]))
        del values
    n = len(ids)
    if markets is not None:
        owner = np.asarray(pc.index_in(markets["track_id"].cast(pa.string()), value_set=ids).fill_null(-1))
        market_sets = Markets.from_lists(markets["markets"], owner, n)
    elif "markets" in features.column_names:
        owner = np.empty(len(order), dtype=np.int64)
        owner[order] = np.cumsum(first) - 1  # input row -> its track
        market_sets = Markets.from_lists(features["markets"], owner, n)
    else:
        market_sets = Markets.empty(n)
    return Catalogue(ids, raw, z, market_sets, int((~first).sum()), conflicts)


# --- exact nearest neighbours -------------------------------------------------------------------


@dataclass(frozen=True)
class _Groups:
    """Distinct feature vectors; each with its member rows, ascending (i.e. in track-id order)."""

    vectors: np.ndarray  # (m, d)
    start: np.ndarray  # (m,) offset of the group's first member in ``members``
    count: np.ndarray  # (m,)
    members: np.ndarray  # (n,) rows grouped by vector

    @property
    def all_distinct(self) -> bool:
        return len(self.count) == len(self.members)


def _groups(z: np.ndarray) -> _Groups:
    n = len(z)
    order = np.lexsort(z.T[::-1])  # stable: rows of one vector stay in ascending order
    zs = z[order]
    new = np.ones(n, dtype=bool)
    if n > 1:
        new[1:] = (zs[1:] != zs[:-1]).any(axis=1)
    start = np.flatnonzero(new)
    count = np.diff(np.append(start, n))
    vectors = zs if len(start) == n else zs[start]
    return _Groups(np.ascontiguousarray(vectors), start, count, order)


def _exact_distances(columns: np.ndarray, query: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """sqrt(((a0-b0)^2 + (a1-b1)^2) + ...), summed in column order: the model's one definition.
    ``columns``: the vectors' coordinates, one contiguous row per dimension."""
    total: np.ndarray | None = None
    for col in columns:
        d = col[cand]
        d -= col[query][:, None]
        d *= d
        if total is None:
            total = d
        else:
            total += d
    assert total is not None
    np.sqrt(total, out=total)
    return total


@dataclass
class _Pieces:
    rows: list[np.ndarray] = field(default_factory=list)
    idx: list[np.ndarray] = field(default_factory=list)
    dist: list[np.ndarray] = field(default_factory=list)
    size: int = 0

    def add(self, rows: np.ndarray, idx: np.ndarray, dist: np.ndarray) -> None:
        if len(rows):
            self.rows.append(rows)
            self.idx.append(idx)
            self.dist.append(dist)
            self.size += len(rows)

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = (np.concatenate(self.rows), np.concatenate(self.idx), np.concatenate(self.dist))
        self.rows, self.idx, self.dist, self.size = [], [], [], 0
        return out


def _drop_self(lists: np.ndarray, dists: np.ndarray, me: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first k entries other than ``me`` (lists are sorted; ``me`` appears at most once,
    and where it does not, the row has one entry too many and loses its last)."""
    is_me = lists == me[:, None]
    at = np.where(is_me.any(axis=1), is_me.argmax(axis=1), lists.shape[1] - 1)
    cols = np.arange(k)
    cols = cols + (cols >= at[:, None])
    return np.take_along_axis(lists, cols, axis=1), np.take_along_axis(dists, cols, axis=1)


def _expand(
    g: _Groups, cand: np.ndarray, dist: np.ndarray, upto: np.ndarray, need: int, tied: bool
) -> tuple[np.ndarray, np.ndarray]:
    """For each query vector, the first ``need`` tracks by (distance, row) among its candidate
    vectors 0..upto (inclusive), expanded to their member rows. Without ties between candidate
    vectors the expansion is already in that order; with them it is sorted."""
    q = len(upto)
    per_query = upto + 1
    pair_q = np.repeat(np.arange(q), per_query)
    pair_j = np.arange(len(pair_q)) - np.repeat(np.cumsum(per_query) - per_query, per_query)
    pair_g, pair_d = cand[pair_q, pair_j], dist[pair_q, pair_j]
    cnt = g.count[pair_g]
    item_pair = np.repeat(np.arange(len(pair_g)), cnt)
    item_off = np.arange(len(item_pair)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    item_row = g.members[g.start[pair_g][item_pair] + item_off]
    item_q, item_d = pair_q[item_pair], pair_d[item_pair]
    if tied:
        order = np.lexsort((item_row, item_d, item_q))
        item_row, item_d, item_q = item_row[order], item_d[order], item_q[order]
    per_q = np.bincount(item_q, minlength=q)
    pos = np.arange(len(item_q)) - np.repeat(np.cumsum(per_q) - per_q, per_q)
    keep = pos < need
    return item_row[keep].reshape(q, need), item_d[keep].reshape(q, need)


def neighbour_chunks(
    z: np.ndarray, k: int, chunk_rows: int | None = None, workers: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Exact k nearest neighbours of every row of ``z`` among the other rows, in chunks.

    Rows must be in track-id order: ties in distance are broken by row index. Yields
    ``(rows, idx, dist)``: the rows answered (each row exactly once over all chunks, in the k-d
    tree's order), their neighbours ``idx`` (len(rows) x k, rank order) and distances.
    """
    from scipy.spatial import cKDTree

    n = len(z)
    k = min(k, n - 1)
    if k <= 0:
        return
    if chunk_rows is None:
        chunk_rows = min(CHUNK_ROWS, max(MIN_CHUNK_ROWS, -(-n // MIN_CHUNKS)))
    workers = workers or len(os.sched_getaffinity(0))
    g = _groups(np.asarray(z, dtype=np.float64))
    m = len(g.count)
    tree = cKDTree(g.vectors)
    columns = np.ascontiguousarray(g.vectors.T)
    need = k + 1  # tracks per query vector, itself included
    piece_rows = max(1, min(chunk_rows, CHUNK_PAIRS // k))  # tracks per yielded chunk: ~CHUNK_PAIRS pairs
    Piece = tuple[np.ndarray, np.ndarray, np.ndarray]

    def answer(query: np.ndarray, lists: np.ndarray, dists: np.ndarray) -> Iterator[Piece]:
        """Every member of each query vector gets the vector's sorted list, less itself."""
        count = g.count[query]
        if g.all_distinct or (count == 1).all():
            me = g.members[g.start[query]]
            idx, dd = _drop_self(lists, dists, me, k)
            yield me, idx, dd
            return
        which = np.repeat(np.arange(len(query)), count)
        offset = np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count)
        members = g.members[np.repeat(g.start[query], count) + offset]
        for lo in range(0, len(members), piece_rows):
            w, me = which[lo : lo + piece_rows], members[lo : lo + piece_rows]
            idx, dd = _drop_self(lists[w], dists[w], me, k)
            yield me, idx, dd

    def solve(query: np.ndarray, q: int) -> Generator[Piece, None, np.ndarray]:
        """Answer the query vectors whose q candidates settle their lists; return the others."""
        _, cand = tree.query(g.vectors[query], k=q, workers=workers)
        cand = np.asarray(cand, dtype=np.int64).reshape(len(query), q)
        dist = _exact_distances(columns, query, cand)
        unsorted = (dist[:, 1:] < dist[:, :-1]).any(axis=1)
        if unsorted.any():  # the tree's and the exact distances may differ in the last bit
            o = np.argsort(dist[unsorted], axis=1, kind="stable")
            dist[unsorted] = np.take_along_axis(dist[unsorted], o, axis=1)
            cand[unsorted] = np.take_along_axis(cand[unsorted], o, axis=1)
        if g.all_distinct:
            jstar = np.full(len(query), need - 1)
            found = np.ones(len(query), dtype=bool)
        else:
            reached = np.cumsum(g.count[cand], axis=1) >= need
            jstar, found = reached.argmax(axis=1), reached[:, -1]
        dstar = dist[np.arange(len(query)), jstar]
        # Exact when every track within the k-th distance is a candidate: the k-th is strictly
        # nearer than the farthest candidate (any other track is at least that far), or all are.
        valid = found if q == m else found & (dstar < dist[:, -1] * (1 - BOUNDARY_TOL))
        upto = (dist <= dstar[:, None]).sum(axis=1) - 1
        simple = valid & (upto == need - 1)
        if not g.all_distinct:
            simple &= (g.count[cand[:, :need]] == 1).all(axis=1)

        # Simple: the nearest vectors are single tracks, and no tie crosses the k-th distance.
        s = np.flatnonzero(simple)
        if len(s):
            lists = g.members[g.start[cand[s, :need]]]
            dists = dist[s, :need]
            tied = (dists[:, 1:] == dists[:, :-1]).any(axis=1)
            if tied.any():
                o = np.lexsort((lists[tied], dists[tied]), axis=1)
                lists[tied] = np.take_along_axis(lists[tied], o, axis=1)
                dists[tied] = np.take_along_axis(dists[tied], o, axis=1)
            yield from answer(query[s], lists, dists)

        # Otherwise expand the candidate vectors within the k-th distance to their tracks.
        rest = np.flatnonzero(valid & ~simple)
        if len(rest):
            equal = dist[rest, 1:] == dist[rest, :-1]
            tied = (equal & (np.arange(q - 1) < upto[rest, None])).any(axis=1)
            items = np.cumsum(g.count[cand[rest]], axis=1)[np.arange(len(rest)), upto[rest]]
            for part, is_tied in ((rest[~tied], False), (rest[tied], True)):
                part_items = items[~tied] if not is_tied else items[tied]
                lo = 0
                while lo < len(part):
                    hi = lo + max(1, int(np.searchsorted(np.cumsum(part_items[lo:]), EXPAND_ITEMS, "right")))
                    sel = part[lo:hi]
                    lists, dists = _expand(g, cand[sel], dist[sel], upto[sel], need, is_tied)
                    yield from answer(query[sel], lists, dists)
                    lo = hi
        return query[~valid]

    buffer = _Pieces()
    order = tree.indices
    q0 = min(m, need + 1)
    step = max(1, min(chunk_rows, MAX_CANDIDATES // q0))
    for lo in range(0, m, step):
        pending, q = order[lo : lo + step], q0
        while len(pending):
            per_call = max(1, MAX_CANDIDATES // q)
            unanswered: list[np.ndarray] = []
            for i in range(0, len(pending), per_call):
                calls = solve(pending[i : i + per_call], q)
                while True:
                    try:
                        piece = next(calls)
                    except StopIteration as done:
                        unanswered.append(done.value)
                        break
                    buffer.add(*piece)
                    if buffer.size >= piece_rows:
                        yield buffer.take()
            pending, q = np.concatenate(unanswered), min(m, 2 * q)
    if buffer.size:
        yield buffer.take()


def nearest_neighbours(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row of ``z`` among the other rows, as N x k arrays.

    Rows must be sorted by track id: ties in distance are broken by row index, i.e. by id.
    For small inputs and tests; the stage itself streams :func:`neighbour_chunks`.
    """
    n = len(z)
    k = max(0, min(k, n - 1))
    out_idx = np.empty((n, k), dtype=np.int64)
    out_dist = np.empty((n, k), dtype=np.float64)
    for rows, idx, dist in neighbour_chunks(z, k):
        out_idx[rows] = idx
        out_dist[rows] = dist
    return out_idx, out_dist


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


def decoded(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    """A wire-schema chunk with plain strings and string lists (CSV, pandas)."""
    tbl = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    return tbl.cast(recommendations_schema())


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


# --- writers ----------------------------------------------------------------------------------


def parquet_writer(where: str | os.PathLike[str] | BinaryIO | io.RawIOBase, schema: pa.Schema) -> pq.ParquetWriter:
    """Streaming writer for the recommendations table (wire schema, one row group per chunk):
    ids and markets dictionary-encoded per row group straight from the chunk's dictionaries,
    ranks run-length encoded, distances plain, zstd. Plain Parquet types only (no Arrow schema
    stored), so any reader, BigQuery included, sees strings and lists of strings."""
    return pq.ParquetWriter(
        where,
        schema,
        compression="zstd",
        use_dictionary=[
            "snapshot_date",
            "track_id",
            "neighbor_track_id",
            "rank",
            "track_markets.list.element",
            "neighbor_markets.list.element",
        ],
        dictionary_pagesize_limit=64 << 20,  # a chunk's distinct neighbour ids fit: no plain fallback
        write_statistics=False,  # nothing reads them (BigQuery loads every row); ~10% of the write
        write_batch_size=65536,
        store_schema=False,
    )


def _plain_type(typ: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(typ):
        return typ.value_type
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pa.list_(typ.value_field.with_type(_plain_type(typ.value_type)))
    return typ


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with dictionaries decoded (lists of dictionaries too)."""
    return pa.schema([f.with_type(_plain_type(f.type)) for f in schema])


def csv_flatten(tbl: pa.Table) -> pa.Table:
    """Dictionaries decoded, list columns as ';'-joined strings, text cells neutralised
    (:func:`spotify_pipeline.safe_text.csv_safe_table`): a table CSV can hold and a spreadsheet can open."""
    tbl = tbl.cast(plain_schema(tbl.schema))
    for i, f in enumerate(tbl.schema):
        if pa.types.is_list(f.type):
            tbl = tbl.set_column(i, f.name, pc.binary_join(tbl[f.name].cast(pa.list_(pa.string())), ";"))
    return csv_safe_table(tbl)


def _is_csv(path: str) -> bool:
    return path.endswith((".csv", ".csv.gz"))


class TableWriter(AbstractContextManager["TableWriter"]):
    """Recommendations chunks (wire schema) to Parquet, or CSV if the path ends in ``.csv`` or
    ``.csv.gz``, as they come."""

    def __init__(self, path: str | os.PathLike[str], schema: pa.Schema) -> None:
        import pyarrow.csv as pacsv

        self.path = os.fspath(path)
        self.rows = 0
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pacsv.CSVWriter | None = None
        self._stream: pa.NativeFile | None = None
        if _is_csv(self.path):
            flat = csv_flatten(schema.empty_table()).schema
            self._stream = pa.CompressedOutputStream(self.path, "gzip") if self.path.endswith(".gz") else None
            self._csv = pacsv.CSVWriter(self._stream or self.path, flat)
        else:
            self._parquet = parquet_writer(self.path, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        tbl = pa.Table.from_batches([batch])
        if self._parquet is not None:
            self._parquet.write_table(tbl, row_group_size=max(1, tbl.num_rows))
        elif self._csv is not None:
            self._csv.write_table(csv_flatten(tbl))

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()
        if self._stream is not None:
            self._stream.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parquet_bytes(tbl: pa.Table) -> bytes:
    """As tabular.parquet_bytes (deterministic), without importing pandas."""
    buf = io.BytesIO()
    pq.write_table(tbl, buf, compression="zstd", write_statistics=True)
    return buf.getvalue()


def write_table(tbl: pa.Table, path: str | os.PathLike[str]) -> None:
    """A small table (track_clusters, clusters) to Parquet or CSV by extension."""
    import pyarrow.csv as pacsv

    where = os.fspath(path)
    if _is_csv(where):
        with pa.CompressedOutputStream(where, "gzip") if where.endswith(".gz") else pa.OSFile(where, "wb") as out:
            pacsv.write_csv(csv_flatten(tbl), out)
    else:
        pq.write_table(tbl, where, compression="zstd")


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


# --- the stage --------------------------------------------------------------------------------


class _Hashing(io.RawIOBase):
    """A write-only file that forwards to ``raw`` and keeps the SHA-256 and size of what passed."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._raw.write(view)
        self.sha256.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size


PARQUET_TYPE = "application/vnd.apache.parquet"


def _stream_recommendations(
    store: StageStore, name: str, cat: Catalogue, snapshot: date, params: ModelParams
) -> tuple[FileEntry, ModelResult]:
    """Run the model with the recommendations streamed to ``name``.

    A store with ``open_writer(name, content_type)`` (a context giving a binary file) receives the
    Parquet as it is produced; otherwise it is spooled (memory up to 64 MiB, then a temporary
    file) and handed to ``store.write`` as bytes.
    """
    open_writer = getattr(store, "open_writer", None)
    with ExitStack() as stack:
        spool: Any = None
        target: Any
        if open_writer is not None:
            target = stack.enter_context(open_writer(name, PARQUET_TYPE))
        else:
            spool = target = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=64 << 20))
        sink = _Hashing(target)
        writer = parquet_writer(sink, wire_schema(cat.markets))
        result = run_model(
            cat, snapshot, params, lambda b: writer.write_table(pa.Table.from_batches([b]), row_group_size=b.num_rows)
        )
        writer.close()
        rows = result.recommendation_rows
        if spool is not None:
            spool.seek(0)
            return store.write(name, spool.read(), PARQUET_TYPE, rows=rows, table="recommendations"), result
    return FileEntry(name, sink.sha256.hexdigest(), sink.size, rows, "recommendations"), result


def model_skip_reason(modelled_tracks: int, params: ModelParams) -> str | None:
    """Why the model cannot run on a week, whatever the gates say; None when it can."""
    if modelled_tracks < max(params.n_clusters, 2):
        return (
            f"{modelled_tracks} track(s) with all four audio features, fewer than the {params.n_clusters} "
            "clusters (PIPELINE_CLUSTERS) the model needs: add a feature provider (feature_providers) or "
            "a chart file with features"
        )
    return None


def run_recommend(
    clean: Manifest,
    upstream: UpstreamRef,
    store: StageStore,
    params: ModelParams,
    now: Callable[[], datetime],
    *,
    skip_reason: str | None = None,
) -> tuple[Manifest, int]:
    """The model on a transform manifest's week. With ``skip_reason`` (failed feature gates), or when
    too few tracks have features, the model tables of the week are written empty and the manifest
    says why (``summary.model_skipped``): the week's chart data still loads."""
    started = now()
    prefix = layout.prefix("recommend", clean.snapshot_date)
    files: list[FileEntry] = []
    modelled = clean.row_counts.get("model_features")
    # No catalogue to build when no track has features (forced or not: nothing to model).
    cat = None if skip_reason or modelled == 0 else _catalogue(clean, store)
    if skip_reason is None and (too_few := model_skip_reason(len(cat) if cat is not None else 0, params)):
        skip_reason = f"model skipped for snapshot {clean.snapshot_date} (chart data still loaded): {too_few}"
    if cat is None or skip_reason is not None:
        for name in ("recommendations", "track_clusters", "clusters"):
            empty = table(name).arrow_schema().empty_table()
            files.append(
                store.write(f"{prefix}{name}.parquet", _parquet_bytes(empty), PARQUET_TYPE, rows=0, table=name)
            )
        summary = RecommendSummary(modelled_tracks=0, model_skipped=skip_reason)
    else:
        summary = _model(cat, clean.snapshot_date, store, params, prefix, files)
    week = TransformSummary.of(clean)
    summary = msgspec.structs.replace(
        summary, runs=week.runs or {clean.run_id: week.markets}, entries_per_market=week.entries_per_market or {}
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
        summary=summary.as_dict(),
    )
    name = layout.manifest_name("recommend", clean.snapshot_date)
    generation = store.write_manifest(manifest, name)
    store.delete_stale(prefix, {f.name for f in files} | {name})
    return manifest, generation


def _catalogue(clean: Manifest, store: StageStore) -> Catalogue:
    features = pq.read_table(
        io.BytesIO(store.read_verified(clean.file("model_features"))),
        columns=["track_id", *MODEL_FEATURES, *Z_COLUMNS],
    )
    tracks = pq.read_table(io.BytesIO(store.read_verified(clean.file("tracks"))), columns=["track_id", "markets"])
    return catalogue(features, tracks)


def _model(
    cat: Catalogue, snapshot: date, store: StageStore, params: ModelParams, prefix: str, files: list[FileEntry]
) -> RecommendSummary:
    rec_entry, result = _stream_recommendations(store, f"{prefix}recommendations.parquet", cat, snapshot, params)
    files.append(rec_entry)
    for name, tbl in (("track_clusters", result.track_clusters), ("clusters", result.clusters)):
        files.append(
            store.write(f"{prefix}{name}.parquet", _parquet_bytes(tbl), PARQUET_TYPE, rows=tbl.num_rows, table=name)
        )
    return RecommendSummary(
        modelled_tracks=result.tracks,
        n_clusters=result.clusters.num_rows,
        neighbours_per_track=result.neighbours_per_track,
        random_state=params.random_state,
    )
