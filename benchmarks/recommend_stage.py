"""The recommend function's stage core (``run_recommend``) on a synthetic snapshot, for sizing.

Runs what the function runs after its event is parsed: read model_features and tracks (as
bytes, as the bucket returns them), model, write recommendations, track_clusters and clusters,
write the manifest. The store keeps its inputs in memory like the function does; outputs go to a
temporary folder, the recommendations streamed through ``open_writer`` as BucketStore streams
them (a resumable upload holding one 8 MiB chunk; this folder holds none). On Cloud Functions
/tmp is memory too, so what this prints is what the instance needs, less the Functions Framework,
the clients and the upload chunk (~110 MiB, see benchmarks/cold_start.py).

    .venv/bin/python benchmarks/recommend_stage.py --n 1000000 --top-k 100 --one-cpu
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from spotify_pipeline.manifest import FileEntry, Manifest, UpstreamRef  # noqa: E402
from spotify_pipeline.store import ObjectWriter  # noqa: E402

SNAPSHOT = date(2026, 11, 23)


class LocalStore:
    """The bucket as a folder; reads come back as bytes, like BucketStore.read_verified."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read_verified(self, entry: FileEntry) -> bytes:
        return (self.root / entry.name).read_bytes()

    def write(
        self, name: str, data: bytes, content_type: str, *, rows: int | None = None, table: str | None = None
    ) -> FileEntry:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return FileEntry(name, hashlib.sha256(data).hexdigest(), len(data), rows, table)

    @contextmanager
    def open_writer(self, name: str, content_type: str) -> Iterator[ObjectWriter]:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            yield ObjectWriter(name, fh)

    def write_manifest(self, manifest: Manifest, name: str) -> int:
        (self.root / name).write_bytes(manifest.to_bytes())
        return 1

    def delete_stale(self, prefix: str, keep: set[str]) -> list[str]:
        return []


def prepare(n: int, data: Path) -> None:
    """model_features and tracks Parquet of a synthetic n-track snapshot, as transform writes them."""
    import synthetic

    from spotify_pipeline.features import zscore

    tbl = synthetic.table(n, seed=n)
    z = zscore(np.column_stack([tbl[f].to_numpy() for f in synthetic.FEATURES]))
    features = tbl.select(["snapshot_date", "track_id", *synthetic.FEATURES])
    for j, f in enumerate(synthetic.FEATURES):
        features = features.append_column(f"{f}_z", pa.array(z[:, j]))
    data.mkdir(parents=True, exist_ok=True)
    pq.write_table(features, data / "model_features.parquet", compression="zstd")
    pq.write_table(tbl.select(["track_id", "markets"]), data / "tracks.parquet", compression="zstd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--one-cpu", action="store_true", help="pin to CPU 0, as a 1-vCPU function")
    parser.add_argument("--data", type=Path, help="inputs folder (default: a temp folder per N, kept)")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data = args.data or Path(tempfile.gettempdir()) / "spotify-pipeline-bench" / f"snapshot-{args.n}"
    if args.prepare:
        prepare(args.n, data)
        return 0
    if not (data / "tracks.parquet").exists():  # generated in another process: its memory is not ours
        subprocess.run([sys.executable, __file__, "--prepare", "--n", str(args.n), "--data", str(data)], check=True)
    if args.one_cpu:
        os.sched_setaffinity(0, {0})

    from spotify_pipeline.recommend import ModelParams, preload, run_recommend

    preload()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = []
        for name in ("model_features", "tracks"):
            body = (data / f"{name}.parquet").read_bytes()
            (root / f"{name}.parquet").write_bytes(body)
            files.append(FileEntry(f"{name}.parquet", hashlib.sha256(body).hexdigest(), len(body), None, name))
            del body
        clean = Manifest("transform", SNAPSHOT, "bench", "t0", "t1", tuple(files))
        store = LocalStore(root)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        began = time.perf_counter()
        out, _ = run_recommend(
            clean,
            UpstreamRef("m", 1, "0" * 64),
            store,
            ModelParams(top_k=args.top_k, all_pairs_max_tracks=2000),
            lambda: datetime.now(UTC),
        )
        seconds = time.perf_counter() - began
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rec = out.file("recommendations")
        print(
            f"run_recommend: {args.n:,} tracks, top {args.top_k}{' on CPU 0' if args.one_cpu else ''}, "
            f"streamed output: {seconds:.1f} s; peak RSS {peak:.0f} MiB "
            f"(after imports {before:.0f} MiB); recommendations {rec.rows or 0:,} rows, {rec.bytes / 2**20:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
