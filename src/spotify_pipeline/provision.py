"""Create the dataset and tables from the schema source (what Terraform does in the cloud)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spotify_pipeline.schema import tables

if TYPE_CHECKING:
    from google.cloud import bigquery


def ensure_dataset(client: bigquery.Client, dataset: str) -> None:
    from google.cloud import bigquery

    client.create_dataset(bigquery.Dataset(f"{client.project}.{dataset}"), exists_ok=True)
    for spec in tables().values():
        t = bigquery.Table(f"{client.project}.{dataset}.{spec.name}", schema=spec.bigquery_schema())
        t.description = spec.description
        t.time_partitioning = bigquery.TimePartitioning(field=spec.partition_field)
        t.clustering_fields = list(spec.clustering) or None
        client.create_table(t, exists_ok=True)
