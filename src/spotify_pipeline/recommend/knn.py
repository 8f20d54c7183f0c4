"""Exact k nearest neighbours on the z-scored features, streamed in chunks.

Distance: euclidean on the z-scores, ``sqrt(((a0-b0)**2 + (a1-b1)**2) + ...)`` in float64, in that
order, so equal vectors are at exactly 0 and the distance is symmetric. Each row's neighbours are
all other rows ranked by (distance, row index); rows are in track-id order, so ties go by id.

How: a k-d tree over the distinct feature vectors (duplicates collapsed, so thousands of identical
vectors cost one query), queried in the tree's own order, a chunk of vectors at a time. Each
chunk's candidates get exact distances; a track whose k-th neighbour is not strictly nearer than
the farthest candidate (a tie at the boundary) is queried again with twice the candidates, so
ties are always settled by id among *all* tied tracks. Never an N x N matrix: memory is O(N) for
the input plus O(chunk x k) for the rows being yielded.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import numpy as np

CHUNK_ROWS = 16384  # feature vectors queried per k-d tree call (at most)
MIN_CHUNKS = 8  # smaller inputs still come in several chunks, so computing and writing overlap
MIN_CHUNK_ROWS = 1024
CHUNK_PAIRS = 1 << 20  # recommendation rows per chunk written (at most about)
MAX_CANDIDATES = 1 << 20  # chunk x candidates per call, bounds the per-chunk arrays (~30 MB)
EXPAND_ITEMS = 1 << 22  # tracks expanded at once when duplicate vectors or ties need sorting
BOUNDARY_TOL = 1e-12  # relative margin between tree and exact distances at the boundary


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
