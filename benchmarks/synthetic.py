"""Synthetic model input at any size: `track_id`, the four features, `markets`.

Distributions follow published summaries of Spotify chart tracks: danceability, energy and valence
are Beta-shaped (means ~0.67, ~0.64, ~0.52), loudness is left-skewed around -6.5 dB, and the four
are correlated (energy-loudness ~0.7, danceability-valence ~0.45) through a Gaussian copula. Values
are rounded to 3 decimals as the API returns them. About 2% of the tracks reuse another track's
feature vector exactly (re-releases, versions), in groups of 2 to 10, so ties at distance 0 occur.
Each track charts in 1 to 10 of 74 markets (GLOBAL and 73 ISO-2 codes), popular markets more often.

    python benchmarks/synthetic.py --n 100000 --out /tmp/features-100k.parquet   # or .csv
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FEATURES = ("danceability", "energy", "loudness", "valence")
MARKETS = [
    "GLOBAL",
    "AE",
    "AR",
    "AT",
    "AU",
    "BE",
    "BG",
    "BO",
    "BR",
    "BY",
    "CA",
    "CH",
    "CL",
    "CO",
    "CR",
    "CZ",
    "DE",
    "DK",
    "DO",
    "EC",
    "EE",
    "EG",
    "ES",
    "FI",
    "FR",
    "GB",
    "GR",
    "GT",
    "HK",
    "HN",
    "HU",
    "ID",
    "IE",
    "IL",
    "IN",
    "IS",
    "IT",
    "JP",
    "KR",
    "KZ",
    "LT",
    "LU",
    "LV",
    "MA",
    "MX",
    "MY",
    "NG",
    "NI",
    "NL",
    "NO",
    "NZ",
    "PA",
    "PE",
    "PH",
    "PK",
    "PL",
    "PT",
    "PY",
    "RO",
    "SA",
    "SE",
    "SG",
    "SK",
    "SV",
    "TH",
    "TR",
    "TW",
    "UA",
    "US",
    "UY",
    "VE",
    "VN",
    "ZA",
]
_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
# danceability, energy, loudness, valence
_CORRELATION = np.array(
    [
        [1.00, 0.10, 0.15, 0.45],
        [0.10, 1.00, 0.70, 0.35],
        [0.15, 0.70, 1.00, 0.25],
        [0.45, 0.35, 0.25, 1.00],
    ]
)


def _track_ids(n: int, rng: np.random.Generator) -> pa.Array:
    """``n`` distinct 22-character base62 ids, like Spotify's."""
    while True:
        raw = _ALPHABET[rng.integers(0, len(_ALPHABET), size=(n, 22))]
        ids = pa.array(np.ascontiguousarray(raw).view("S22").ravel()).cast(pa.string())
        if len(pc.unique(ids)) == n:
            return ids


def features(n: int, seed: int = 0, duplicate_share: float = 0.02) -> np.ndarray:
    """``n`` x 4 raw feature values (columns in ``FEATURES`` order), rounded like the API's."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    normal = rng.standard_normal((n, 4)) @ np.linalg.cholesky(_CORRELATION).T
    u = np.clip(stats.norm.cdf(normal), 1e-9, 1 - 1e-9)
    out = np.empty((n, 4))
    out[:, 0] = stats.beta.ppf(u[:, 0], 6.9, 3.4)
    out[:, 1] = stats.beta.ppf(u[:, 1], 4.5, 2.5)
    out[:, 2] = np.clip(-1.0 - stats.gamma.ppf(1 - u[:, 2], 3.0, scale=1.8), -35.0, 1.5)
    out[:, 3] = stats.beta.ppf(u[:, 3], 1.9, 1.8)
    out = np.round(out, 3)
    # Exact duplicates: groups of 2..10 tracks sharing one vector.
    copies = min(int(n * duplicate_share), n // 2)
    sizes: list[int] = []
    while sum(sizes) - len(sizes) < copies:
        sizes.append(int(rng.integers(2, 11)))
    picked = rng.permutation(n)[: sum(sizes)] if sizes else np.empty(0, dtype=np.int64)
    for rows in np.split(picked, np.cumsum(sizes)[:-1]) if sizes else []:
        out[rows[1:]] = out[rows[0]]
    return out


def markets(n: int, seed: int = 0) -> pa.Array:
    """Per track, the sorted markets it charts in: 1 + geometric, popular markets weighted up."""
    rng = np.random.default_rng(seed + 1)
    weights = 1.0 / np.arange(1, len(MARKETS) + 1) ** 0.8
    weights /= weights.sum()
    counts = np.minimum(rng.geometric(0.55, size=n), 10)
    codes = rng.choice(len(MARKETS), size=int(counts.sum()), p=weights)
    rows = np.repeat(np.arange(n), counts)
    keys = np.unique(rows.astype(np.int64) * len(MARKETS) + codes)  # sorted, distinct per track
    key_rows, key_codes = keys // len(MARKETS), keys % len(MARKETS)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(key_rows, minlength=n), out=offsets[1:])
    vocab = pa.array(MARKETS)
    order = np.argsort(np.array(MARKETS), kind="stable")  # codes in alphabetical order of the names
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(len(order))
    sorted_keys = np.lexsort((rank_of[key_codes], key_rows))
    return pa.ListArray.from_arrays(pa.array(offsets), vocab.take(pa.array(key_codes[sorted_keys])))


def table(
    n: int,
    seed: int = 0,
    with_markets: bool = True,
    duplicate_share: float = 0.02,
    snapshot: date | None = date(2026, 11, 23),
) -> pa.Table:
    rng = np.random.default_rng(seed + 2)
    values = features(n, seed, duplicate_share)
    cols: dict[str, pa.Array] = {"track_id": _track_ids(n, rng)}
    for i, name in enumerate(FEATURES):
        cols[name] = pa.array(values[:, i])
    if with_markets:
        cols["markets"] = markets(n, seed)
    out = pa.table(cols)
    if snapshot is not None:
        out = out.add_column(0, "snapshot_date", pa.array(np.full(n, snapshot)))
    # Rows in no particular order, as a real export would be.
    return out.take(pa.array(rng.permutation(n)))


def write(tbl: pa.Table, path: Path) -> None:
    if path.suffix == ".csv":
        flat = tbl
        if "markets" in tbl.column_names:
            i = tbl.column_names.index("markets")
            flat = tbl.set_column(i, "markets", pc.binary_join(tbl["markets"], ";"))
        pacsv.write_csv(flat, path)
    else:
        pq.write_table(tbl, path, compression="zstd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help=".parquet or .csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-markets", action="store_true")
    parser.add_argument("--duplicate-share", type=float, default=0.02)
    args = parser.parse_args(argv)
    tbl = table(args.n, args.seed, with_markets=not args.no_markets, duplicate_share=args.duplicate_share)
    write(tbl, args.out)
    print(f"{args.out}: {args.n} tracks", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
