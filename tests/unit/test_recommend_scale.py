"""Recommend at scale: exact neighbours on tie-heavy and duplicate-heavy data, chunked streaming,
compact encodings, the ``recommend`` command, and the stage's streamed Parquet output."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from spotify_pipeline import recommend, transform
from spotify_pipeline.errors import DataError
from spotify_pipeline.features import MODEL_FEATURES, Z_COLUMNS, zscore
from spotify_pipeline.manifest import FileEntry, Manifest, UpstreamRef
from spotify_pipeline.recommend import (
    Catalogue,
    ModelParams,
    catalogue,
    knn,
    model,
    nearest_neighbours,
    neighbour_chunks,
    recommendations_schema,
    run_model,
    run_recommend,
    writers,
)
from spotify_pipeline.schema import table
from spotify_pipeline.store import ObjectWriter
from spotify_pipeline_tools.cli import recommend as cli_recommend

SNAPSHOT = date(2026, 11, 23)
FEATURES = MODEL_FEATURES


# --- reference ---------------------------------------------------------------------------------


def brute_force(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair's distance (the model's definition, column by column), each row sorted by
    (distance, index), self excluded, first k."""
    n = len(z)
    d = np.zeros((n, n))
    for j in range(z.shape[1]):
        t = z[None, :, j] - z[:, None, j]
        d += t * t
    d = np.sqrt(d)
    np.fill_diagonal(d, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), d), axis=1)[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


def datasets(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(40, 4))
    return {
        "random": rng.normal(size=(400, 4)),
        "api-rounded": np.round(rng.normal(size=(400, 4)), 1),  # many equal distances
        "lattice": rng.integers(0, 3, size=(400, 4)).astype(float),  # 81 points, duplicates + ties
        "binary": rng.integers(0, 2, size=(300, 4)).astype(float),  # 16 points
        "duplicates": base[rng.integers(0, 40, size=300)],  # every vector ~8 times
        "identical": np.ones((60, 4)),
        "two-points": np.repeat(rng.normal(size=(2, 4)), [37, 23], axis=0),
        "symmetric": np.concatenate([np.zeros((1, 4)), np.eye(4), -np.eye(4), 2 * np.eye(4), -2 * np.eye(4)]),
    }


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks, candidate budgets and expansion batches tiny, so every code path runs on small data."""
    monkeypatch.setattr(knn, "CHUNK_ROWS", 7)
    monkeypatch.setattr(knn, "MAX_CANDIDATES", 64)
    monkeypatch.setattr(knn, "EXPAND_ITEMS", 50)


# --- exactness ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(datasets(0)))
@pytest.mark.parametrize("k", [1, 5, 50, 10_000])
@pytest.mark.parametrize("chunked", [False, True])
def test_neighbours_equal_brute_force(name: str, k: int, chunked: bool, request: pytest.FixtureRequest) -> None:
    if chunked:
        request.getfixturevalue("small_chunks")
    z = datasets(0)[name]
    kk = min(k, len(z) - 1)
    idx, dist = nearest_neighbours(z, k)
    want_idx, want_dist = brute_force(z, kk)
    np.testing.assert_array_equal(idx, want_idx)  # same neighbours, same ranks: ties by index
    np.testing.assert_array_equal(dist, want_dist)  # bit for bit: one definition of distance


def test_synthetic_catalogue_with_duplicates_equals_brute_force() -> None:
    rng = np.random.default_rng(5)
    raw = np.round(
        np.column_stack(
            [rng.beta(6.9, 3.4, 1500), rng.beta(4.5, 2.5, 1500), -1 - rng.gamma(3, 1.8, 1500), rng.beta(1.9, 1.8, 1500)]
        ),
        2,
    )
    raw[rng.integers(0, 1500, 200)] = raw[rng.integers(0, 1500, 200)]  # re-releases: identical vectors
    z = zscore(raw)
    idx, dist = nearest_neighbours(z, 50)
    want_idx, want_dist = brute_force(z, 50)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(dist, want_dist)
    assert (dist[:, 0] == 0).sum() >= 2 and (dist[:, 1:] == dist[:, :-1]).any(), "duplicates and ties expected"


def test_chunks_cover_every_row_once_in_bounded_pieces(small_chunks: None) -> None:
    z = datasets(1)["duplicates"]
    seen = []
    for rows, idx, dist in neighbour_chunks(z, 9):
        assert idx.shape == dist.shape == (len(rows), 9)
        assert len(rows) <= 7 + 7  # about CHUNK_ROWS per piece: memory never holds N x k
        seen.append(rows)
    assert sorted(np.concatenate(seen).tolist()) == list(range(len(z)))


def test_workers_do_not_change_the_answer() -> None:
    z = datasets(2)["api-rounded"]
    one = [np.concatenate(x) for x in zip(*neighbour_chunks(z, 20, workers=1), strict=True)]
    two = [np.concatenate(x) for x in zip(*neighbour_chunks(z, 20, workers=2), strict=True)]
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [0, 1])
def test_no_neighbours_without_two_tracks(n: int) -> None:
    assert list(neighbour_chunks(np.zeros((n, 4)), 5)) == []
    idx, dist = nearest_neighbours(np.zeros((n, 4)), 5)
    assert idx.shape == dist.shape == (n, 0)


@pytest.mark.parametrize(("n", "limit", "top_k", "expected"), [(10, 10, 3, 9), (11, 10, 3, 3), (5, 0, 50, 4)])
def test_all_pairs_up_to_the_limit_then_top_k(n: int, limit: int, top_k: int, expected: int) -> None:
    params = ModelParams(top_k=top_k, all_pairs_max_tracks=limit)
    assert params.neighbours_per_track(n) == expected


# --- model input ---------------------------------------------------------------------------------


def features_table(n: int, seed: int, markets: bool = True) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = [f"t{i:05d}" for i in rng.permutation(n)]
    cols: dict[str, Any] = {"track_id": ids}
    for j, f in enumerate(FEATURES):
        cols[f] = np.round(rng.normal(size=n), 2) + j
    if markets:
        pool = ["BR", "GLOBAL", "KR", "US"]
        cols["markets"] = [
            sorted({pool[int(x)] for x in rng.integers(0, 4, size=int(rng.integers(0, 3)))}) for _ in ids
        ]
    return pa.table(cols)


def test_z_scores_are_transforms() -> None:
    tbl = features_table(50, 1)
    df = tbl.to_pandas().assign(snapshot_date=SNAPSHOT, has_features=True, feature_source="spotify")
    mf = transform.model_features(df).set_index("track_id")
    cat = catalogue(tbl)
    want = mf.loc[cat.ids.to_pylist(), [f"{f}_z" for f in FEATURES]].to_numpy()
    np.testing.assert_array_equal(cat.z, want)  # bit for bit


def test_catalogue_is_in_id_order_with_sorted_markets() -> None:
    tbl = features_table(30, 2)
    cat = catalogue(tbl)
    assert cat.ids.to_pylist() == sorted(tbl["track_id"].to_pylist())
    by_id = dict(zip(tbl["track_id"].to_pylist(), tbl["markets"].to_pylist(), strict=True))
    assert cat.markets.lists().to_pylist() == [sorted(by_id[t]) for t in cat.ids.to_pylist()]


def test_duplicates_are_an_error_or_merged() -> None:
    tbl = pa.table(
        {
            "track_id": ["b", "a", "b", "c", "b"],
            **{f: [1.0, 2.0, 1.0, 3.0, 9.0 if f == "energy" else 1.0] for f in FEATURES},
            "markets": [["KR"], ["BR"], ["US", "BR"], [], None],
        }
    )
    with pytest.raises(DataError, match="appears twice"):
        catalogue(tbl)
    cat = catalogue(tbl, merge_duplicates=True)
    assert cat.ids.to_pylist() == ["a", "b", "c"]
    assert cat.merged_rows == 2 and cat.conflicting_tracks == 1  # b's third row has another energy
    assert cat.raw[1].tolist() == [1.0, 1.0, 1.0, 1.0]  # b's first row
    assert cat.markets.lists().to_pylist() == [["BR"], ["BR", "KR", "US"], []]


def test_markets_from_the_tracks_table() -> None:
    feats = pa.table({"track_id": ["x", "y", "z"], **{f: [0.0, 1.0, 2.0] for f in FEATURES}})
    tracks = pa.table({"track_id": ["q", "z", "x"], "markets": [["US"], ["KR", "BR"], ["GLOBAL"]]})
    cat = catalogue(feats, tracks)
    assert cat.markets.lists().to_pylist() == [["GLOBAL"], [], ["BR", "KR"]]


def test_many_markets_use_several_bit_words() -> None:
    names = [f"M{i:03d}" for i in range(150)]
    feats = pa.table({"track_id": ["a", "b"], **{f: [0.0, 1.0] for f in FEATURES}, "markets": [names[:140], names]})
    cat = catalogue(feats)
    assert cat.markets.bits.shape == (3, 2)
    assert cat.markets.cross(np.array([0, 1]), 1, np.array([1, 0])).tolist() == [True, False]
    assert cat.markets.take(np.array([1])).type.value_type.index_type == pa.int16()


@pytest.mark.parametrize(
    ("tbl", "message"),
    [
        (
            pa.table({"track_id": pa.array([], pa.string()), **{f: pa.array([], pa.float64()) for f in FEATURES}}),
            "empty",
        ),
        (pa.table({"track_id": ["a"], "energy": [1.0]}), "needs the columns"),
        (pa.table({"track_id": ["a", "b"], **{f: [1.0, float("inf")] for f in FEATURES}}), "non-finite"),
    ],
)
def test_unusable_input_is_a_data_error(tbl: pa.Table, message: str) -> None:
    with pytest.raises(DataError, match=message):
        catalogue(tbl)


# --- the recommendations table -----------------------------------------------------------------


def model_rows(cat: Catalogue, params: ModelParams) -> pa.Table:
    batches: list[pa.RecordBatch] = []
    run_model(cat, SNAPSHOT, params, batches.append)
    return pa.Table.from_batches(batches, schema=recommend.wire_schema(cat.markets)).cast(recommendations_schema())


def test_rows_carry_ids_ranks_markets_and_cross_market(small_chunks: None) -> None:
    tbl = features_table(60, 3)
    cat = catalogue(tbl)
    rec = model_rows(cat, ModelParams(top_k=6, all_pairs_max_tracks=10))
    assert rec.num_rows == 60 * 6
    markets = {t: set(m) for t, m in zip(tbl["track_id"].to_pylist(), tbl["markets"].to_pylist(), strict=True)}
    ids = np.array(cat.ids.to_pylist())
    want_idx, want_dist = brute_force(cat.z, 6)
    got: dict[str, list[tuple[int, str, float]]] = {}
    for row in rec.to_pylist():
        assert row["snapshot_date"] == SNAPSHOT
        assert row["track_markets"] == sorted(markets[row["track_id"]])
        assert row["neighbor_markets"] == sorted(markets[row["neighbor_track_id"]])
        assert row["cross_market"] == bool(markets[row["neighbor_track_id"]] - markets[row["track_id"]])
        got.setdefault(row["track_id"], []).append((row["rank"], row["neighbor_track_id"], row["distance"]))
    for i, tid in enumerate(ids):
        ranked = sorted(got[tid])
        assert [r for r, _, _ in ranked] == list(range(1, 7))
        assert [n for _, n, _ in ranked] == ids[want_idx[i]].tolist()
        assert [d for _, _, d in ranked] == want_dist[i].tolist()
    assert pc.any(rec["cross_market"]).as_py() and not pc.all(rec["cross_market"]).as_py()


def test_schema_follows_tables_json_with_compact_rank() -> None:
    spec = table("recommendations")
    schema = recommendations_schema()
    assert schema.names == spec.column_names
    for field, col in zip(schema, spec.columns, strict=True):
        assert field.nullable == (not col.required)
        if col.name == "rank":
            assert field.type == pa.int32()  # Parquet INT32: BigQuery loads it into INT64
        else:
            assert field.type == spec.arrow_schema().field(col.name).type
    # Slim: names and artists come from tracks (views join them); no denormalised copies.
    assert not {"track_name", "neighbor_track_name", "track_artists", "neighbor_artists"} & set(schema.names)


def test_clusters_are_deterministic_and_partition_the_tracks() -> None:
    tbl = features_table(300, 4)
    cat = catalogue(tbl)
    params = ModelParams(n_clusters=4, random_state=7)
    a, ca = recommend.cluster_tables(cat, SNAPSHOT, params)
    b, cb = recommend.cluster_tables(catalogue(tbl.take(pa.array(np.arange(300)[::-1]))), SNAPSHOT, params)
    assert a.equals(b) and ca.equals(cb)
    assert sum(ca["size"].to_pylist()) == 300 and ca["cluster"].to_pylist() == [0, 1, 2, 3]
    assert a.schema.equals(table("track_clusters").arrow_schema()) and ca.schema.equals(
        table("clusters").arrow_schema()
    )


# --- the command ---------------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    """``spotify-pipeline recommend ARGV`` in-process, under the command line's error policy."""
    return cli_recommend.main(list(argv))


def reference(tbl: pa.Table, k: int) -> dict[str, list[str]]:
    """Brute force from the file itself: one row per track, z-scores over those rows."""
    ids = sorted(set(tbl["track_id"].to_pylist()))
    first = {}
    for row in tbl.to_pylist():
        first.setdefault(row["track_id"], row)
    raw = np.array([[first[t][f] for f in FEATURES] for t in ids])
    idx, _ = brute_force(zscore(raw), min(k, len(ids) - 1))
    return {t: [ids[j] for j in idx[i]] for i, t in enumerate(ids)}


def ranked(rec: pa.Table) -> dict[str, list[str]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for t, n, r in zip(
        rec["track_id"].to_pylist(), rec["neighbor_track_id"].to_pylist(), rec["rank"].to_pylist(), strict=True
    ):
        out.setdefault(t, []).append((r, n))
    return {t: [n for _, n in sorted(v)] for t, v in out.items()}


def test_cli_parquet_in_parquet_out_equals_brute_force(tmp_path: Path) -> None:
    tbl = features_table(500, 5).append_column("snapshot_date", pa.array([SNAPSHOT] * 500))
    pq.write_table(tbl, tmp_path / "in.parquet")
    stats = tmp_path / "stats.json"
    code = run_cli(
        "--features",
        str(tmp_path / "in.parquet"),
        "--out",
        str(tmp_path / "rec.parquet"),
        "--top-k",
        "12",
        "--all-pairs-max",
        "100",
        "--clusters",
        "3",
        "--stats",
        str(stats),
        "--track-clusters-out",
        str(tmp_path / "tc.parquet"),
        "--clusters-out",
        str(tmp_path / "c.csv"),
        "--quiet",
    )
    assert code == 0
    rec = pq.read_table(tmp_path / "rec.parquet")
    assert rec.schema.equals(recommendations_schema())  # plain types, as the table declares
    assert ranked(rec) == reference(tbl, 12)
    assert set(rec["snapshot_date"].to_pylist()) == {SNAPSHOT}
    assert json.loads(stats.read_text())["rows"] == 500 * 12
    assert pq.read_table(tmp_path / "tc.parquet").num_rows == 500
    assert pacsv.read_csv(tmp_path / "c.csv").num_rows == 3


def test_cli_csv_with_repeats_gaps_and_joined_markets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["\ufeffspotify_id,danceability,energy,loudness,valence,markets"]
    rng = np.random.default_rng(6)
    for i in range(80):
        v = np.round(rng.normal(size=4), 2)
        lines.append(f"id{i:03d},{v[0]},{v[1]},{v[2]},{v[3]},BR;KR")
        if i % 10 == 0:  # the same track again, another market: merged
            lines.append(f"id{i:03d},{v[0]},{v[1]},{v[2]},{v[3]},US")
    lines.append("nofeat,0.5,,-5.0,0.3,BR")  # a missing feature: skipped
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "rec.parquet"
    assert run_cli("--features", str(tmp_path / "in.csv"), "--out", str(out), "--top-k", "5", "--csv-export") == 0
    err = capsys.readouterr().err
    assert "skipped 1 rows" in err and "merged 8 repeated rows" in err
    rec = pq.read_table(out)
    assert rec.num_rows == 80 * 79  # 80 tracks: below --all-pairs-max, every pair
    src = pacsv.read_csv(tmp_path / "in.csv").filter(pc.invert(pc.is_null(pc.field("energy"))))
    src = src.rename_columns(["track_id", *src.column_names[1:]])
    assert ranked(rec) == reference(src, 79)
    markets = dict(zip(rec["track_id"].to_pylist(), rec["track_markets"].to_pylist(), strict=True))
    assert markets["id010"] == ["BR", "KR", "US"] and markets["id011"] == ["BR", "KR"]
    csv = pacsv.read_csv(tmp_path / "rec.csv")
    assert csv.num_rows == rec.num_rows and csv.column_names == rec.column_names
    assert set(csv["track_markets"].to_pylist()) == {"BR;KR", "BR;KR;US"}


def test_cli_output_is_deterministic(tmp_path: Path) -> None:
    pq.write_table(features_table(300, 7), tmp_path / "in.parquet")
    for name in ("a", "b"):
        argv = ["--features", str(tmp_path / "in.parquet"), "--out", str(tmp_path / f"{name}.parquet")]
        assert run_cli(*argv, "--top-k", "7", "--all-pairs-max", "10", "--quiet") == 0
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("track_id,danceability,energy\na,1,2\n", "missing feature columns loudness, valence"),
        ("name,danceability,energy,loudness,valence\na,1,2,3,4\n", "no track id column"),
        ("track_id,danceability,energy,loudness,valence\na,,2,3,4\n", "no row with a track id and all four"),
    ],
)
def test_cli_rejects_unusable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    (tmp_path / "in.csv").write_text(content)
    assert run_cli("--features", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.parquet")) == 2
    assert message in capsys.readouterr().err


def test_cli_snapshot_date_selects_rows(tmp_path: Path) -> None:
    tbl = features_table(40, 8)
    days = [date(2026, 11, 16) if i % 2 else SNAPSHOT for i in range(40)]
    pq.write_table(tbl.append_column("snapshot_date", pa.array(days)), tmp_path / "in.parquet")
    out = tmp_path / "o.csv"
    argv = ["--features", str(tmp_path / "in.parquet"), "--out", str(out), "--snapshot-date", "2026-11-16"]
    assert run_cli(*argv, "--quiet") == 0
    rec = pacsv.read_csv(out)
    assert rec.num_rows == 20 * 19 and set(rec["snapshot_date"].to_pylist()) == {date(2026, 11, 16)}


# --- the stage: streamed Parquet, same code as the command -----------------------------------------


class MemoryStore:
    """BucketStore's surface, in memory; ``open_writer`` streams into a buffer, stored on close."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = dict(objects)
        self.streamed: list[str] = []

    def read_verified(self, entry: FileEntry) -> bytes:
        data = self.objects[entry.name]
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        return data

    def write(
        self, name: str, data: bytes, content_type: str, *, rows: int | None = None, table: str | None = None
    ) -> FileEntry:
        self.objects[name] = data
        return FileEntry(name, hashlib.sha256(data).hexdigest(), len(data), rows, table)

    @contextmanager
    def open_writer(self, name: str, content_type: str) -> Iterator[ObjectWriter]:
        buf = io.BytesIO()
        yield ObjectWriter(name, buf)
        self.objects[name] = buf.getvalue()
        self.streamed.append(name)

    def write_manifest(self, manifest: Manifest, name: str) -> int:
        self.objects[name] = manifest.to_bytes()
        return 1

    def delete_stale(self, prefix: str, keep: set[str]) -> list[str]:
        stale = [n for n in self.objects if n.startswith(prefix) and n not in keep]
        for n in stale:
            del self.objects[n]
        return stale


def clean_manifest(tmp_path: Path) -> tuple[Manifest, dict[str, bytes], pa.Table]:
    tbl = features_table(120, 9)
    df = tbl.to_pandas().assign(snapshot_date=SNAPSHOT, has_features=True, feature_source="spotify")
    mf = transform.model_features(df)
    tracks = tbl.select(["track_id", "markets"])
    objects = {"transform/mf.parquet": _bytes(pa.Table.from_pandas(mf)), "transform/tracks.parquet": _bytes(tracks)}
    files = tuple(
        FileEntry(name, hashlib.sha256(data).hexdigest(), len(data), None, t)
        for (name, data), t in zip(objects.items(), ("model_features", "tracks"), strict=True)
    )
    manifest = Manifest("transform", SNAPSHOT, "run-1", "t0", "t1", files)
    return manifest, objects, tbl


def _bytes(tbl: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(tbl, buf)
    return buf.getvalue()


def in_memory_recommendations(objects: dict[str, bytes], params: ModelParams) -> bytes:
    """The recommendations Parquet the stage should stream, written to memory by the same model."""
    features, tracks = (pq.read_table(io.BytesIO(objects[f"transform/{n}.parquet"])) for n in ("mf", "tracks"))
    cat = catalogue(features.select(["track_id", *FEATURES, *Z_COLUMNS]), tracks)
    buf = io.BytesIO()
    writer = writers.parquet_writer(buf, recommend.wire_schema(cat.markets))
    run_model(cat, SNAPSHOT, params, partial(writers.write_row_group, writer))
    writer.close()
    return buf.getvalue()


def test_stage_streams_the_in_memory_bytes_and_matches_the_command(tmp_path: Path) -> None:
    manifest, objects, tbl = clean_manifest(tmp_path)
    params = ModelParams(top_k=9, all_pairs_max_tracks=50, n_clusters=3)
    store = MemoryStore(objects)
    out, _ = run_recommend(manifest, UpstreamRef("m", 1, "0" * 64), store, params, lambda: datetime.now(UTC))
    assert out.summary["neighbours_per_track"] == 9 and out.summary["modelled_tracks"] == 120
    entry = out.file("recommendations")
    assert store.streamed == [entry.name]  # through open_writer, never as one bytes object
    data = store.read_verified(entry)  # checksum of the streamed bytes is right
    assert entry.rows == pq.read_table(io.BytesIO(data)).num_rows == 120 * 9
    outs = [data, in_memory_recommendations(objects, params)]
    assert outs[0] == outs[1]
    rec = pq.read_table(io.BytesIO(outs[0]))
    assert rec.schema.equals(recommendations_schema())
    # The command on the same features gives the same neighbours.
    pq.write_table(tbl, tmp_path / "in.parquet")
    argv = ["--features", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "cli.parquet")]
    assert run_cli(*argv, "--top-k", "9", "--all-pairs-max", "50", "--clusters", "3", "--quiet") == 0
    cli = pq.read_table(tmp_path / "cli.parquet")
    assert ranked(cli) == ranked(rec)
    assert sorted(cli.drop_columns(["snapshot_date"]).to_pylist(), key=str) == sorted(
        rec.drop_columns(["snapshot_date"]).to_pylist(), key=str
    )


# --- the background producer -------------------------------------------------------------------


def test_producer_errors_reach_the_caller() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    got = []
    with pytest.raises(ValueError, match="boom"):
        for x in model._prefetch(items()):
            got.append(x)
    assert got == [1]


def test_a_failing_sink_stops_the_producer() -> None:
    import threading

    cat = catalogue(features_table(400, 10))

    def sink(batch: pa.RecordBatch) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_model(cat, SNAPSHOT, ModelParams(top_k=5, all_pairs_max_tracks=0), sink)
    assert not [t for t in threading.enumerate() if t.name == "recommend-neighbours"]


def test_stage_skips_the_model_with_its_reason_and_writes_empty_model_tables(tmp_path: Path) -> None:
    """Fewer modelled tracks than clusters (or failed feature gates): the week's model tables are
    written empty, with the schema the loader expects, and the manifest says why."""
    manifest, objects, _ = clean_manifest(tmp_path)
    now = lambda: datetime.now(UTC)  # noqa: E731
    too_many = ModelParams(top_k=9, all_pairs_max_tracks=50, n_clusters=500)
    out, _ = run_recommend(manifest, UpstreamRef("m", 1, "0" * 64), MemoryStore(objects), too_many, now)
    reason = out.summary["model_skipped"]
    assert reason.startswith(f"model skipped for snapshot {SNAPSHOT} (chart data still loaded): 120 track(s)")
    assert "500 clusters (PIPELINE_CLUSTERS)" in reason
    assert out.row_counts == {"recommendations": 0, "track_clusters": 0, "clusters": 0}
    store = MemoryStore(objects)
    params = ModelParams(top_k=9, all_pairs_max_tracks=50, n_clusters=3)
    gated, _ = run_recommend(manifest, UpstreamRef("m", 1, "0" * 64), store, params, now, skip_reason="gates said no")
    assert gated.summary["model_skipped"] == "gates said no" and gated.row_counts["recommendations"] == 0
    for name in ("recommendations", "track_clusters", "clusters"):
        empty = pq.read_table(io.BytesIO(store.read_verified(gated.file(name))))
        assert empty.num_rows == 0 and empty.schema.names == table(name).column_names
