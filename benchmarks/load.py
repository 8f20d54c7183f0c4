"""Load of one snapshot: BigQuery jobs and API calls per load, and seconds, on the local BigQuery emulator.

    .venv/bin/python benchmarks/load.py [--tracks 150] [--markets 3] [--top-k 50] [--loads 5]

Starts a private local stack in a temporary folder, generates one synthetic snapshot of the nine
tables (``benchmarks/dashboard.py``'s generator, ``artists`` left empty; the defaults are the size
of the demo's three Top 50 playlists), then loads it ``--loads`` times through
``load.replace_partitions`` (parallel staging loads, one transaction). Jobs are counted from the
emulator's own job list (``jobs.list``), API calls by wrapping the client's methods the loader
uses. On BigQuery each job takes seconds whatever its size, so the job count and how many of them
run one after another matter more than the emulator's seconds.

A benchmark, not a test: it prints numbers and exits 0 unless something fails outright.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
CALLS = ("list_tables", "create_table", "load_table_from_file", "query", "get_table", "delete_table")


def count_calls(client: Any, calls: Counter[str]) -> None:
    """Count, per method name, the client calls the loader makes (the real methods still run)."""
    for name in CALLS:
        method = getattr(client, name)

        def counted(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _method(*args, **kwargs)

        setattr(client, name, counted)


def job_ids(client: Any) -> set[str]:
    # bqemulator lists the newest maxResults jobs (default 100) and has no page token: ask for all.
    return {job.job_id for job in client.list_jobs(all_users=True, max_results=100_000)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tracks", type=int, default=150)
    parser.add_argument("--markets", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from dashboard import SNAPSHOT, generate

    from spotify_pipeline.clients import bigquery_client
    from spotify_pipeline.load import RECOMMEND_TABLES, TRANSFORM_TABLES, replace_partitions
    from spotify_pipeline.schema import table
    from spotify_pipeline_tools.stack import local

    generated = generate(args.tracks, args.markets, args.top_k)
    files = {}
    for name in (*TRANSFORM_TABLES, *RECOMMEND_TABLES):
        buf = io.BytesIO()
        # The generator has no `artists` (the dashboard does not read it): loaded empty, still one job.
        pq.write_table(generated.get(name) or table(name).arrow_schema().empty_table(), buf)
        files[name] = buf.getvalue()
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        state = local.up(Path(tmp) / "stack", REPO, use_pubsub=False, quiet=True)
        try:
            client = bigquery_client(local.PROJECT, "US", state.env())
            calls: Counter[str] = Counter()
            count_calls(client, calls)
            seconds, jobs = [], []
            for i in range(args.loads):
                before = job_ids(client)
                calls.clear()
                t0 = time.perf_counter()
                replace_partitions(client, local.DATASET, files, SNAPSHOT.isoformat(), f"bench-{i}")
                seconds.append(time.perf_counter() - t0)
                jobs.append(len(job_ids(client) - before))
        finally:
            local.down(Path(tmp) / "stack", quiet=True)
    rows = sum(pq.read_metadata(io.BytesIO(data)).num_rows for data in files.values())
    print(
        f"snapshot   {len(files)} tables, {rows} rows ({args.tracks} tracks, {args.markets} markets, top {args.top_k})"
    )
    print(f"jobs       {statistics.median(jobs):.0f} per load ({', '.join(map(str, jobs))})")
    print(
        f"API calls  {sum(calls.values())} in the last load: {', '.join(f'{k} {v}' for k, v in sorted(calls.items()))}"
    )
    print(
        f"seconds    {statistics.median(seconds):.2f} median of {len(seconds)} loads "
        f"({', '.join(f'{s:.2f}' for s in seconds)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
