"""Parquet in and out, typed by the schema source. Deterministic: same rows, same bytes."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spotify_pipeline.errors import DataError
from spotify_pipeline.schema import TableSpec


def to_arrow(df: pd.DataFrame, spec: TableSpec) -> pa.Table:
    missing = [c for c in spec.column_names if c not in df.columns]
    extra = [c for c in df.columns if c not in spec.column_names]
    if missing or extra:
        raise DataError(f"table {spec.name}: columns missing {missing}, unexpected {extra}")
    try:
        table = pa.Table.from_pandas(df[spec.column_names], schema=spec.arrow_schema(), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise DataError(f"table {spec.name}: {exc}") from None
    # pandas metadata would tie the bytes to the pandas version; the schema says it all.
    return table.replace_schema_metadata(None)


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", write_statistics=True)
    return buf.getvalue()


def read_parquet(data: bytes) -> pd.DataFrame:
    frame: pd.DataFrame = pq.read_table(io.BytesIO(data)).to_pandas()
    return frame


def lists(values: Any) -> list[Any]:
    """A parquet list cell back as a Python list (pyarrow gives numpy arrays)."""
    return [] if values is None else list(values)
