"""What each Cloud Function does with its event: parse, filter, run the stage under the one error
policy (:mod:`spotify_pipeline.policy`), record. ``functions/*/main.py`` call into here.

extract is started two ways, with one core (:func:`spotify_pipeline.extract.run_extract`):

* a run request on the ticks topic (``messagePublished``): :func:`handle_tick`;
* a chart file finalized at ``inbox/<anything>.csv`` (``storage.object.v1.finalized``):
  :func:`handle_inbox`, as if a tick had named the file. A gen2 function has one trigger, so in
  the cloud this is a second deployment of the extract source, ``ingest`` (entry point
  ``ingest``), triggered by the bucket's finalize events; it ignores every other object by name.
  :func:`handle_extract_event` dispatches on the CloudEvent type, so either entry point accepts both.

transform, recommend and load act on their upstream stage's manifest (:func:`handle_object`), through
the stage registry of :mod:`spotify_pipeline.runtime`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from spotify_pipeline import layout, logs, policy
from spotify_pipeline.events import (
    RUN_ID_RE,
    InvalidEvent,
    decode_pubsub_payload,
    parse_event_time,
    parse_run_request,
    parse_storage_event,
)
from spotify_pipeline.manifest import ExtractSummary, Manifest, ManifestError, UpstreamRef
from spotify_pipeline.outcomes import REQUEST, manifest_runs, superseded_reason
from spotify_pipeline.runlog import StageRun
from spotify_pipeline.runtime import (
    REPLAY_SOURCE,
    UNKNOWN_RUN,
    Runtime,
    chart_gate,
    extract_sources,
    inbox_run_id,
    is_inbox_chart,
    run_stage,
    runtime,
)
from spotify_pipeline.sources import ChartSource
from spotify_pipeline.store import RunScopedStore, StaleObject

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

    from spotify_pipeline.events import RunRequest

log = logging.getLogger("spotify_pipeline")

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"


def _event_time(cloud_event: CloudEvent) -> datetime | None:
    return parse_event_time(cloud_event.get("time"))


def _too_old(rt: Runtime, when: datetime | None, what: str) -> str | None:
    """Why an event is too old to act on (logged once), or None when it is not."""
    if when is None:
        return None
    age = (rt.now() - when).total_seconds()
    if age > rt.settings.max_event_age_seconds:
        log.error(
            "dropping %s: %.0f s old, older than PIPELINE_MAX_EVENT_AGE_SECONDS=%d; acknowledged, retries end here",
            what,
            age,
            rt.settings.max_event_age_seconds,
            extra={"fields": {"event_time": when.isoformat(), "age_seconds": round(age)}},
        )
        return (
            f"its event ({what}) was {age:.0f} s old, older than "
            f"PIPELINE_MAX_EVENT_AGE_SECONDS={rt.settings.max_event_age_seconds}; run it again"
        )
    return None


# -- extract and ingest: a run request ----------------------------------------------------------------


def tick_run_id(message_id: str, publish_time: str) -> str:
    """The run id of a request that names none: from its Pub/Sub message id and publish time."""
    return "ps-" + hashlib.sha256(f"{message_id}|{publish_time}".encode()).hexdigest()[:16]


def handle_extract_event(cloud_event: CloudEvent, rt: Runtime | None = None) -> None:
    """Either trigger of the extract source: a storage event goes to :func:`handle_inbox`, anything else
    is a run request."""
    if cloud_event.get("type") == STORAGE_FINALIZED:
        handle_inbox(cloud_event, rt)
    else:
        handle_tick(cloud_event, rt)


def handle_tick(cloud_event: CloudEvent, rt: Runtime | None = None) -> None:
    """extract: a Pub/Sub run request."""

    rt = rt or runtime()
    data: Mapping[str, Any] = cloud_event.data if isinstance(cloud_event.data, Mapping) else {}
    message = data.get("message")
    message = message if isinstance(message, Mapping) else {}  # decode_pubsub_payload reports the shape
    message_id = str(message.get("messageId") or message.get("message_id") or cloud_event["id"])
    where = f"Pub/Sub message {message_id}"
    with logs.context(stage="extract", object=where):
        # A redelivered message keeps its id and publish time, so it keeps its run id; the publish time
        # keeps ids apart where message ids restart (a fresh Pub/Sub emulator numbers from 1 again).
        default_run_id = tick_run_id(message_id, str(message.get("publishTime") or message.get("publish_time") or ""))
        payload: Mapping[str, Any] = {}
        too_old = _too_old(rt, _event_time(cloud_event), where)
        try:
            payload = decode_pubsub_payload(data, where)
            if too_old:
                given = payload.get("run_id")
                run_id = given if isinstance(given, str) and RUN_ID_RE.match(given) else default_run_id
                rt.outcomes.abandon_run(run_id, "extract", too_old, where)
                return
            request = parse_run_request(
                payload, rt.settings, default_run_id=default_run_id, today=rt.now().date(), where=where
            )
        except InvalidEvent as exc:
            given = payload.get("run_id")
            run_id = given if isinstance(given, str) and RUN_ID_RE.match(given) else default_run_id
            if too_old:
                rt.outcomes.abandon_run(run_id, "extract", too_old, where)
            else:
                _refuse(rt, run_id, where, exc)
            return
        _run_extract(rt, request, where)


def handle_inbox(cloud_event: CloudEvent, rt: Runtime | None = None) -> None:
    """ingest: a chart file finalized in ``inbox/`` starts a run for that file, as a tick would.

    Every other object of the bucket is ignored by name, without being read; extract writes only
    under ``extract/`` and ``cache/``, so nothing it writes can start it again. The file is read at
    the event's generation and never deleted. A redelivered event keeps its run id.
    """
    rt = rt or runtime()
    try:
        obj = parse_storage_event(cloud_event.data, cloud_event.get("time"))
    except InvalidEvent as exc:
        with logs.context(stage="ingest"):
            log.error("ingest: malformed storage event (acknowledged): %s", exc)
        return
    if obj.bucket != rt.settings.bucket or not is_inbox_chart(obj.name):
        return  # not a chart file for us
    where = f"chart file {obj.uri}"
    with logs.context(stage="extract", object=obj.uri):
        default_run_id = inbox_run_id(obj.name, obj.generation)
        too_old = _too_old(rt, obj.event_time, where)
        if too_old:
            rt.outcomes.abandon_run(default_run_id, "extract", too_old, where)
            return
        try:
            request = parse_run_request(
                {"chart_source": ChartSource.CHARTS_CSV, "charts_csv": f"{obj.name}#{obj.generation}"},
                rt.settings,
                default_run_id=default_run_id,
                today=rt.now().date(),
                where=where,
            )
        except InvalidEvent as exc:
            _refuse(rt, default_run_id, where, exc)
            return
        _run_extract(rt, request, where)


def _refuse(rt: Runtime, run_id: str, where: str, exc: InvalidEvent) -> None:
    """A run request extract will not run: one error line and a failed ``pipeline_runs`` row for its
    run id with the reason (so whoever follows the run learns it at once), then acknowledged:
    retrying cannot fix it. Nothing is written to the bucket."""
    now = rt.now()
    log.error(
        "rejected run request (acknowledged, recorded as failed in pipeline_runs): %s",
        exc,
        extra={"fields": {"field": exc.field, "value": exc.value, "run_id": run_id, **policy.STATUS_FAILED}},
    )
    rt.runlog.record(
        StageRun(run_id=run_id, stage="extract", started_at=now, trigger=where).row("failed", now, error=str(exc))
    )
    rt.outcomes.settle(run_id, REQUEST, "failed", "extract", reason=f"refused: {exc}", trigger=where)


def _run_extract(rt: Runtime, request: RunRequest, trigger: str) -> None:
    """Run extract under the error policy and record one ``pipeline_runs`` row per snapshot written
    (a chart file may hold several). Whatever the outcome, nothing of a failed execution stays in the
    bucket (its run folders are deleted); a snapshot another execution published meanwhile is left to it.
    """
    from spotify_pipeline.extract import run_extract

    from_file = request.chart_source == ChartSource.CHARTS_CSV
    run = StageRun(
        run_id=request.run_id,
        stage="extract",
        started_at=rt.now(),
        snapshot_date=request.snapshot_date if request.snapshot_date_given or not from_file else None,
        trigger=trigger,
        sources={
            "chart_source": request.chart_source,
            "feature_source": ",".join(request.provider_chain(from_file)),
        },
    )

    def extract() -> list[tuple[Manifest, int]]:
        scoped = RunScopedStore(rt.store, "extract", request.run_id)
        try:
            return run_extract(
                request, scoped, extract_sources(rt), rt.now, bucket=rt.settings.bucket, chart_gate=chart_gate(rt)
            )
        except BaseException:
            scoped.abandon()  # nothing partial stays: not the files of a failed execution
            raise

    rt.outcomes.sweep(rt.settings.max_event_age_seconds)
    rt.outcomes.touch(request.run_id, REQUEST, "extract")
    with logs.context(
        stage="extract",
        run_id=run.run_id,
        trigger=trigger,
        snapshot_date=str(run.snapshot_date) if run.snapshot_date else None,
    ):
        results = policy.apply(rt, run, extract, policy.RequestOutcome(rt, run))
        if results is None:
            return
        for manifest, _ in results:
            _record_week(rt, run, manifest)
        rt.outcomes.close(run.run_id, REQUEST)  # open now for each week it published


def _record_week(rt: Runtime, run: StageRun, manifest: Manifest) -> None:
    """One week extract published: its ``pipeline_runs`` row and log line, its outcome opened, and the
    runs of the week it replaced market for market superseded."""
    summary = ExtractSummary.of(manifest)
    own = [p for p in manifest.parts if p.run_id == run.run_id]
    counts = {
        "raw_objects": len(own[-1].files) if own else 0,
        "chart_entries": sum(summary.run_entries_per_market.values()),
        "tracks": summary.distinct_tracks,
        "artists": summary.distinct_artists,
        "tracks_without_features": summary.tracks_without_features,
        "spotify_requests": summary.requests["spotify"],
        "reccobeats_requests": summary.requests["reccobeats"],
    }
    one = StageRun(
        run_id=run.run_id,
        stage="extract",
        started_at=run.started_at,
        snapshot_date=manifest.snapshot_date,
        trigger=run.trigger,
        sources={k: manifest.sources[k] for k in ("chart_source", "feature_source")},
    )
    # Finished when its manifest was written: transform may already be running (and recorded) by now.
    one.note = summary.gates_forced or None  # forced past failed chart gates: visible in the row
    row = one.row("succeeded", datetime.fromisoformat(manifest.finished_at), counts)
    row["rows"] = counts["raw_objects"]  # the other counts describe the snapshot, not objects written
    log.info(
        "extract succeeded: %s",
        counts,
        extra={
            "fields": {
                "snapshot_date": manifest.snapshot_date.isoformat(),
                "row_counts": counts,
                "status": "succeeded",
            }
        },
    )
    rt.runlog.record(row)
    week = manifest.snapshot_date.isoformat()
    rt.outcomes.touch(run.run_id, week, "extract")
    for other in summary.superseded_runs:
        reason = superseded_reason(run.run_id)
        rt.outcomes.settle(other, week, "superseded", "extract", reason=reason, superseded_by=run.run_id)


# -- transform, recommend, load: an upstream manifest -------------------------------------------------


def handle_object(stage: layout.Stage, cloud_event: CloudEvent, rt: Runtime | None = None) -> None:
    """transform, recommend, load: act on the upstream stage's manifest, ignore everything else."""
    rt = rt or runtime()
    try:
        obj = parse_storage_event(cloud_event.data, cloud_event.get("time"))
    except InvalidEvent as exc:
        with logs.context(stage=stage):
            log.error("%s: malformed storage event (acknowledged): %s", stage, exc)
        return
    ref = layout.parse_manifest_name(obj.name)
    if ref is None or ref.stage != layout.UPSTREAM[stage] or obj.bucket != rt.settings.bucket:
        return  # not ours: decided by name alone, the object is never read
    with logs.context(stage=stage, object=obj.uri, snapshot_date=ref.snapshot_date.isoformat()):
        too_old = _too_old(rt, obj.event_time, obj.uri)
        if too_old:
            _abandon_week(rt, stage, obj.name, obj.generation, too_old, obj.uri)
            return
        run = StageRun(
            run_id=UNKNOWN_RUN, stage=stage, started_at=rt.now(), snapshot_date=ref.snapshot_date, trigger=obj.uri
        )
        counts = policy.apply(
            rt, run, lambda: _on_manifest(rt, stage, obj.name, obj.generation, ref, run), policy.WeekOutcome(rt, run)
        )
        if counts is not None:
            log.info("%s succeeded: %s", stage, counts, extra={"fields": {"row_counts": counts, "status": "succeeded"}})
            rt.runlog.record(run.row("succeeded", rt.now(), counts))


def _on_manifest(
    rt: Runtime, stage: layout.Stage, name: str, generation: int, ref: layout.ManifestRef, run: StageRun
) -> dict[str, int]:
    """Read the upstream manifest at the event's generation, learn the run from it, and run ``stage``
    unless the manifest is replay's or its result is already published."""
    manifest, generation, sha = rt.store.read_manifest(name, generation)
    run.run_id, run.sources = manifest.run_id, dict(manifest.sources)
    run.runs = tuple(manifest_runs(manifest))
    logs.bind(run_id=manifest.run_id)
    if not manifest.sources.get(REPLAY_SOURCE):
        rt.outcomes.touch(manifest.run_id, ref.snapshot_date.isoformat(), stage)
    uri = f"gs://{rt.settings.bucket}/{name}#{generation}"
    if manifest.stage != ref.stage or manifest.snapshot_date != ref.snapshot_date:
        raise ManifestError(
            f"{uri}: manifest says {manifest.stage}/{manifest.snapshot_date}, "
            f"its name says {ref.stage}/{ref.snapshot_date}"
        )
    if manifest.sources.get(REPLAY_SOURCE):
        raise StaleObject(
            f"{uri} was written by `spotify-pipeline replay` (run {manifest.run_id}), which runs {stage} itself"
        )
    upstream = UpstreamRef(name, generation, sha)
    if stage != "load":
        # A redelivered event whose result is already published: nothing to redo, nothing cascades.
        # (load always runs again: it is the last stage and replacing a partition is idempotent.)
        own = layout.manifest_name(stage, ref.snapshot_date)
        try:
            done, done_generation, _ = rt.store.read_manifest(own)
        except (StaleObject, ManifestError):
            done = None
        if done is not None and done.upstream == upstream:
            raise StaleObject(f"gs://{rt.settings.bucket}/{own}#{done_generation} was already computed from {uri}")
    return run_stage(rt, stage, manifest, upstream, run)


def _abandon_week(rt: Runtime, stage: layout.Stage, name: str, generation: int, reason: str, trigger: str) -> None:
    """An event too old to act on: if its manifest is still the current one, nothing else will carry
    the week on, so every run of it still undecided is abandoned (a superseded one was taken over)."""
    try:
        manifest, _, _ = rt.store.read_manifest(name, generation)
    except (StaleObject, ManifestError):
        return
    for run_id in dict.fromkeys([manifest.run_id, *manifest_runs(manifest)]):
        rt.outcomes.settle(
            run_id, manifest.snapshot_date.isoformat(), "abandoned", stage, reason=reason, trigger=trigger
        )
