"""Recommend: clusters and exact ranked neighbours, from 143 tracks to a whole catalogue
(docs/recommendations.md has the long form).

Read top-down: :mod:`.catalogue` (the model input: distinct tracks, z-scores, markets),
:mod:`.knn` (exact nearest neighbours, streamed in chunks), :mod:`.model` (clusters and the
recommendation rows), :mod:`.writers` (Parquet to the bucket), :mod:`.stage` (``run_recommend``,
what the function runs). The ``recommend`` command (cli_recommend) runs the same model.
"""

from __future__ import annotations

from spotify_pipeline.recommend.catalogue import Catalogue, Markets, catalogue
from spotify_pipeline.recommend.knn import nearest_neighbours, neighbour_chunks
from spotify_pipeline.recommend.model import (
    ModelParams,
    ModelResult,
    build_model_tables,
    cluster_tables,
    recommendations_schema,
    run_model,
    wire_schema,
)
from spotify_pipeline.recommend.stage import run_recommend


def preload() -> None:
    """Import the model's heavy dependencies now (they load lazily on first use otherwise)."""
    import scipy.spatial
    import sklearn.cluster
    import threadpoolctl  # type: ignore[import-untyped, unused-ignore]

    del scipy, sklearn, threadpoolctl


__all__ = [
    "Catalogue",
    "Markets",
    "ModelParams",
    "ModelResult",
    "build_model_tables",
    "catalogue",
    "cluster_tables",
    "nearest_neighbours",
    "neighbour_chunks",
    "preload",
    "recommendations_schema",
    "run_model",
    "run_recommend",
    "wire_schema",
]
