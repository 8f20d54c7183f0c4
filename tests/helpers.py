"""Helpers shared by the emulator-backed tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from spotify_pipeline.clients import bigquery_client, storage_client
from spotify_pipeline.config import Settings
from spotify_pipeline.schema import tables
from spotify_pipeline_tools.cli.follow import wait_for_run
from spotify_pipeline_tools.cli.publish import publish_tick
from spotify_pipeline_tools.stack.local import StackState


def settings(state: StackState) -> Settings:
    return Settings.from_env(state.env())


def bq(state: StackState) -> Any:
    return bigquery_client("local-project", "US", state.env())


def gcs(state: StackState) -> Any:
    return storage_client("local-project", state.env())


def run_pipeline(state: StackState, snapshot: date, run_id: str, timeout: float = 120.0, **extra: Any) -> str:
    """Publish a tick like Cloud Scheduler does and wait for load; return the Pub/Sub message id."""
    message = {"snapshot_date": snapshot.isoformat(), "run_id": run_id, **extra}
    message_id = publish_tick(state.env(), state, message)
    assert wait_for_run(bq(state), settings(state), run_id, timeout, env=state.env()) == 0, f"run {run_id} did not load"
    return message_id


def query(state: StackState, sql: str, **params: Any) -> list[dict[str, Any]]:
    from google.cloud import bigquery

    cfg = bigquery.QueryJobConfig(
        default_dataset="local-project.spotify_charts",
        query_parameters=[
            bigquery.ScalarQueryParameter(k, "DATE" if isinstance(v, date) else "STRING", v) for k, v in params.items()
        ],
    )
    return [dict(r.items()) for r in bq(state).query(sql, job_config=cfg).result()]


def snapshot_tables(state: StackState, snapshot: date) -> dict[str, list[str]]:
    """Every data table's rows of one snapshot, canonically serialised and sorted."""
    out = {}
    for name, spec in tables().items():
        if name == "pipeline_runs":
            continue
        rows = query(state, f"SELECT * FROM `{name}` WHERE {spec.partition_field} = @d", d=snapshot)
        out[name] = sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
    return out


def bucket_objects(state: StackState) -> dict[str, int]:
    """The bucket's data objects (the runs' bookkeeping under ``runs/`` left out: see :func:`outcomes_of`)."""
    return {
        b.name: int(b.generation)
        for b in gcs(state).list_blobs("spotify-pipeline-local")
        if not b.name.startswith("runs/")
    }


def outcomes_of(state: StackState, run_id: str) -> dict[str, tuple[str, str | None]]:
    """The outcomes decided for ``run_id`` in the bucket: week -> (outcome, reason)."""
    from spotify_pipeline.outcomes import OUTCOMES_PREFIX, RunOutcome

    blobs = gcs(state).list_blobs("spotify-pipeline-local", prefix=f"{OUTCOMES_PREFIX}{run_id}/")
    decided = [RunOutcome.from_bytes(b.download_as_bytes()) for b in blobs]
    return {o.week: (o.outcome, o.reason) for o in decided}


def runs(state: StackState, run_id: str) -> list[dict[str, Any]]:
    return query(
        state, "SELECT stage, status, error FROM pipeline_runs WHERE run_id = @r ORDER BY finished_at", r=run_id
    )


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def ensure_loaded(state: StackState, day: date, run_id: str) -> None:
    """A demo run of ``day`` under ``run_id``, unless an earlier test of the session did it."""
    done = query(
        state,
        "SELECT COUNT(*) AS n FROM pipeline_runs WHERE run_id = @r AND stage = 'load' AND status = 'succeeded'",
        r=run_id,
    )
    if not done[0]["n"]:
        run_pipeline(state, day, run_id, timeout=180)


def ops(state: StackState, *argv: str) -> int:
    """``spotify-pipeline <argv>`` (replay, backfill, status) against the session's stack, in-process."""
    from spotify_pipeline_tools.cli.main import main

    return main(["--stack-dir", str(state.root), *argv])


CLI = Path(sys.executable).parent / "spotify-pipeline"  # the installed console script


def cli(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``spotify-pipeline ARGV`` as a user types it, in a process of its own, from ``cwd``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_PIPELINE_")}
    return subprocess.run(
        [str(CLI), *argv], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=180
    )


def error_lines(stderr: str) -> list[str]:
    """stderr without the target line every command starts with."""
    return [line for line in stderr.splitlines() if not line.startswith("target: ")]
