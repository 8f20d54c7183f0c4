"""The recommend stage streams its recommendations Parquet to the bucket (GCS emulator): a resumable
upload sent in several chunks, no temporary file or spool, the same bytes as the model written to
memory, and a failed model leaves no object behind."""

from __future__ import annotations

import hashlib
import io
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud.storage import fileio
from helpers import gcs

from spotify_pipeline.features import MODEL_FEATURES, Z_COLUMNS, zscore
from spotify_pipeline.manifest import FileEntry, Manifest, UpstreamRef
from spotify_pipeline.recommend import ModelParams, catalogue, run_model, run_recommend, wire_schema
from spotify_pipeline.recommend import stage as recommend_stage
from spotify_pipeline.recommend.writers import parquet_writer, write_row_group
from spotify_pipeline.store import BucketStore, RunScopedStore

SNAPSHOT = date(2026, 11, 23)
CHUNK = 256 << 10  # the smallest chunk a resumable upload allows, so a small output takes several
PARAMS = ModelParams(n_clusters=4, top_k=40, all_pairs_max_tracks=0)
TRACKS = 3000  # 120,000 recommendation rows: over a MiB of Parquet


def _inputs() -> tuple[pa.Table, pa.Table]:
    """model_features (raw and z-scored, as transform writes it) and tracks (markets) of a week."""
    rng = np.random.default_rng(7)
    raw = np.column_stack([rng.random(TRACKS), rng.random(TRACKS), rng.uniform(-20, 0, TRACKS), rng.random(TRACKS)])
    ids = pa.array([f"t{i:05d}" for i in range(TRACKS)])
    z = zscore(raw)
    features = pa.table(
        {"track_id": ids}
        | {f: raw[:, j] for j, f in enumerate(MODEL_FEATURES)}
        | {f: z[:, j] for j, f in enumerate(Z_COLUMNS)}
    )
    markets = [["GLOBAL", "BR", "KR"][: 1 + i % 3] for i in range(TRACKS)]
    return features, pa.table({"track_id": ids, "markets": pa.array(markets, pa.list_(pa.string()))})


@pytest.fixture
def bucket(stack: Any) -> Iterator[BucketStore]:
    """A bucket of its own: no notification reaches the stack's functions from it."""
    client = gcs(stack)
    created = client.create_bucket(f"itest-stream-{uuid.uuid4().hex[:12]}")
    yield BucketStore(client, created.name, upload_chunk_bytes=CHUNK)
    for blob in client.list_blobs(created.name):
        blob.delete()
    created.delete()


def _clean_manifest(store: BucketStore, features: pa.Table, tracks: pa.Table) -> Manifest:
    files = []
    for name, tbl in (("model_features", features), ("tracks", tracks)):
        buf = io.BytesIO()
        pq.write_table(tbl, buf)
        files.append(store.write(f"transform/snapshot_date={SNAPSHOT}/{name}.parquet", buf.getvalue(), "x", table=name))
    return Manifest("transform", SNAPSHOT, "itest", "t0", "t1", tuple(files))


def _no_temporary_files(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("recommend must not spool its output to a temporary file")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)


def _in_memory(features: pa.Table, tracks: pa.Table) -> bytes:
    """The recommendations Parquet the model writes to memory (the stage's writer, same chunks)."""
    cat = catalogue(features, tracks)
    buf = io.BytesIO()
    writer = parquet_writer(buf, wire_schema(cat.markets))
    run_model(cat, SNAPSHOT, PARAMS, partial(write_row_group, writer))
    writer.close()
    return buf.getvalue()


def test_recommendations_stream_to_the_bucket_in_chunks_without_a_spool(
    bucket: BucketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    features, tracks = _inputs()
    clean = _clean_manifest(bucket, features, tracks)
    chunks: list[int] = []
    upload = fileio.BlobWriter._upload_chunks_from_buffer

    def counted(writer: fileio.BlobWriter, num_chunks: int) -> None:
        chunks.append(num_chunks)
        upload(writer, num_chunks)

    monkeypatch.setattr(fileio.BlobWriter, "_upload_chunks_from_buffer", counted)
    _no_temporary_files(monkeypatch)
    store = RunScopedStore(bucket, "recommend", "itest-stream")

    manifest, _ = run_recommend(clean, UpstreamRef("m", 1, "0" * 64), store, PARAMS, lambda: datetime.now(UTC))

    entry = manifest.file("recommendations")
    assert entry.name.startswith(store.folder(SNAPSHOT).path)  # into the execution's run folder
    data = bucket.read_verified(entry)  # the hash taken while streaming is the object's
    assert (entry.bytes, entry.rows) == (len(data), TRACKS * PARAMS.top_k)
    assert len(data) > 3 * CHUNK and sum(chunks) == -(-len(data) // CHUNK) >= 4  # chunk by chunk, the last on close
    blob = bucket._bucket.get_blob(entry.name)
    assert blob.content_type == "application/vnd.apache.parquet"
    monkeypatch.undo()
    assert data == _in_memory(features, tracks)
    assert hashlib.sha256(data).hexdigest() == entry.sha256


def test_a_failed_model_cancels_its_upload(bucket: BucketStore, monkeypatch: pytest.MonkeyPatch) -> None:
    features, tracks = _inputs()
    clean = _clean_manifest(bucket, features, tracks)

    def fail_midway(cat: Any, snapshot: date, params: ModelParams, sink: Any, *args: Any) -> None:
        written: list[int] = []

        def fail(batch: pa.RecordBatch) -> None:
            sink(batch)  # the upload has begun: a chunk or more was sent
            written.append(batch.num_rows)
            if len(written) == 2:
                raise OSError("instance out of memory")

        run_model(cat, snapshot, params, fail)

    monkeypatch.setattr(recommend_stage, "run_model", fail_midway)
    store = RunScopedStore(bucket, "recommend", "itest-fail")
    with pytest.raises(OSError, match="out of memory"):
        run_recommend(clean, UpstreamRef("m", 1, "0" * 64), store, PARAMS, lambda: datetime.now(UTC))
    assert bucket.names("recommend/") == []  # nothing partial, not even a truncated file


def test_open_writer_entry_matches_what_was_written(bucket: BucketStore) -> None:
    name = f"itest/{uuid.uuid4().hex}/big.bin"
    payload = np.random.default_rng(1).bytes(3 * CHUNK + 1234)
    with bucket.open_writer(name, "application/octet-stream") as out:
        for i in range(0, len(payload), 100_000):
            out.write(payload[i : i + 100_000])
    assert out.entry(rows=None, table=None) == FileEntry(name, hashlib.sha256(payload).hexdigest(), len(payload))
    assert bucket.read(name) == payload
