"""How recommend's outputs reach the bucket: the recommendations Parquet streamed, one row group
per chunk, through the store's :meth:`~spotify_pipeline.store.BucketStore.open_writer` (a
resumable upload, hashed on the way: no temporary file, no second read); the small tables
(track_clusters, clusters) as bytes."""

from __future__ import annotations

import io
import os
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from spotify_pipeline.store import ObjectWriter, StageStore

PARQUET_TYPE = "application/vnd.apache.parquet"


class StreamingStore(StageStore, Protocol):
    """What recommend needs of a store: :class:`StageStore` and a streamed upload
    (BucketStore or RunScopedStore; in-memory fakes in tests and the benchmark)."""

    def open_writer(self, name: str, content_type: str) -> AbstractContextManager[ObjectWriter]: ...


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


def write_row_group(writer: pq.ParquetWriter, batch: pa.RecordBatch) -> None:
    """One chunk of rows as one row group."""
    writer.write_table(pa.Table.from_batches([batch]), row_group_size=batch.num_rows)


def parquet_bytes(tbl: pa.Table) -> bytes:
    """A small table as Parquet, as tabular.parquet_bytes (deterministic), without importing pandas."""
    buf = io.BytesIO()
    pq.write_table(tbl, buf, compression="zstd", write_statistics=True)
    return buf.getvalue()
