"""The seed's recommendation model, as the 2023 notebook did it, for comparison only.

pandas reads the features; z-scores with the population std; ``KMeans(n_clusters=5)`` (then-default
n_init=10, fitted twice as the notebook did: ``fit`` then ``fit_predict``); the full N x N euclidean
distance matrix; melted to a long table (song A, song B, distance); self pairs dropped; ranked per
song with pandas' default ``rank`` (average, hence the half ranks). The CSV is not written: the
comparison is kinder to the seed than the seed was. Prints one JSON line: seconds of the stage
(everything after the imports), rows, peak RSS.

    python benchmarks/seed_model.py IN.parquet
"""

from __future__ import annotations

import json
import resource
import sys
import time

began = time.perf_counter()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.spatial.distance import pdist, squareform  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402

FEATURES = ["danceability", "energy", "loudness", "valence"]


def main(path: str) -> None:
    imported = time.perf_counter()
    data = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    songs = data["track_id"].to_numpy()
    x = np.array(data[FEATURES])
    x_norm = (x - x.mean(axis=0)) / x.std(axis=0)
    kmeans = KMeans(n_clusters=5, n_init=10).fit(x_norm)
    kmeans.fit_predict(x_norm)
    matrix = pd.DataFrame(squareform(pdist(x_norm)), index=songs, columns=songs)
    matrix.index.name = "song_a"
    long = matrix.reset_index().melt(id_vars="song_a", var_name="song_b", value_name="distance")
    long = long[long["song_a"] != long["song_b"]]
    long["rank"] = long.groupby("song_a")["distance"].rank()
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "rows": len(long),
                "seconds": {"imports": imported - began, "stage": done - imported, "total": done - began},
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
