"""The one error policy of every entry point (extract, ingest, transform, recommend, load).

How a stage execution ends decides what happens to its event, what ``pipeline_runs`` records and
which run outcomes are decided (:mod:`spotify_pipeline.outcomes`):

* **stale** (:class:`~spotify_pipeline.store.StaleObject`: its input was superseded or already
  computed): one info line, acknowledged; the runs it leaves behind are superseded;
* **permanent** (:class:`~spotify_pipeline.errors.PermanentError`, an invalid event or manifest): one
  error line, a ``failed`` row, the runs it carried failed, acknowledged (retrying cannot fix it);
* **transient** (anything else): one error line with the traceback, a ``retrying`` row, and the
  error re-raised, marked as logged (functions-framework's own report of it is dropped), so the
  event is redelivered.

Which runs a failure decides depends on where the stage stands: extract's run request has no week
yet (:class:`RequestOutcome`); the later stages act on a week (:class:`WeekOutcome`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from spotify_pipeline import layout, logs
from spotify_pipeline.errors import PermanentError
from spotify_pipeline.events import InvalidEvent
from spotify_pipeline.manifest import ManifestError
from spotify_pipeline.outcomes import REQUEST, manifest_runs, superseded_reason
from spotify_pipeline.runtime import REPLAY_SOURCE, UNKNOWN_RUN
from spotify_pipeline.store import StaleObject

if TYPE_CHECKING:
    from spotify_pipeline.runlog import StageRun
    from spotify_pipeline.runtime import Runtime

log = logging.getLogger("spotify_pipeline")
T = TypeVar("T")

# How a stage ended, as a `status` field of its log line (the alerts' log-based metrics filter on it).
STATUS_FAILED = {"status": "failed"}
STATUS_RETRYING = {"status": "retrying"}
PERMANENT = (PermanentError, InvalidEvent, ManifestError)


@dataclass
class Settle:
    """What a stage's stale input or permanent failure decides of its runs' outcomes."""

    rt: Runtime
    run: StageRun

    def superseded(self, exc: StaleObject) -> None:
        raise NotImplementedError

    def failed(self, reason: str) -> None:
        raise NotImplementedError


def apply(rt: Runtime, run: StageRun, body: Callable[[], T], settle: Settle) -> T | None:
    """Run a stage ``body`` under the policy: its result, or None when the event is acknowledged
    (stale or permanent); a transient error is recorded and re-raised. Success is the caller's to
    record (extract records one row per week it published)."""
    try:
        return body()
    except StaleObject as exc:
        log.info("%s: superseded, nothing to do: %s", run.stage, exc)
        settle.superseded(exc)
    except PERMANENT as exc:
        log.error(
            "%s failed permanently (acknowledged, not retried): %s", run.stage, exc, extra={"fields": STATUS_FAILED}
        )
        rt.runlog.record(run.row("failed", rt.now(), error=str(exc)))
        settle.failed(str(exc))
    except Exception as exc:
        log.exception("%s failed; the event will be redelivered: %s", run.stage, exc, extra={"fields": STATUS_RETRYING})
        rt.runlog.record(run.row("retrying", rt.now(), error=f"{type(exc).__name__}: {exc}"))
        logs.mark_logged(exc)
        raise
    return None


class RequestOutcome(Settle):
    """extract: its run request is decided as a whole (week ``request``): no week was published."""

    def superseded(self, exc: StaleObject) -> None:
        run = self.run
        self.rt.outcomes.settle(run.run_id, REQUEST, "superseded", run.stage, reason=str(exc), trigger=run.trigger)

    def failed(self, reason: str) -> None:
        run = self.run
        self.rt.outcomes.settle(run.run_id, REQUEST, "failed", run.stage, reason=reason, trigger=run.trigger)


class WeekOutcome(Settle):
    """transform, recommend, load: the runs whose markets their input week carries."""

    def failed(self, reason: str) -> None:
        """A permanent failure decides the run's outcome, and that of the runs whose markets it carried."""
        run = self.run
        if run.run_id != UNKNOWN_RUN and run.snapshot_date is not None:
            self.rt.outcomes.settle_all(
                run.runs,
                run.snapshot_date.isoformat(),
                "failed",
                run.stage,
                reason=reason,
                own=run.run_id,
                trigger=run.trigger,
            )

    def superseded(self, exc: StaleObject) -> None:
        """The runs of that input whose markets the week's current extract manifest still holds go on
        in the current chain (it decides them); the others were replaced market for market by a later
        run: superseded by it."""
        rt, run = self.rt, self.run
        if run.run_id == UNKNOWN_RUN or run.snapshot_date is None or run.sources.get(REPLAY_SOURCE):
            return
        try:
            current, _, _ = rt.store.read_manifest(layout.manifest_name("extract", run.snapshot_date))
        except (StaleObject, ManifestError):
            return
        going_on = manifest_runs(current)
        for run_id in dict.fromkeys([run.run_id, *run.runs]):
            if run_id not in going_on:
                rt.outcomes.settle(
                    run_id,
                    run.snapshot_date.isoformat(),
                    "superseded",
                    run.stage,
                    reason=superseded_reason(current.run_id),
                    superseded_by=current.run_id,
                    trigger=run.trigger,
                )
