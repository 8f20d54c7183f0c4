"""SHA-256 of what the pipeline produces, to show a refactor changed no output byte.

Two parts, each through the user-facing commands (so the script does not change with the code):

* the benchmarks' inputs: ``benchmarks/synthetic.py`` tracks (fixed seed) through
  ``spotify-pipeline recommend``, Parquet and CSV outputs, all-pairs and top-K sizes;
* the demo: a local stack in a temporary folder, ``spotify-pipeline run`` of the demo catalogue
  and of the charts.spotify.com fixture file with fixed run ids; every data file the week's
  manifests list (run folder masked, since it holds a random nonce) and every data table's rows.

Manifests, receipts and the run-record tables hold times and are left out; so are the fetch times
(``*_at`` columns; timestamps, object generations and the stand-in's port in raw responses). Everything else must match.
Prints one ``name  sha256`` line each; compare two runs with ``diff``.

    .venv/bin/python scripts/output_digests.py > before.txt   # ... change code ...
    .venv/bin/python scripts/output_digests.py > after.txt && diff before.txt after.txt
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLI = str(BIN / "spotify-pipeline")
SNAPSHOT = date(2026, 11, 23)
CHART_FILE = ROOT / "tests" / "fixtures" / "charts" / "regional-global-weekly-2026-11-19.csv"
RECORD_TABLES = ("pipeline_runs", "run_outcomes")
RUN_FOLDER = re.compile(r"run=[^/]+/")
TIMES = re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
PORTS = re.compile(rb"(127\.0\.0\.1|localhost):\d+")
GENERATIONS = re.compile(rb"#\d{6,}")  # an uploaded chart file's generation, a time in microseconds


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recommend_outputs(work: Path) -> list[str]:
    lines = []
    for n in (1500, 20000):
        features = work / f"features-{n}.parquet"
        subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "synthetic.py"), "--n", str(n), "--out", str(features)],
            check=True,
            capture_output=True,
        )
        for ext in ("parquet", "csv"):
            out = work / f"rec-{n}.{ext}"
            subprocess.run(
                [
                    CLI,
                    "recommend",
                    "--features",
                    str(features),
                    "--out",
                    str(out),
                    "--top-k",
                    "20",
                    "--snapshot-date",
                    SNAPSHOT.isoformat(),
                    "--track-clusters-out",
                    str(work / f"tc-{n}.{ext}"),
                    "--clusters-out",
                    str(work / f"cl-{n}.{ext}"),
                    "--quiet",
                ]
                + (["--csv-export"] if ext == "parquet" else []),
                check=True,
            )
        for path in sorted(work.glob(f"*-{n}.*")):
            if not path.name.startswith("features-"):
                lines.append(f"recommend {path.name}  {sha(path.read_bytes())}")
    return lines


def demo_outputs(work: Path) -> list[str]:
    env = {**os.environ, "SPOTIFY_PIPELINE_STACK_DIR": str(work / "stack")}
    env.pop("SPOTIFY_PIPELINE_PROJECT", None)

    def cli(*argv: str) -> None:
        subprocess.run([CLI, *argv], check=True, env=env, cwd=work, stdout=subprocess.DEVNULL)

    cli("stack", "up")
    try:
        cli("run", "--snapshot-date", SNAPSHOT.isoformat(), "--run-id", "digest-demo")
        cli("run", "--charts-csv", str(CHART_FILE), "--run-id", "digest-chart-file")
        return _stored(env, work)
    finally:
        cli("stack", "down")


def _file_digest(path: Path) -> str:
    """The file's bytes; where it holds the times of a fetch (or the stand-in's port), those masked."""
    data = path.read_bytes()
    if path.suffix == ".json":
        return sha(GENERATIONS.sub(b"#<generation>", TIMES.sub(b"<time>", PORTS.sub(b"<host>", data))))
    table = pq.read_table(path)
    timed = [c for c in table.column_names if c.endswith("_at")]
    if not timed:
        return sha(data)
    rows = table.drop_columns(timed).to_pylist()
    return "rows:" + sha(json.dumps(rows, default=str, sort_keys=True).encode())


def _stored(env: dict[str, str], work: Path) -> list[str]:
    """The week's data files as the manifests list them, and the data tables' rows (sorted)."""
    lines = []
    bucket = next((work / "stack" / "gcs").glob("*/"))
    for stage in ("extract", "transform", "recommend"):
        for day in sorted({SNAPSHOT.isoformat(), "2026-11-19", "2026-11-16"}):
            manifest = bucket / stage / f"snapshot_date={day}" / "_manifest.json"
            if not manifest.is_file():
                continue
            for entry in sorted(json.loads(manifest.read_text())["files"], key=lambda f: f["name"]):
                name = RUN_FOLDER.sub("run=*/", entry["name"])
                lines.append(f"bucket {name}  {_file_digest(bucket / entry['name'])}")
    spec = json.loads((ROOT / "src" / "spotify_pipeline" / "schemas" / "tables.json").read_text())["tables"]
    for table in sorted(set(spec) - set(RECORD_TABLES)):
        columns = ", ".join(f"`{c['name']}`" for c in spec[table]["columns"] if not c["name"].endswith("_at"))
        out = subprocess.run(
            [CLI, "query", "--format", "csv", f"SELECT {columns} FROM `{table}`"],
            check=True,
            env=env,
            cwd=work,
            capture_output=True,
        ).stdout
        header, *rows = out.decode().splitlines()
        body = "\n".join([header, *sorted(rows)]).encode()
        lines.append(f"table {table} ({len(rows)} rows)  {sha(body)}")
    return lines


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        for line in [*recommend_outputs(Path(tmp)), *demo_outputs(Path(tmp))]:
            print(line, flush=True)
