"""Cold start of each Cloud Function: import time and RSS in a fresh process.

Two steps per entry point, as an instance lives them: loading ``functions/<name>/main.py`` (what the
Functions Framework does before the instance serves; ``ingest`` is a second deployment of extract's
source) and what the runtime imports on its first event: the storage and BigQuery clients every event
uses (manifests, outcomes, ``pipeline_runs``), then the stage's code (extract and ingest: the stage,
its sources and the chart gates; recommend: the feature gates and the model, with scipy and
scikit-learn, which the model loads). Also lists which heavy libraries each step pulled in: extract
must not load pandas or scikit-learn. A heavy library missing from a function's ``requirements.txt``
is blocked in its probe (its zip does not install it; google-cloud-bigquery imports pandas and pyarrow
only when they are installed). Medians of ``--repeat`` fresh processes.

    .venv/bin/python benchmarks/cold_start.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("extract", "ingest", "transform", "recommend", "load")
SOURCE = {"ingest": "extract"}  # entry point -> functions/<folder> whose main.py it runs
# Heavy libraries by distribution: a function whose requirements.txt lacks one runs without it (its zip
# installs only those), so the probe blocks it; google-cloud-bigquery imports pandas only when present.
DISTRIBUTION = {"numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow", "scipy": "scipy", "sklearn": "scikit-learn"}
HEAVY = ("numpy", "pandas", "pyarrow", "scipy", "sklearn", "google.cloud.bigquery", "google.cloud.storage", "spotipy")
CLIENTS = "import spotify_pipeline.clients, google.cloud.storage, google.cloud.bigquery; "
EXTRACT = (
    "import spotify_pipeline.extract, spotify_pipeline.gates, spotify_pipeline.spotify_api, "
    "spotify_pipeline.sources.cache, spotify_pipeline.sources.credentials, spotify_pipeline.sources.http, "
    "spotify_pipeline.sources.reccobeats"
)
FIRST_EVENT = {
    "extract": CLIENTS + EXTRACT,
    "ingest": CLIENTS + EXTRACT,
    "transform": CLIENTS + "import spotify_pipeline.transform",
    "recommend": CLIENTS + "import spotify_pipeline.gates, spotify_pipeline.recommend as r; r.preload()",
    "load": CLIENTS + "import spotify_pipeline.load",
}
PROBE = """
import importlib.util, json, resource, sys, time
for blocked in {blocked!r}:
    sys.modules[blocked] = None  # not in the function's requirements.txt: ImportError, as in the cloud
began = time.perf_counter()
spec = importlib.util.spec_from_file_location("main", {main!r})
module = importlib.util.module_from_spec(spec)
sys.modules["main"] = module
spec.loader.exec_module(module)
loaded = time.perf_counter()
rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
heavy_loaded = [m for m in {heavy!r} if sys.modules.get(m) is not None]  # None: blocked
{first_event}
ready = time.perf_counter()
print(json.dumps({{
    "load_s": loaded - began, "load_rss": rss_loaded, "load_heavy": heavy_loaded,
    "event_s": ready - loaded, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "event_heavy": [m for m in {heavy!r} if sys.modules.get(m) is not None and m not in heavy_loaded],
}}))
"""


def probe(name: str) -> dict[str, Any]:
    folder = ROOT / "functions" / SOURCE.get(name, name)
    required = {line.split("==")[0].strip().lower() for line in (folder / "requirements.txt").read_text().splitlines()}
    blocked = [module for module, dist in DISTRIBUTION.items() if dist not in required]
    code = PROBE.format(main=str(folder / "main.py"), heavy=HEAVY, first_event=FIRST_EVENT[name], blocked=blocked)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    result["process_s"] = time.perf_counter() - began
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    bare = statistics.median(_timed([sys.executable, "-c", "pass"]) for _ in range(args.repeat))
    print(f"python interpreter start alone: {bare:.3f} s (not included below)\n")
    print(f"{'function':<10} {'load main.py':>12} {'RSS MiB':>8} {'+ first event':>14} {'RSS MiB':>8}  heavy libraries")
    ok = True
    for name in FUNCTIONS:
        runs = [probe(name) for _ in range(args.repeat)]

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(float(r[key]) for r in runs)

        load_s, event_s = med("load_s"), med("event_s")
        loaded, first = runs[0]["load_heavy"], runs[0]["event_heavy"]
        heavy = f"main.py: {', '.join(loaded) or '-'}; first event: {', '.join(first) or '-'}"
        print(f"{name:<10} {load_s:>10.3f} s {med('load_rss'):>8.0f} {event_s:>12.3f} s {med('rss'):>8.0f}  {heavy}")
        if name in ("extract", "ingest"):
            passed = load_s + event_s <= 0.5 and not {"pandas", "sklearn"} & (set(loaded) | set(first))
            ok &= passed
            print(
                f"{'':<10} target: {name} imports <= 0.5 s, no pandas/scikit-learn: "
                f"{load_s + event_s:.3f} s, {'PASS' if passed else 'FAIL'}"
            )
        if name == "recommend":
            passed = load_s + event_s <= 3.0
            ok &= passed
            print(
                f"{'':<10} target: recommend imports <= 3 s: {load_s + event_s:.3f} s, {'PASS' if passed else 'FAIL'}"
            )
    return 0 if ok else 1


def _timed(cmd: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - began


if __name__ == "__main__":
    sys.exit(main())
