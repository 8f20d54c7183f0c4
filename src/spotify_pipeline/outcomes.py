"""Every run ends with exactly one recorded outcome per week: succeeded, failed, superseded or abandoned.

A *run* is one run request (a tick, a chart file dropped in ``inbox/``, ``spotify-pipeline run``);
it covers one week, or each week a chart file holds. Its outcome for a week is decided once:

* **succeeded**: the load that brought its markets into the tables finished (its own chain's, or
  that of a later run of the week that carried its markets along, see :mod:`spotify_pipeline.extract`);
* **failed**: a stage failed permanently (the reason says where and why), or the request was refused
  (week ``request``: decided before any week existed);
* **superseded**: a later run of the week replaced every market it brought (``superseded_by``);
* **abandoned**: its events aged out (older than ``PIPELINE_MAX_EVENT_AGE_SECONDS``, the bound past
  which Eventarc stops redelivering) before the run could finish.

"Exactly once" is decided in the bucket, not the warehouse: the outcome is the object
``runs/outcomes/<run id>/<week>.json`` written with ``ifGenerationMatch=0``, so of two executions
deciding at once only one wins. The row in ``run_outcomes`` follows it; when the warehouse cannot
take a row (outcome or ``pipeline_runs``), the row waits under ``runs/pending/`` and the next load
writes it, after checking it is not already there (:class:`Outbox`). A run that stops with no
execution left to decide it (a process killed for good, the local stack left down) is found by
:meth:`OutcomeBook.sweep`: every stage execution touches ``runs/open/<week>/<run id>``; a week
with no activity for longer than the event-age bound (plus a margin for redelivery gaps) is
abandoned, for every run still open on it. Extract and load sweep on each execution.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from spotify_pipeline.manifest import Manifest, WeekSummary

if TYPE_CHECKING:
    import google.cloud.storage as gcs

log = logging.getLogger(__name__)

Outcome = Literal["succeeded", "failed", "superseded", "abandoned"]
REQUEST = "request"  # the week of an outcome decided before any week was published
OUTCOMES_PREFIX = "runs/outcomes/"
OPEN_PREFIX = "runs/open/"
PENDING_PREFIX = "runs/pending/"
OUTCOMES_TABLE = "run_outcomes"
RUNS_TABLE = "pipeline_runs"
GCS_SECONDS = 10.0  # one bookkeeping call: bounded, it must never hold a stage


def outcome_name(run_id: str, week: str) -> str:
    return f"{OUTCOMES_PREFIX}{run_id}/{week}.json"


def open_name(run_id: str, week: str) -> str:
    return f"{OPEN_PREFIX}{week}/{run_id}"


def superseded_reason(by: str) -> str:
    return f"run {by} replaced or removed every market this run brought to the week"


def manifest_runs(manifest: Manifest) -> dict[str, list[str]]:
    """The runs whose markets a manifest's week holds, with their markets (the newest run last)."""
    if manifest.stage == "extract":
        return {p.run_id: list(p.markets) for p in manifest.week_parts()}
    return WeekSummary.of(manifest).runs or {manifest.run_id: []}


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    week: str  # ISO date, or REQUEST
    outcome: Outcome
    stage: str  # where it was decided
    decided_at: str  # ISO timestamp
    reason: str | None = None
    superseded_by: str | None = None
    trigger: str | None = None

    def row(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "snapshot_date": None if self.week == REQUEST else self.week,
            "outcome": self.outcome,
            "stage": self.stage,
            "decided_at": self.decided_at,
            "reason": self.reason,
            "superseded_by": self.superseded_by,
            "trigger": self.trigger,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RunOutcome:
        return cls(**json.loads(data))


# Inserts one row into a table (by short name); raises when the warehouse does not take it.
Insert = Callable[[str, dict[str, object]], None]


class OutcomeBook:
    """Decides outcomes (once), records them, and keeps the open-run markers the sweep reads."""

    def __init__(self, bucket: Callable[[], gcs.Bucket], insert: Insert, now: Callable[[], datetime]) -> None:
        # A factory, as RunLog's client: building the client can fail too, inside each call's own handling.
        self._bucket = bucket
        self._insert = insert
        self._now = now

    @property
    def bucket(self) -> gcs.Bucket:
        return self._bucket()

    def touch(self, run_id: str, week: str, stage: str) -> None:
        """An execution of ``stage`` works on ``week`` for ``run_id``: the week is alive."""
        body = json.dumps({"run_id": run_id, "week": week, "stage": stage, "at": self._now().isoformat()})
        try:
            self.bucket.blob(open_name(run_id, week)).upload_from_string(
                body, content_type="application/json", timeout=GCS_SECONDS
            )
        except Exception as exc:  # bookkeeping must not fail the stage; the sweep is only later
            log.warning("could not mark run %s open for %s: %s", run_id, week, exc)

    def close(self, run_id: str, week: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(open_name(run_id, week)).delete(timeout=GCS_SECONDS)
        except NotFound:
            pass
        except Exception as exc:
            log.warning("could not clear the open mark of run %s for %s: %s", run_id, week, exc)

    def settle(
        self,
        run_id: str,
        week: str,
        outcome: Outcome,
        stage: str,
        *,
        reason: str | None = None,
        superseded_by: str | None = None,
        trigger: str | None = None,
    ) -> bool:
        """Decide ``run_id``'s outcome for ``week`` unless it is decided already; True when this call
        decided it. Its row goes to ``run_outcomes`` now, or waits in the outbox."""
        from google.api_core.exceptions import PreconditionFailed

        decision = RunOutcome(run_id, week, outcome, stage, self._now().isoformat(), reason, superseded_by, trigger)
        name = outcome_name(run_id, week)
        try:
            # The pending mark comes first, so a process killed after deciding still gets its row written.
            mark = self.bucket.blob(f"{PENDING_PREFIX}outcome.{run_id}.{week}.{secrets.token_hex(4)}.json")
            mark.upload_from_string(json.dumps({"outcome": name}), content_type="application/json", timeout=GCS_SECONDS)
            try:
                self.bucket.blob(name).upload_from_string(
                    decision.to_bytes(), content_type="application/json", if_generation_match=0, timeout=GCS_SECONDS
                )
            except PreconditionFailed:
                mark.delete(timeout=GCS_SECONDS)  # decided before: the decider records it
                self.close(run_id, week)
                return False
        except Exception as exc:
            log.error("could not record the outcome of run %s for %s (%s): %s", run_id, week, outcome, exc)
            return False
        self.close(run_id, week)
        log.info(
            "run %s %s for %s%s",
            run_id,
            outcome,
            week,
            f" (by run {superseded_by})" if superseded_by else "",
            extra={"fields": {"run_id": run_id, "outcome": outcome, "week": week}},
        )
        try:
            self._insert(OUTCOMES_TABLE, decision.row())
        except Exception as exc:
            log.warning("outcome of run %s waits in %s: %s", run_id, mark.name, exc)
            return True
        try:
            mark.delete(timeout=GCS_SECONDS)
        except Exception as exc:  # the flush finds the row present and only removes the mark
            log.warning("could not remove %s: %s", mark.name, exc)
        return True

    def settle_all(
        self,
        runs: Iterable[str],
        week: str,
        outcome: Outcome,
        stage: str,
        *,
        reason: str,
        own: str,
        trigger: str | None,
    ) -> list[str]:
        """Settle ``own`` and every other run of the week still undecided (runs whose markets ``own``'s
        chain carried); the others' reason says so. Returns the runs this call decided."""
        decided = []
        for run_id in dict.fromkeys([own, *runs]):
            why = reason if run_id == own else f"with run {own}, which carried this run's markets: {reason}"
            if self.settle(run_id, week, outcome, stage, reason=why, trigger=trigger):
                decided.append(run_id)
        return decided

    def open_runs(self) -> dict[str, dict[str, datetime]]:
        """Open marks: week -> run id -> when last touched."""
        weeks: dict[str, dict[str, datetime]] = {}
        for blob in self.bucket.client.list_blobs(self.bucket.name, prefix=OPEN_PREFIX, timeout=GCS_SECONDS):
            week, _, run_id = blob.name[len(OPEN_PREFIX) :].partition("/")
            if run_id and blob.updated is not None:
                weeks.setdefault(week, {})[run_id] = blob.updated
        return weeks

    def sweep(self, max_event_age_seconds: int) -> list[tuple[str, str]]:
        """Abandon every run of each week nothing has touched for longer than the event-age bound
        (plus a margin for the gaps between redeliveries): no event of it can arrive any more."""
        margin = min(600, max_event_age_seconds)
        bound = timedelta(seconds=max_event_age_seconds + margin)
        abandoned = []
        try:
            weeks = self.open_runs()
        except Exception as exc:
            log.warning("could not list open runs: %s", exc)
            return []
        now = self._now()
        for week, runs in sorted(weeks.items()):
            last = max(runs.values())
            if now - last <= bound:
                continue
            reason = (
                f"no stage worked on it since {last.isoformat(timespec='seconds')}: its events aged out "
                f"(PIPELINE_MAX_EVENT_AGE_SECONDS={max_event_age_seconds}); run it again"
            )
            for run_id in sorted(runs):
                if self.settle(run_id, week, "abandoned", "sweep", reason=reason):
                    abandoned.append((run_id, week))
                else:
                    self.close(run_id, week)
        return abandoned

    def abandon_run(self, run_id: str, stage: str, reason: str, trigger: str | None) -> None:
        """A run request too old to act on: abandon each week it still has open, or the request."""
        try:
            weeks = [w for w, runs in self.open_runs().items() if run_id in runs]
            decided = any(
                True
                for _ in self.bucket.client.list_blobs(
                    self.bucket.name, prefix=f"{OUTCOMES_PREFIX}{run_id}/", max_results=1, timeout=GCS_SECONDS
                )
            )
        except Exception as exc:
            log.warning("could not read the marks of run %s: %s", run_id, exc)
            return
        for week in weeks or ([] if decided else [REQUEST]):
            self.settle(run_id, week, "abandoned", stage, reason=reason, trigger=trigger)


class Outbox:
    """Rows the warehouse could not take, kept in the bucket until it can (written by load)."""

    def __init__(self, bucket: Callable[[], gcs.Bucket]) -> None:
        self._bucket = bucket

    @property
    def bucket(self) -> gcs.Bucket:
        return self._bucket()

    def keep(self, table: str, row: dict[str, object]) -> None:
        name = f"{PENDING_PREFIX}row.{row.get('run_id')}.{secrets.token_hex(6)}.json"
        body = json.dumps({"table": table, "row": row}, sort_keys=True)
        try:
            bucket = self.bucket
            bucket.blob(name).upload_from_string(body, content_type="application/json", timeout=GCS_SECONDS)
            log.warning("row of run %s for %s waits in gs://%s/%s", row.get("run_id"), table, bucket.name, name)
        except Exception as exc:
            log.error("could not keep a %s row of run %s (lost): %s %s", table, row.get("run_id"), exc, body)

    def flush(self, present: Callable[[str, dict[str, object]], bool], insert: Insert) -> int:
        """Write every waiting row that is not in its table yet; return how many were written."""
        from google.api_core.exceptions import NotFound

        written = 0
        for blob in list(self.bucket.client.list_blobs(self.bucket.name, prefix=PENDING_PREFIX, timeout=GCS_SECONDS)):
            try:
                body: dict[str, Any] = json.loads(blob.download_as_bytes(timeout=GCS_SECONDS))
                if "outcome" in body:
                    decision = self.bucket.get_blob(body["outcome"], timeout=GCS_SECONDS)
                    if decision is None:  # killed before deciding: nothing was decided, nothing to write
                        blob.delete(timeout=GCS_SECONDS)
                        continue
                    table, row = OUTCOMES_TABLE, RunOutcome.from_bytes(decision.download_as_bytes()).row()
                else:
                    table, row = body["table"], body["row"]
                if not present(table, row):
                    insert(table, row)
                    written += 1
                blob.delete(timeout=GCS_SECONDS)
            except NotFound:
                continue  # a concurrent flush took it
            except Exception as exc:
                log.warning("%s still waits: %s", blob.name, exc)
                break  # the warehouse is still away: the next load tries again
        return written
