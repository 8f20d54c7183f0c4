"""Dashboard at scale: a 10,000-track snapshot with top-k neighbours -> page size and time to interactive.

    .venv/bin/python benchmarks/dashboard.py [--tracks 10000] [--top-k 100] [--markets 60] [--loads 3]

1. Starts a private local stack (the same ``stack up`` as ``make demo``; tables and dashboard views
   provisioned from ``schemas/tables.json``) in a temporary folder.
2. Generates one synthetic snapshot (deterministic, seed 7): ``--markets`` Top-200 charts over
   ``--tracks`` distinct tracks, 1-3 credited artists per track, genres, audio features, KMeans-style
   clusters and each track's ``--top-k`` exact nearest neighbours (k-d tree), and loads every table
   through the pipeline's own loader (``load.replace_partitions``: Parquet, staging tables, one transaction).
3. Renders the dashboard through the ``spotify-pipeline dashboard`` code path (views -> payload ->
   HTML) and prints the time of each step and the page size (target < 10 MB).
4. Opens the page ``--loads`` times in headless Chromium, each time in a fresh browser and profile
   (a cold start, as a user opening the file), and prints the time from navigation start until the
   page is interactive: every chart drawn, tables filled, explorer and filters wired (target < 2 s).
   Then it times one explorer search-and-pick and one market-filter change in the warm page.

A benchmark, not a test: it prints numbers and exits 0 unless something fails outright.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = date(2026, 11, 23)
CHART_SIZE = 200
SIZE_TARGET = 10_000_000
TTI_TARGET = 2.0


def _table(name: str, columns: dict[str, Any], n: int) -> pa.Table:
    """Arrow table of ``name``'s schema (tables.json); columns not generated are null."""
    from spotify_pipeline.schema import table

    schema = table(name).arrow_schema()
    arrays = []
    for f in schema:
        if f.name in columns:
            arrays.append(pa.array(columns[f.name], type=f.type))
        elif f.nullable:
            arrays.append(pa.nulls(n, type=f.type))
        else:
            raise ValueError(f"{name}.{f.name} is REQUIRED but the benchmark does not generate it")
    return pa.Table.from_arrays(arrays, schema=schema)


def _ids(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    body = rng.choice(alphabet, size=(n, 22 - len(prefix)))
    return sorted({prefix + "".join(r) for r in body})[:n] if n else []


def generate(n_tracks: int, n_markets: int, top_k: int, seed: int = 7) -> dict[str, pa.Table]:
    """One snapshot's tables, shaped like the pipeline's (synthetic, clearly labelled)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    day = SNAPSHOT
    markets = ["GLOBAL"] + [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(n_markets - 1)]
    track_ids = _ids(rng, n_tracks, "")
    while len(track_ids) < n_tracks:  # practically never: 22 random characters
        track_ids = _ids(rng, n_tracks, "")

    # Charts: each market's Top 200; every track charts somewhere, some in several markets.
    order = rng.permutation(n_tracks)
    entries: list[tuple[str, int, int]] = []
    for m_i, market in enumerate(markets):
        own = order[m_i::n_markets].tolist()
        extra = rng.choice(n_tracks, size=max(0, CHART_SIZE - len(own)), replace=False).tolist()
        chart = list(dict.fromkeys(own + extra))[:CHART_SIZE]
        entries += [(market, rank, t) for rank, t in enumerate(chart, start=1)]
    charted: dict[int, list[str]] = {}
    best: dict[int, int] = {}
    for market, rank, t in entries:
        charted.setdefault(t, []).append(market)
        best[t] = min(best.get(t, rank), rank)
    present = sorted(charted)  # tracks with at least one chart entry

    n_artists = max(10, n_tracks // 3)
    artist_ids = _ids(rng, n_artists, "A")
    genres = [f"synthetic genre {i:03d}" for i in range(max(5, n_tracks // 30))]
    credits = {t: sorted(set(rng.choice(n_artists, size=int(rng.integers(1, 4))).tolist())) for t in present}

    feats = {
        "danceability": rng.uniform(0.3, 0.95, n_tracks).round(3),
        "energy": rng.uniform(0.2, 0.95, n_tracks).round(3),
        "loudness": rng.uniform(-18, -2, n_tracks).round(3),
        "valence": rng.uniform(0.1, 0.95, n_tracks).round(3),
    }
    raw = np.column_stack([feats[c][present] for c in ("danceability", "energy", "loudness", "valence")])
    z = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    k_clusters = 5
    centres = z[rng.choice(len(present), size=k_clusters, replace=False)]
    labels = np.argmin(((z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2), axis=1)
    to_centre = np.sqrt(((z - centres[labels]) ** 2).sum(axis=1))

    tree = cKDTree(z)
    k = min(top_k, len(present) - 1)
    dist, idx = tree.query(z, k=k + 1)
    rec_track, rec_nb, rec_dist, rec_rank, rec_cross, rec_tm, rec_nm = [], [], [], [], [], [], []
    for i, t in enumerate(present):
        pairs = [(float(d), track_ids[present[j]], int(j)) for d, j in zip(dist[i], idx[i], strict=True) if j != i]
        pairs.sort()
        mine = set(charted[t])
        for rank, (d, nb_id, j) in enumerate(pairs[:k], start=1):
            theirs = charted[present[j]]
            rec_track.append(track_ids[t])
            rec_nb.append(nb_id)
            rec_dist.append(d)
            rec_rank.append(rank)
            rec_cross.append(any(m not in mine for m in theirs))
            rec_tm.append(sorted(mine))
            rec_nm.append(sorted(theirs))

    tid = [track_ids[t] for t in present]
    n = len(present)
    name = [f"Bench Track {t:05d} (synthetic)" for t in present]
    artists_of = [[artist_ids[a] for a in credits[t]] for t in present]
    tables = {
        "chart_entries": _table(
            "chart_entries",
            {
                "snapshot_date": [day] * len(entries),
                "market": [e[0] for e in entries],
                "rank": [e[1] for e in entries],
                "track_id": [track_ids[e[2]] for e in entries],
                "chart_source": ["benchmark"] * len(entries),
            },
            len(entries),
        ),
        "tracks": _table(
            "tracks",
            {
                "snapshot_date": [day] * n,
                "track_id": tid,
                "track_name": name,
                "artist_ids": artists_of,
                "artist_names": [[f"Bench Artist {a:05d}" for a in credits[t]] for t in present],
                "primary_artist_id": [a[0] for a in artists_of],
                "duration_ms": rng.integers(120_000, 300_000, n).tolist(),
                "explicit": rng.random(n) < 0.3,
                "popularity": rng.integers(20, 101, n).tolist(),
                "markets": [sorted(charted[t]) for t in present],
                "best_rank": [best[t] for t in present],
                **{c: feats[c][present].tolist() for c in feats},
                "has_features": [True] * n,
                "feature_source": ["benchmark"] * n,
                "chart_source": ["benchmark"] * n,
            },
            n,
        ),
    }
    ta = [(tid[i], artist_ids[a], pos) for i, t in enumerate(present) for pos, a in enumerate(credits[t])]
    tables["track_artists"] = _table(
        "track_artists",
        {
            "snapshot_date": [day] * len(ta),
            "track_id": [r[0] for r in ta],
            "artist_id": [r[1] for r in ta],
            "artist_position": [r[2] for r in ta],
        },
        len(ta),
    )
    ag = []
    for a in sorted({a for t in present for a in credits[t]}):
        for pos, g in enumerate(sorted(set(rng.choice(len(genres), size=int(rng.integers(0, 4))).tolist()))):
            ag.append((artist_ids[a], genres[g], pos, pos == 0))
    tables["artist_genres"] = _table(
        "artist_genres",
        {
            "snapshot_date": [day] * len(ag),
            "artist_id": [r[0] for r in ag],
            "genre": [r[1] for r in ag],
            "genre_position": [r[2] for r in ag],
            "is_main": [r[3] for r in ag],
        },
        len(ag),
    )
    tables["model_features"] = _table(
        "model_features",
        {
            "snapshot_date": [day] * n,
            "track_id": tid,
            **{c: raw[:, i].tolist() for i, c in enumerate(("danceability", "energy", "loudness", "valence"))},
            **{f"{c}_z": z[:, i].tolist() for i, c in enumerate(("danceability", "energy", "loudness", "valence"))},
            "feature_source": ["benchmark"] * n,
        },
        n,
    )
    tables["track_clusters"] = _table(
        "track_clusters",
        {
            "snapshot_date": [day] * n,
            "track_id": tid,
            "cluster": labels.tolist(),
            "distance_to_centroid": to_centre.tolist(),
        },
        n,
    )
    means = np.array([raw[labels == c].mean(axis=0) for c in range(k_clusters)])
    tables["clusters"] = _table(
        "clusters",
        {
            "snapshot_date": [day] * k_clusters,
            "cluster": list(range(k_clusters)),
            "size": [int((labels == c).sum()) for c in range(k_clusters)],
            **{c: means[:, i].tolist() for i, c in enumerate(("danceability", "energy", "loudness", "valence"))},
        },
        k_clusters,
    )
    tables["recommendations"] = _table(
        "recommendations",
        {
            "snapshot_date": [day] * len(rec_track),
            "track_id": rec_track,
            "neighbor_track_id": rec_nb,
            "distance": rec_dist,
            "rank": rec_rank,
            "cross_market": rec_cross,
            "track_markets": rec_tm,
            "neighbor_markets": rec_nm,
        },
        len(rec_track),
    )
    return tables


def load(client: Any, dataset: str, tables: dict[str, pa.Table]) -> None:
    from spotify_pipeline.load import replace_partitions

    files = {}
    for name, tbl in tables.items():
        buf = io.BytesIO()
        pq.write_table(tbl, buf)
        files[name] = buf.getvalue()
    replace_partitions(client, dataset, files, SNAPSHOT.isoformat(), "bench")


def chromium(user_data_dir: Path) -> Any:
    from spotify_pipeline_tools.dashboard.browser import CHROMEDRIVER, CHROMIUM, new_driver

    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise SystemExit(f"{path} is missing: apt-get install -y chromium chromium-driver")
    return new_driver(user_data_dir)


def wait_ready(driver: Any, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at = driver.execute_script(
            "return document.body && document.body.dataset.ready ? window.dashboardReadyAt : null"
        )
        if at is not None:
            return float(at) / 1000.0
        time.sleep(0.02)
    raise SystemExit(f"the page did not become ready within {timeout:.0f} s; console: {driver.get_log('browser')}")


def measure(page: Path, loads: int, work: Path) -> dict[str, Any]:
    cold = []
    interactions: dict[str, float] = {}
    for i in range(loads):
        driver = chromium(work / f"profile-{i}")
        try:
            driver.get(page.as_uri())
            cold.append(wait_ready(driver))
            errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
            if errors:
                raise SystemExit(f"console errors: {errors}")
            if i == loads - 1:
                interactions = driver.execute_script(
                    """
                    const t0 = performance.now();
                    const box = document.getElementById('explorer-search');
                    box.value = 'Bench Track 0042'; box.dispatchEvent(new Event('input'));
                    document.querySelector('#explorer-results button').click();
                    const t1 = performance.now();
                    const listed = document.querySelectorAll('#explorer-neighbours tbody tr').length;
                    const sel = document.getElementById('market-filter');
                    sel.value = sel.options[2].value; sel.dispatchEvent(new Event('change'));
                    const t2 = performance.now();
                    return {search_and_pick: (t1 - t0) / 1000, market_filter: (t2 - t1) / 1000,
                            neighbours_listed: listed};
                    """
                )
        finally:
            driver.quit()
    return {"cold": cold, **interactions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tracks", type=int, default=10_000)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--markets", type=int, default=60)
    parser.add_argument("--loads", type=int, default=3, help="cold page loads in headless Chromium")
    parser.add_argument("--neighbours", type=int, help="explorer neighbours per track (default: the command's)")
    parser.add_argument("--keep", type=Path, help="also copy the page here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from spotify_pipeline.clients import bigquery_client
    from spotify_pipeline_tools.dashboard import build_payload, read_warehouse, write_dashboard
    from spotify_pipeline_tools.stack import local

    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        state = local.up(work / "stack", REPO, use_pubsub=False, quiet=True)
        try:
            t1 = time.perf_counter()
            tables = generate(args.tracks, args.markets, args.top_k)
            t2 = time.perf_counter()
            client = bigquery_client(local.PROJECT, "US", state.env())
            load(client, local.DATASET, tables)
            t3 = time.perf_counter()
            rows = read_warehouse(
                client, local.PROJECT, local.DATASET, neighbours=args.neighbours, where="the local BigQuery emulator"
            )
            t4 = time.perf_counter()
            payload = build_payload(rows, generated_at=datetime.now(UTC))
            page = write_dashboard(payload, work / "page", title="Dashboard benchmark")
            t5 = time.perf_counter()
        finally:
            local.down(work / "stack", quiet=True)
        size = page.stat().st_size
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            (args.keep / page.name).write_bytes(page.read_bytes())
        timing = measure(page, args.loads, work)

    sel = rows.selection
    counts = {name: tbl.num_rows for name, tbl in tables.items()}
    cold = timing["cold"]
    print(f"snapshot      {SNAPSHOT}: {counts['tracks']} tracks, {args.markets} markets, ", end="")
    print(f"{counts['chart_entries']} chart entries")
    print(f"              {counts['recommendations']} recommendation rows (top {args.top_k} per track)")
    print(f"stack up      {t1 - t0:6.1f} s")
    print(f"generate      {t2 - t1:6.1f} s")
    print(f"load          {t3 - t2:6.1f} s   (load.replace_partitions: every table in one transaction)")
    print(f"read views    {t4 - t3:6.1f} s   ({len(rows.recommendations)} explorer pairs: {sel.neighbours} per track)")
    print(f"render        {t5 - t4:6.1f} s")
    verdict = "OK" if size < SIZE_TARGET else "OVER"
    print(f"page size     {size / 1e6:6.2f} MB  (target < {SIZE_TARGET / 1e6:.0f} MB): {verdict}")
    print(
        f"interactive   {statistics.median(cold):6.2f} s median of {len(cold)} cold loads "
        f"({', '.join(f'{c:.2f}' for c in cold)}; target < {TTI_TARGET:.0f} s): "
        f"{'OK' if statistics.median(cold) < TTI_TARGET else 'OVER'}"
    )
    if "search_and_pick" in timing:
        print(
            f"explorer      search + pick {timing['search_and_pick'] * 1000:.0f} ms "
            f"({timing['neighbours_listed']} neighbours listed); market filter {timing['market_filter'] * 1000:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
