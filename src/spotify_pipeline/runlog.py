"""``pipeline_runs``: one row per stage execution, streamed into BigQuery (and ``run_outcomes`` rows)."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

from spotify_pipeline import schema
from spotify_pipeline.outcomes import RUNS_TABLE

if TYPE_CHECKING:
    from google.cloud import bigquery

    from spotify_pipeline.outcomes import Outbox

log = logging.getLogger(__name__)
RECORD_TIMEOUT_SECONDS = 10.0
Status = Literal["succeeded", "failed", "retrying"]


@dataclass
class StageRun:
    run_id: str
    stage: str
    started_at: datetime
    snapshot_date: date | None = None
    trigger: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    # Recorded in `error` when the stage succeeds with something to say (forced past failed gates).
    note: str | None = None
    runs: tuple[str, ...] = ()  # every run whose markets the stage's input holds (a merged week)

    def row(
        self, status: Status, finished_at: datetime, row_counts: dict[str, int] | None = None, error: str | None = None
    ) -> dict[str, object]:
        counts = row_counts or {}
        return {
            "run_id": self.run_id,
            "snapshot_date": self.snapshot_date.isoformat() if self.snapshot_date else None,
            "stage": self.stage,
            "status": status,
            "started_at": self.started_at.isoformat(),
            "finished_at": finished_at.isoformat(),
            "duration_seconds": round((finished_at - self.started_at).total_seconds(), 3),
            "rows": sum(counts.values()) if counts else None,
            "row_counts": json.dumps(counts, sort_keys=True) if counts else None,
            "chart_source": self.sources.get("chart_source"),
            "feature_source": self.sources.get("feature_source"),
            "trigger": self.trigger,
            "error": error if error is not None else self.note,
        }


def new_run_id(kind: str, now: datetime) -> str:
    """``run-20261127T101500-a1b2c3``: sortable, a valid run id, and unique without any counter (the
    CLI names its runs itself, so ids stay unique when a fresh emulator numbers messages from 1 again)."""
    return f"{kind}-{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


# What makes a row the same row when the outbox writes it late (no duplicates).
ROW_KEYS = {
    "pipeline_runs": ("run_id", "stage", "status", "started_at", "finished_at"),
    "run_outcomes": ("run_id", "snapshot_date"),
}


class RunLog:
    """Rows of ``pipeline_runs`` and ``run_outcomes``, streamed into the dataset.

    A row the warehouse does not take is kept by ``outbox`` (in the bucket) and written by a later
    load: the record of a finished stage is never lost, and never turns it into a retried one.
    """

    def __init__(self, client: Callable[[], bigquery.Client], dataset_id: str, outbox: Outbox | None = None) -> None:
        # A factory: building the client (credentials) can fail too, and must not fail the stage.
        self._client = client
        self.dataset_id = dataset_id
        self.outbox = outbox

    @property
    def table_id(self) -> str:
        return f"{self.dataset_id}.{RUNS_TABLE}"

    def insert(self, table: str, row: dict[str, object]) -> None:
        """Stream one row into ``table``; raises when it was not taken."""
        from google.cloud import bigquery

        # Bounded: with the warehouse unreachable, the stage must not hang on its record for the
        # client's default 10 minutes of retries (its event would be redelivered meanwhile).
        key = json.dumps([row.get(k) for k in ROW_KEYS[table]], default=str)
        errors = self._client().insert_rows_json(
            f"{self.dataset_id}.{table}",
            [row],
            row_ids=[hashlib.sha256(key.encode()).hexdigest()[:32]],  # BigQuery drops a retried duplicate
            retry=bigquery.DEFAULT_RETRY.with_timeout(RECORD_TIMEOUT_SECONDS),
            timeout=10,
        )
        if errors:
            raise RuntimeError(f"{self.dataset_id}.{table} refused the row: {errors}")

    def record(self, row: dict[str, object]) -> None:
        try:
            self.insert(RUNS_TABLE, row)
        except Exception as exc:
            log.error("could not record stage run in %s: %s", self.table_id, exc)
            if self.outbox is not None:
                self.outbox.keep(RUNS_TABLE, row)

    def outbox_flush(self) -> int:
        """Write the rows that waited in the outbox (called once the warehouse answered)."""
        if self.outbox is None:
            return 0
        try:
            return self.outbox.flush(self.present, self.insert)
        except Exception as exc:
            log.warning("rows still wait in the outbox: %s", exc)
            return 0

    def present(self, table: str, row: dict[str, object]) -> bool:
        """Whether ``table`` already holds ``row`` (by its key columns); raises when it cannot tell."""
        from google.cloud import bigquery

        types = {c.name: c.type for c in schema.table(table).columns}
        conds, params = [], []
        for i, column in enumerate(ROW_KEYS[table]):
            if row.get(column) is None:
                conds.append(f"`{column}` IS NULL")
                continue
            conds.append(f"`{column}` = @p{i}")
            params.append(bigquery.ScalarQueryParameter(f"p{i}", types[column], str(row[column])))
        sql = f"SELECT COUNT(*) AS n FROM `{self.dataset_id}.{table}` WHERE " + " AND ".join(conds)
        retry = bigquery.DEFAULT_RETRY.with_timeout(RECORD_TIMEOUT_SECONDS)
        job = self._client().query(
            sql, job_config=bigquery.QueryJobConfig(query_parameters=params), retry=retry, job_retry=None
        )
        return bool(next(iter(job.result(timeout=RECORD_TIMEOUT_SECONDS, retry=retry)))["n"])
