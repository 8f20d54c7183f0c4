"""Files the ``recommend`` command writes (cli_recommend): the recommendations chunks and the
small tables to Parquet, or to CSV (optionally gzipped) by the path's extension. Only the
command exports CSV; the function writes Parquet through :mod:`spotify_pipeline.recommend.writers`."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spotify_pipeline.recommend.writers import parquet_writer
from spotify_pipeline.safe_text import csv_safe_table


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
    (:func:`~spotify_pipeline.safe_text.csv_safe_table`): a table CSV can hold and a spreadsheet can open."""
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


def write_table(tbl: pa.Table, path: str | os.PathLike[str]) -> None:
    """A small table (track_clusters, clusters) to Parquet or CSV by extension."""
    import pyarrow.csv as pacsv

    where = os.fspath(path)
    if _is_csv(where):
        with pa.CompressedOutputStream(where, "gzip") if where.endswith(".gz") else pa.OSFile(where, "wb") as out:
            pacsv.write_csv(csv_flatten(tbl), out)
    else:
        pq.write_table(tbl, where, compression="zstd")
