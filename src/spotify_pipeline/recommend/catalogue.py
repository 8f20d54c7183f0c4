"""The model input: one row per distinct track with all four features (``MODEL_FEATURES``), in
track-id order, z-scored with the population std over that set (a constant feature scores 0),
and the markets each track charts in (for the pairs' markets and ``cross_market``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spotify_pipeline.errors import DataError
from spotify_pipeline.features import MODEL_FEATURES, Z_COLUMNS, zscore

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
