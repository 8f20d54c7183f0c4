"""Follow a run to its outcome: the one follower of ``run``, ``trigger --wait``, ``inbox put --wait``
and ``backfill``.

The outcome is read from the bucket (``runs/outcomes/<run id>/``, decided exactly once, see
:mod:`spotify_pipeline.outcomes`), so the follower ends even while the warehouse is down; the
stages' ``pipeline_runs`` rows are printed as they appear, for progress. Every poll is bounded by
what is left of ``--timeout``, and a poll that fails (an emulator restarting, a 404 for a job the
restarted warehouse forgot) is retried at the next round, never raised.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spotify_pipeline.config import Settings
from spotify_pipeline.outcomes import OUTCOMES_PREFIX, REQUEST, RunOutcome

POLL_SECONDS = 0.5  # the outcome, from the bucket (cheap)
ROWS_EVERY_SECONDS = 2.0  # the stage rows, from the warehouse (a query job each: progress only)
ROWS_GRACE_SECONDS = 5.0  # after the outcome, how long to wait for the stage rows that report it
DONE = ("succeeded", "superseded")  # the run's markets are in the tables (its own, or a later run's)


@dataclass(frozen=True)
class Verdict:
    """How a followed run ended: ``ok`` when every week succeeded or was superseded."""

    ok: bool
    reason: str = ""


def run_verdict(outcomes: Sequence[RunOutcome], expected_weeks: int = 1) -> Verdict | None:
    """Is this run done, and how: decided when the request itself was decided (refused, failed or
    abandoned before any week) or when ``expected_weeks`` weeks were (a chart file may hold several);
    None while it goes on."""
    request = [o for o in outcomes if o.week == REQUEST]
    weeks = sorted((o for o in outcomes if o.week != REQUEST), key=lambda o: o.week)
    if request:
        return Verdict(False, _said(request[0]))
    if len(weeks) < expected_weeks:
        return None
    bad = [o for o in weeks if o.outcome not in DONE]
    if bad:
        many = len(weeks) > 1
        return Verdict(False, "; ".join(f"{o.week + ' ' if many else ''}{_said(o)}" for o in bad))
    return Verdict(True)


def _said(o: RunOutcome) -> str:
    return f"{o.outcome} at {o.stage}: {o.reason}"


def _outcomes(bucket: Any, run_id: str, left: float) -> list[RunOutcome]:
    from google.api_core.retry import Retry

    retry = Retry(timeout=left)
    blobs = bucket.client.list_blobs(bucket.name, prefix=f"{OUTCOMES_PREFIX}{run_id}/", timeout=left, retry=retry)
    return [RunOutcome.from_bytes(b.download_as_bytes(timeout=left, retry=retry)) for b in blobs]


class _Rows:
    """The run's ``pipeline_runs`` rows, printed once each as they appear."""

    def __init__(self, client: Any, settings: Settings, run_id: str, several_weeks: bool) -> None:
        from google.cloud import bigquery

        table = f"`{settings.project}.{settings.dataset}.pipeline_runs`"
        self.sql = (
            f"SELECT stage, status, duration_seconds, row_counts, error, snapshot_date FROM {table} "
            "WHERE run_id = @r ORDER BY finished_at"
        )
        self.config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("r", "STRING", run_id)])
        self.client = client
        self.several_weeks = several_weeks
        self.rows: list[Any] = []
        self.error: Exception | None = None

    def poll(self, left: float) -> None:
        from google.cloud import bigquery

        try:
            retry = bigquery.DEFAULT_RETRY.with_timeout(left)  # job_retry off: it would retry for 10 minutes
            job = self.client.query(self.sql, job_config=self.config, retry=retry, timeout=left, job_retry=None)
            rows = list(job.result(timeout=left, retry=retry, job_retry=None))
        except Exception as exc:
            self.error = exc
            return
        self.error = None
        for row in rows[len(self.rows) :]:
            counts = json.loads(row["row_counts"]) if row["row_counts"] else {}
            detail = ", ".join(f"{k}={v}" for k, v in counts.items()) if row["status"] == "succeeded" else row["error"]
            week = f"{row['snapshot_date']}  " if self.several_weeks and row["snapshot_date"] else ""
            print(
                f"  {week}{row['stage']:<10} {row['status']:<9} {row['duration_seconds']:6.2f} s  {detail}", flush=True
            )
            if row["status"] == "succeeded" and row["error"]:
                print(f"             NOTE {row['error']}", flush=True)  # model skipped, forced gates, merged
        self.rows = rows

    def loads(self) -> int:
        return sum(1 for r in self.rows if r["stage"] == "load" and r["status"] == "succeeded")


def wait_for_run(
    client: Any,
    settings: Settings,
    run_id: str,
    timeout: float,
    *,
    expected_loads: int = 1,
    env: Mapping[str, str],
) -> int:
    """Follow ``run_id`` until its outcome is decided for every week (or the request) or ``timeout``
    passes; 0 when every week succeeded or was superseded by a later run."""
    from spotify_pipeline.clients import storage_client

    bucket = storage_client(settings.project, env).bucket(settings.bucket)
    deadline = time.monotonic() + timeout
    rows = _Rows(client, settings, run_id, expected_loads > 1)
    outcomes: list[RunOutcome] = []
    unreachable: Exception | None = None
    rows_due = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= rows_due:
            rows.poll(max(1.0, deadline - time.monotonic()))
            rows_due = time.monotonic() + ROWS_EVERY_SECONDS
        try:
            outcomes = _outcomes(bucket, run_id, max(1.0, deadline - time.monotonic()))
            unreachable = None
        except Exception as exc:
            unreachable = exc
        verdict = run_verdict(outcomes, expected_loads)
        if verdict is not None:
            rows.poll(max(1.0, deadline - time.monotonic()))
            # The stage rows that report it follow the outcome by a moment: print them if they come.
            loads = sum(1 for o in outcomes if o.outcome == "succeeded" and o.stage == "load" and not o.reason)
            grace = min(deadline, time.monotonic() + ROWS_GRACE_SECONDS)
            while rows.loads() < loads and time.monotonic() < grace:
                time.sleep(POLL_SECONDS)
                rows.poll(max(1.0, grace - time.monotonic()))
            return _report(run_id, rows.rows, outcomes, verdict)
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    last = f"last stage reported: {rows.rows[-1]['stage']}" if rows.rows else "no stage reported yet"
    away = unreachable or rows.error
    if away is not None:
        first = str(away).splitlines()[0][:200] if str(away) else type(away).__name__
        last += f"; the stack could not be read: {first} (is it up? `spotify-pipeline stack status`)"
    print(f"run {run_id} did not finish within {timeout:.0f} s ({last}); see the function logs", file=sys.stderr)
    return 1


def _report(run_id: str, rows: Sequence[Any], outcomes: Sequence[RunOutcome], verdict: Verdict) -> int:
    for o in sorted(outcomes, key=lambda o: o.week):
        if o.outcome == "superseded" or (o.outcome == "succeeded" and o.reason):
            print(f"  {o.week}  {_said(o)}", flush=True)
    if not verdict.ok:
        print(f"run {run_id} {verdict.reason}", file=sys.stderr)
        return 1
    seconds: dict[str, float] = {}
    loaded: dict[str, int] = {}
    for row in rows:
        seconds[row["stage"]] = seconds.get(row["stage"], 0.0) + float(row["duration_seconds"])
        if row["stage"] == "load" and row["status"] == "succeeded" and row["row_counts"]:
            for name, n in json.loads(row["row_counts"]).items():
                loaded[name] = loaded.get(name, 0) + n
    if not loaded:
        # Its markets are in the tables, loaded by another run's load, or replaced by a later run's.
        how = "; ".join(f"{o.week} {o.outcome}" + (f" ({o.reason})" if o.reason else "") for o in outcomes)
        print(f"\nrun {run_id} ended without a load of its own: {how}")
        return 0
    print(f"\nrun {run_id} complete. Rows loaded per table:")
    for name, n in sorted(loaded.items()):
        print(f"  {name:<16} {n:>8}")
    print("Seconds per stage: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))
    return 0
