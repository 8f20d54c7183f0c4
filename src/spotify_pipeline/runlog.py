"""``pipeline_runs``: one row per stage execution, streamed into BigQuery."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from google.cloud import bigquery

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


class RunLog:
    def __init__(self, client: Callable[[], bigquery.Client], table_id: str) -> None:
        # A factory: building the client (credentials) can fail too, and must not fail the stage.
        self._client = client
        self.table_id = table_id

    def record(self, row: dict[str, object]) -> None:
        # The record must not turn a finished stage into a retried one: failures to write it are logged only.
        from google.cloud import bigquery

        try:
            # Bounded: with the warehouse unreachable, the stage must not hang on its record for the
            # client's default 10 minutes of retries (its event would be redelivered meanwhile).
            errors = self._client().insert_rows_json(
                self.table_id, [row], retry=bigquery.DEFAULT_RETRY.with_timeout(RECORD_TIMEOUT_SECONDS), timeout=10
            )
        except Exception as exc:
            log.error("could not record stage run in %s: %s", self.table_id, exc)
            return
        if errors:
            log.error("could not record stage run in %s: %s", self.table_id, errors)

    def succeeded(self, run_id: str, stage: str) -> bool:
        """Whether ``run_id`` already has a succeeded ``stage`` row (False when it cannot be read)."""
        from google.cloud import bigquery

        sql = f"SELECT COUNT(*) AS n FROM `{self.table_id}` WHERE run_id = @r AND stage = @s AND status = 'succeeded'"
        params = [
            bigquery.ScalarQueryParameter("r", "STRING", run_id),
            bigquery.ScalarQueryParameter("s", "STRING", stage),
        ]
        try:
            job = self._client().query(
                sql,
                job_config=bigquery.QueryJobConfig(query_parameters=params),
                retry=bigquery.DEFAULT_RETRY.with_timeout(RECORD_TIMEOUT_SECONDS),
            )
            return bool(next(iter(job.result(timeout=RECORD_TIMEOUT_SECONDS)))["n"])
        except Exception as exc:
            log.warning("could not read %s: %s", self.table_id, exc)
            return False
