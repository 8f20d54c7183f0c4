"""The recommend stage, whole (read, model, write), at 143 / 10k / 100k / 1M tracks, against the seed.

Each measurement is a fresh process: ``spotify-pipeline recommend`` (the function's code) on a
synthetic features file (``benchmarks/synthetic.py``: realistic distributions, ~2% duplicate
vectors, markets), and, where its N x N matrix fits in memory, the seed's approach
(``benchmarks/seed_model.py``: full matrix, melt, rank, no CSV written). Wall seconds and peak RSS
come from ``wait4`` on the child; the stage's own seconds (imports excluded) from its JSON stats.
The 1M run is pinned to CPU 0, as a one-vCPU function is. Medians over ``--repeat`` runs.

    .venv/bin/python benchmarks/recommend.py                     # everything, ~6 minutes
    .venv/bin/python benchmarks/recommend.py --sizes 143,10000 --repeat 5
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

TARGETS = """targets (2-core machine, medians):
  10k, k=50: whole command >= 3x faster than the seed and >= 20x less peak RSS; stage alone >= 50x faster
  100k, k=50: whole stage <= 5 s
  1M, k=50, one CPU: whole command <= 60 s, peak RSS <= 1 GiB"""


@dataclass
class Result:
    label: str
    n: int
    wall: list[float] = field(default_factory=list)
    stage: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    rows: int = 0
    out_mib: float = 0.0

    @property
    def wall_s(self) -> float:
        return statistics.median(self.wall)

    @property
    def stage_s(self) -> float:
        return statistics.median(self.stage)

    @property
    def peak_mib(self) -> float:
        return statistics.median(self.rss_mib)


@functools.cache
def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # /work/.library/env/README.md: these slow a current numpy; unset both together, benchmarks only.
    if "OPENBLAS_CORETYPE" in env or "OPENBLAS_L2_SIZE" in env:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
        print("(OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for the measured processes)")
    return env


def run(cmd: list[str], cpus: set[int] | None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one fresh process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            env=child_env(),
            stdout=out,
            stderr=err,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.read().decode()[-2000:]}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def command() -> list[str]:
    exe = Path(sys.executable).parent / "spotify-pipeline"
    if exe.exists() and subprocess.run([str(exe), "recommend", "--help"], capture_output=True).returncode == 0:
        return [str(exe), "recommend"]
    return [sys.executable, "-m", "spotify_pipeline_tools.cli.recommend"]  # before cli.py registers it


def features_file(data: Path, n: int) -> Path:
    path = data / f"features-{n}.parquet"
    if not path.exists():
        import synthetic

        synthetic.write(synthetic.table(n, seed=n), path)
    return path


def ours(
    cmd: list[str], path: Path, work: Path, label: str, n: int, extra: list[str], repeat: int, cpus: set[int] | None
) -> Result:
    res = Result(label, n)
    for _ in range(repeat):
        out, stats = work / "out.parquet", work / "stats.json"
        argv = [*cmd, "--features", str(path), "--out", str(out), "--stats", str(stats), "--quiet", *extra]
        wall, rss, _ = run(argv, cpus)
        st = json.loads(stats.read_text())
        res.wall.append(wall)
        res.rss_mib.append(rss)
        res.stage.append(st["seconds"]["stage"])
        res.rows, res.out_mib = st["rows"], out.stat().st_size / 2**20
        out.unlink()
    return res


def seed(path: Path, n: int, repeat: int) -> Result:
    res = Result("seed: N x N matrix + melt + rank", n)
    for _ in range(repeat):
        wall, rss, stdout = run([sys.executable, str(HERE / "seed_model.py"), str(path)], None)
        st = json.loads(stdout)
        res.wall.append(wall)
        res.rss_mib.append(rss)
        res.stage.append(st["seconds"]["stage"])
        res.rows = st["rows"]
    return res


def seed_fits(n: int) -> bool:
    """The seed needs ~100 bytes per pair (matrix, melted frame with object ids, filtered copy)."""
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return n * n * 100 < 0.7 * available


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="143,10000,100000,1000000")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement below 1M (median)")
    parser.add_argument("--repeat-1m", type=int, default=1, help="runs at 1M tracks")
    parser.add_argument("--all-pairs", default="143,10000", help="sizes also run with every pair written")
    parser.add_argument("--seed-repeat", type=int, help="runs of the seed at 10k and more (default: --repeat)")
    parser.add_argument("--no-seed", action="store_true")
    parser.add_argument("--data", type=Path, help="where the synthetic inputs are kept (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",") if s]
    all_pairs = {int(s) for s in args.all_pairs.split(",") if s}
    data = args.data or Path(tempfile.gettempdir()) / "spotify-pipeline-bench"
    data.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="recommend-bench-"))
    cmd = command()
    print(f"command: {' '.join(cmd)}; {os.cpu_count()} CPUs; inputs in {data}")
    results: list[Result] = []
    seeds: dict[int, Result] = {}
    try:
        for n in sizes:
            path = features_file(data, n)
            repeat = args.repeat_1m if n >= 1_000_000 else args.repeat
            cpus = {0} if n >= 1_000_000 else None
            label = f"recommend k={args.k}" + (" (CPU 0 only)" if cpus else "")
            k_args = ["--top-k", str(args.k), "--all-pairs-max", "0"]
            results.append(ours(cmd, path, work, label, n, k_args, repeat, cpus))
            print(f"  {n:>9,} {label}: {results[-1].wall_s:.2f} s, {results[-1].peak_mib:.0f} MiB", flush=True)
            if n in all_pairs:
                ap = ["--all-pairs-max", str(n)]
                results.append(ours(cmd, path, work, "recommend all pairs", n, ap, 1 if n > 2000 else repeat, None))
                print(f"  {n:>9,} all pairs: {results[-1].wall_s:.2f} s, {results[-1].peak_mib:.0f} MiB", flush=True)
            if not args.no_seed:
                if seed_fits(n):
                    seeds[n] = seed(path, n, args.seed_repeat or repeat if n >= 10_000 else repeat)
                    results.append(seeds[n])
                    print(f"  {n:>9,} seed: {seeds[n].wall_s:.2f} s, {seeds[n].peak_mib:.0f} MiB", flush=True)
                else:
                    print(f"  {n:>9,} seed: skipped, its matrix and long table need ~{n * n * 100 / 2**30:.0f} GiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    head = f"{'N':>9}  {'variant':<34} {'rows':>11} {'whole s':>8} {'stage s':>8} {'peak MiB':>9} {'out MiB':>8}"
    print(head + "   vs seed (whole / stage / RSS)")
    for r in results:
        line = (
            f"{r.n:>9,}  {r.label:<34} {r.rows:>11,} {r.wall_s:>8.2f} {r.stage_s:>8.3f} {r.peak_mib:>9.0f} "
            f"{r.out_mib:>8.1f}"
        )
        s = seeds.get(r.n)
        if s is not None and r is not s:
            line += (
                f"   {s.wall_s / r.wall_s:.1f}x / {s.stage_s / r.stage_s:.0f}x / {s.peak_mib / r.peak_mib:.0f}x less"
            )
        print(line)

    print("\n" + TARGETS)
    checks: list[tuple[str, bool]] = []
    by = {(r.n, r.label.split(" (")[0]): r for r in results}
    k_label = f"recommend k={args.k}"
    if (10_000, k_label) in by and 10_000 in seeds:
        r, s = by[(10_000, k_label)], seeds[10_000]
        checks += [
            (f"10k whole {s.wall_s / r.wall_s:.1f}x faster (>= 3x)", s.wall_s / r.wall_s >= 3),
            (f"10k peak RSS {s.peak_mib / r.peak_mib:.0f}x less (>= 20x)", s.peak_mib / r.peak_mib >= 20),
            (f"10k stage {s.stage_s / r.stage_s:.0f}x faster (>= 50x)", s.stage_s / r.stage_s >= 50),
        ]
    if (100_000, k_label) in by:
        r = by[(100_000, k_label)]
        checks.append((f"100k whole stage {r.wall_s:.2f} s (<= 5 s)", r.wall_s <= 5))
    if (1_000_000, k_label) in by:
        r = by[(1_000_000, k_label)]
        checks.append((f"1M on one CPU {r.wall_s:.1f} s (<= 60 s)", r.wall_s <= 60))
        checks.append((f"1M peak RSS {r.peak_mib:.0f} MiB (<= 1024 MiB)", r.peak_mib <= 1024))
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {"n": r.n, "variant": r.label, "rows": r.rows, "wall_s": r.wall, "stage_s": r.stage}
                    | {"peak_rss_mib": r.rss_mib, "out_mib": r.out_mib}
                    for r in results
                ],
                indent=1,
            )
        )
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
