"""What each Cloud Function does with its event: parse, filter, run the stage core, record.

This is the edge where the environment is read (once per instance) and clients are built;
the stage cores below it receive everything injected. ``functions/*/main.py`` call into here.

extract is started two ways, with one core (:func:`spotify_pipeline.extract.run_extract`):

* a run request on the ticks topic (``messagePublished``): :func:`handle_tick`;
* a chart file finalized at ``inbox/<anything>.csv`` (``storage.object.v1.finalized``):
  :func:`handle_inbox`, as if a tick had named the file. A gen2 function has one trigger, so in
  the cloud this is a second deployment of the extract source, ``ingest`` (entry point
  ``ingest``), triggered by the bucket's finalize events; it ignores every other object by name.
  :func:`handle_extract_event` dispatches on the CloudEvent type, so either entry point accepts both.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from spotify_pipeline import layout, logs
from spotify_pipeline.config import Settings, process_environment
from spotify_pipeline.errors import DataError, PermanentError
from spotify_pipeline.events import (
    RUN_ID_RE,
    InvalidEvent,
    decode_pubsub_payload,
    parse_event_time,
    parse_run_request,
    parse_storage_event,
)
from spotify_pipeline.manifest import (
    ExtractSummary,
    LoadSummary,
    Manifest,
    ManifestError,
    RecommendSummary,
    UpstreamRef,
)
from spotify_pipeline.outcomes import REQUEST, Outbox, OutcomeBook, manifest_runs, superseded_reason
from spotify_pipeline.runlog import RunLog, StageRun
from spotify_pipeline.sources import ChartSource
from spotify_pipeline.store import BucketStore, ConcurrentPublish, ObjectMismatch, RunScopedStore, StaleObject

if TYPE_CHECKING:
    import google.cloud.storage as gcs
    from cloudevents.http import CloudEvent
    from google.cloud import bigquery

    from spotify_pipeline.events import ObjectRef, RunRequest
    from spotify_pipeline.extract import ChartGate, Sources
    from spotify_pipeline.gates import GateReport

log = logging.getLogger("spotify_pipeline")

INBOX_PREFIX = layout.INBOX_PREFIX
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
# How a stage ended, as a `status` field of its log line (the alerts' log-based metrics filter on it).
STATUS_FAILED = {"status": "failed"}
STATUS_RETRYING = {"status": "retrying"}
# A manifest whose sources carry this key was written by `spotify-pipeline replay`, which runs the
# next stages itself (in its own process); the functions leave such manifests alone.
REPLAY_SOURCE = "replay"
UNKNOWN_RUN = "unknown"  # the run id of a stage whose manifest could not be read


def is_inbox_chart(name: str) -> bool:
    """A chart file dropped for a run: ``inbox/<anything>.csv`` (decided by name alone)."""
    return name.startswith(INBOX_PREFIX) and name.lower().endswith(".csv") and len(name) > len(INBOX_PREFIX) + 4


def inbox_run_id(name: str, generation: int) -> str:
    """The run id of a chart file finalized in ``inbox/``: one per object generation, so a redelivered
    event keeps it and a new upload of the same name gets a new one (``inbox put --wait`` follows it)."""
    return "gcs-" + hashlib.sha256(f"{name}#{generation}".encode()).hexdigest()[:16]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Settings and clients of one function instance, built lazily and reused across events."""

    env: Mapping[str, str]
    now: Callable[[], datetime] = utc_now

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    @cached_property
    def storage(self) -> gcs.Client:
        from spotify_pipeline.clients import storage_client

        return storage_client(self.settings.project, self.env)

    @cached_property
    def store(self) -> BucketStore:
        return BucketStore(self.storage, self.settings.bucket)

    @cached_property
    def gcs_bucket(self) -> gcs.Bucket:
        return self.storage.bucket(self.settings.bucket)

    @cached_property
    def bigquery(self) -> bigquery.Client:
        from spotify_pipeline.clients import bigquery_client

        return bigquery_client(self.settings.project, self.settings.bq_location, self.env)

    @cached_property
    def runlog(self) -> RunLog:
        return RunLog(
            lambda: self.bigquery, f"{self.settings.project}.{self.settings.dataset}", Outbox(lambda: self.gcs_bucket)
        )

    @cached_property
    def outcomes(self) -> OutcomeBook:
        return OutcomeBook(lambda: self.gcs_bucket, self.runlog.insert, self.now)


_RUNTIME: Runtime | None = None


def runtime() -> Runtime:
    global _RUNTIME
    if _RUNTIME is None:
        logs.configure()
        _RUNTIME = Runtime(env=process_environment())
    return _RUNTIME


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


def _finish(rt: Runtime, run: StageRun, fn: Callable[[], dict[str, int]]) -> None:
    """Run a stage body and record how it ended. Permanent errors are acknowledged, others retried.

    Each outcome is one log line (the event's fields come from :func:`logs.context`); a transient
    error is re-raised marked as logged, so functions-framework's own report of it is dropped. A
    permanent error decides the run's outcome (and that of the runs whose markets it carried); a
    superseded input may decide it too (:func:`_settle_superseded`).
    """
    try:
        counts = fn()
    except StaleObject as exc:
        log.info("%s: superseded, nothing to do: %s", run.stage, exc)
        _settle_superseded(rt, run)
        return
    except (PermanentError, InvalidEvent, ManifestError) as exc:
        log.error(
            "%s failed permanently (acknowledged, not retried): %s", run.stage, exc, extra={"fields": STATUS_FAILED}
        )
        rt.runlog.record(run.row("failed", rt.now(), error=str(exc)))
        if run.run_id != UNKNOWN_RUN and run.snapshot_date is not None:
            rt.outcomes.settle_all(
                run.runs,
                run.snapshot_date.isoformat(),
                "failed",
                run.stage,
                reason=str(exc),
                own=run.run_id,
                trigger=run.trigger,
            )
        return
    except Exception as exc:
        log.exception("%s failed; the event will be redelivered: %s", run.stage, exc, extra={"fields": STATUS_RETRYING})
        rt.runlog.record(run.row("retrying", rt.now(), error=f"{type(exc).__name__}: {exc}"))
        logs.mark_logged(exc)
        raise
    log.info("%s succeeded: %s", run.stage, counts, extra={"fields": {"row_counts": counts, "status": "succeeded"}})
    rt.runlog.record(run.row("succeeded", rt.now(), counts))


def _settle_superseded(rt: Runtime, run: StageRun) -> None:
    """A stage found its input superseded. The runs of that input whose markets the week's current
    extract manifest still holds go on in the current chain (it decides them); the others were
    replaced market for market by a later run: superseded by it."""
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


def tick_run_id(message_id: str, publish_time: str) -> str:
    """The run id of a request that names none: from its Pub/Sub message id and publish time."""
    return "ps-" + hashlib.sha256(f"{message_id}|{publish_time}".encode()).hexdigest()[:16]


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
        extra={"fields": {"field": exc.field, "value": exc.value, "run_id": run_id, **STATUS_FAILED}},
    )
    rt.runlog.record(
        StageRun(run_id=run_id, stage="extract", started_at=now, trigger=where).row("failed", now, error=str(exc))
    )
    rt.outcomes.settle(run_id, REQUEST, "failed", "extract", reason=f"refused: {exc}", trigger=where)


def handle_extract_event(cloud_event: CloudEvent, rt: Runtime | None = None) -> None:
    """Either trigger of the extract source: a storage event goes to :func:`handle_inbox`, anything else
    is a run request."""
    if cloud_event.get("type") == STORAGE_FINALIZED:
        handle_inbox(cloud_event, rt)
    else:
        handle_tick(cloud_event, rt)


def extract_sources(rt: Runtime) -> Sources:
    """The clients extract may use, configured from the settings; none is built before it is needed."""
    from spotify_pipeline.extract import ChartObject, Sources
    from spotify_pipeline.sources.cache import Cache, GcsCacheBackend
    from spotify_pipeline.sources.credentials import with_spotify_credentials
    from spotify_pipeline.sources.http import RetryPolicy
    from spotify_pipeline.sources.reccobeats import ReccoBeatsApi
    from spotify_pipeline.spotify_api import SpotifyApi

    s = rt.settings
    policy = RetryPolicy(retry_after_cap=s.retry_after_cap_seconds, budget=s.retry_budget_seconds)

    def read_chart(ref: ObjectRef) -> ChartObject:
        from google.api_core.exceptions import NotFound

        from spotify_pipeline.errors import DataError

        uri = f"gs://{s.bucket}/{ref}"
        try:
            blob = rt.gcs_bucket.get_blob(ref.name, generation=ref.generation)
            data = blob.download_as_bytes() if blob is not None else None  # the blob pins its generation
        except NotFound:
            blob, data = None, None
        if blob is None or data is None:
            if ref.generation is not None:
                raise StaleObject(f"{uri} no longer exists at that generation (replaced or deleted)")
            raise DataError(f"chart file {uri} not found; upload it to the data bucket first")
        updated = blob.updated.isoformat() if blob.updated is not None else None
        return ChartObject(data, int(blob.generation or 0), updated)

    return Sources(
        spotify=lambda: SpotifyApi(with_spotify_credentials(s), policy=policy),  # secrets read on first use
        reccobeats=lambda: ReccoBeatsApi(s.reccobeats_api_base, float(s.spotify_timeout_seconds), policy),
        read_chart=read_chart,
        cache=Cache(GcsCacheBackend(rt.gcs_bucket) if s.cache_enabled else None),
    )


def retry_command(request: RunRequest, snapshot: date, bucket: str) -> str:
    """The `spotify-pipeline run` command that repeats ``request`` for ``snapshot`` past the chart gates."""
    args = [f"--snapshot-date {snapshot.isoformat()}"]
    if request.markets:
        args.append("--markets " + ",".join(request.markets))
    if request.charts_csv is not None:
        args.append(f"--charts-csv gs://{bucket}/{request.charts_csv.name}")
    return "spotify-pipeline run " + " ".join(args) + " --force-gates"


def chart_gate(rt: Runtime) -> ChartGate:
    """The chart gates as extract calls them: bound to the bucket (previous weeks) and the thresholds."""
    from spotify_pipeline.gates import check_chart

    def check(
        request: RunRequest,
        snapshot: date,
        entries_per_market: dict[str, int],
        duplicate_ranks: tuple[tuple[str, int, int], ...],
    ) -> GateReport:
        return check_chart(
            rt.store,
            rt.settings.gates,
            snapshot=snapshot,
            chart_source=request.chart_source,
            entries_per_market=entries_per_market,
            duplicate_ranks=duplicate_ranks,
            requested_markets=request.markets,
            force=request.force_gates,
            next_step=retry_command(request, snapshot, rt.settings.bucket),
        )

    return check


def _run_extract(rt: Runtime, request: RunRequest, trigger: str) -> None:
    """Run extract and record one ``pipeline_runs`` row per snapshot written (a chart file may hold several).

    Permanent errors are recorded and acknowledged; anything else is recorded and raised (redelivery).
    Whatever the outcome, nothing of a failed execution stays in the bucket (its run folders are
    deleted); a snapshot another execution published meanwhile is left to it.
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
    scoped = RunScopedStore(rt.store, "extract", request.run_id)
    rt.outcomes.sweep(rt.settings.max_event_age_seconds)
    rt.outcomes.touch(request.run_id, REQUEST, "extract")
    with logs.context(
        stage="extract",
        run_id=run.run_id,
        trigger=trigger,
        snapshot_date=str(run.snapshot_date) if run.snapshot_date else None,
    ):
        try:
            results = run_extract(
                request, scoped, extract_sources(rt), rt.now, bucket=rt.settings.bucket, chart_gate=chart_gate(rt)
            )
        except StaleObject as exc:
            scoped.abandon()
            log.info("extract: superseded, nothing to do: %s", exc)
            rt.outcomes.settle(request.run_id, REQUEST, "superseded", "extract", reason=str(exc), trigger=trigger)
            return
        except (PermanentError, InvalidEvent, ManifestError) as exc:
            scoped.abandon()
            log.error(
                "extract failed permanently (acknowledged, not retried): %s", exc, extra={"fields": STATUS_FAILED}
            )
            rt.runlog.record(run.row("failed", rt.now(), error=str(exc)))
            rt.outcomes.settle(request.run_id, REQUEST, "failed", "extract", reason=str(exc), trigger=trigger)
            return
        except Exception as exc:
            scoped.abandon()
            log.exception("extract failed; the event will be redelivered: %s", exc, extra={"fields": STATUS_RETRYING})
            rt.runlog.record(run.row("retrying", rt.now(), error=f"{type(exc).__name__}: {exc}"))
            logs.mark_logged(exc)
            raise
        for manifest, _ in results:
            summary = ExtractSummary.of(manifest)
            own = [p for p in manifest.parts if p.run_id == request.run_id]
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
                trigger=trigger,
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
        rt.outcomes.close(run.run_id, REQUEST)  # open now for each week it published


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
        _finish(rt, run, lambda: _stage_body(rt, stage, obj.name, obj.generation, ref, run))


def _stage_body(
    rt: Runtime, stage: layout.Stage, name: str, generation: int, ref: layout.ManifestRef, run: StageRun
) -> dict[str, int]:
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


def run_stage(
    rt: Runtime,
    stage: layout.Stage,
    manifest: Manifest,
    upstream: UpstreamRef,
    run: StageRun,
    *,
    force_gates: bool | None = None,
) -> dict[str, int]:
    """Run ``stage`` on its upstream ``manifest`` (read from ``upstream``); return its row counts.

    Shared by the functions and ``spotify-pipeline replay``. recommend first runs the feature gates
    (:func:`spotify_pipeline.gates.check_features`): a failure skips only the model (its tables are
    written empty, the reason noted on ``run`` and in the manifests), so the week's chart data still
    loads; ``force_gates`` (replay's ``--force``; None: the run request's ``force_gates``) models anyway.
    """
    uri = f"gs://{rt.settings.bucket}/{upstream.name}#{upstream.generation}"
    # What must still be current for a missing or altered input file to be a permanent error.
    inputs = [upstream] + ([manifest.upstream] if stage == "load" and manifest.upstream is not None else [])
    s = rt.settings
    try:
        if stage == "load":
            from spotify_pipeline.load import run_load

            receipt, counts = run_load(manifest, upstream, rt.store, rt.bigquery, s.dataset, rt.now)
            run.note = LoadSummary.of(receipt).model_skipped or None
            _settle_loaded(rt, run, receipt)
            rt.runlog.outbox_flush()  # the warehouse is up: rows that waited for it go in now
            rt.outcomes.sweep(s.max_event_age_seconds)
            return counts
        scoped = RunScopedStore(rt.store, stage, manifest.run_id)
        try:
            if stage == "transform":
                from spotify_pipeline.transform import run_transform

                out, _ = run_transform(manifest, upstream, scoped, rt.now)
                return out.row_counts
            from spotify_pipeline.gates import check_features
            from spotify_pipeline.recommend import ModelParams, run_recommend

            report = check_features(manifest, rt.store, s.gates, force=force_gates, clusters=s.n_clusters)
            skip = None if report.passed or report.forced else report.message()
            params = ModelParams(s.n_clusters, s.random_state, s.top_k, s.all_pairs_max_tracks)
            out, _ = run_recommend(manifest, upstream, scoped, params, rt.now, skip_reason=skip)
            run.note = RecommendSummary.of(out).model_skipped or (report.message() if report.forced else None)
            return out.row_counts
        except ConcurrentPublish as exc:
            _resolve_conflict(rt, upstream, exc)
            raise
        except BaseException:
            scoped.abandon()  # nothing partial stays: not the files of a failed execution
            raise
    except ObjectMismatch as exc:
        if all(rt.store.generation(i.name) == i.generation for i in inputs):
            raise DataError(
                f"{exc}; {uri} is still the current manifest, so the object was changed or deleted outside "
                "the pipeline: run the upstream stage again"
            ) from None
        raise  # its manifest was superseded meanwhile: stale


def _settle_loaded(rt: Runtime, run: StageRun, receipt: Manifest) -> None:
    """This load execution finished: every run of the week it loaded that is not decided yet
    succeeded. The execution's own run is credited with it; the others (a run whose own chain was
    superseded by a later run of the week, or a newer manifest this load caught up with) say which
    run's load brought their markets in. Stage rows stay one per execution: their outcome says it."""
    summary = LoadSummary.of(receipt)
    runs = summary.runs or {}
    markets = ", ".join(sorted(summary.entries_per_market or {}))
    for run_id in dict.fromkeys([run.run_id, *runs]):
        note = None if run_id == run.run_id else f"loaded by the load of run {run.run_id} (week now {markets})"
        rt.outcomes.settle(
            run_id, receipt.snapshot_date.isoformat(), "succeeded", "load", reason=note, trigger=run.trigger
        )


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


def _resolve_conflict(rt: Runtime, upstream: UpstreamRef, exc: ConcurrentPublish) -> None:
    """This execution lost the race to publish. Stale (acknowledged) when its input was superseded
    or when the winner published from the same input (a duplicate delivery); otherwise returns, and
    the caller re-raises ``exc`` as transient: the winner worked from an older input, so the event
    is redelivered and published again from the current one."""
    current = rt.store.generation(upstream.name)
    if current != upstream.generation:
        raise StaleObject(f"{exc}; its input {upstream.name}#{upstream.generation} was superseded meanwhile")
    try:
        winner, generation, _ = rt.store.read_manifest(exc.name)
    except (StaleObject, ManifestError):
        return
    if winner.upstream is not None and (winner.upstream.name, winner.upstream.generation) == (
        upstream.name,
        upstream.generation,
    ):
        raise StaleObject(
            f"{exc.name}#{generation} was published from the same input by a concurrent delivery of this event"
        )
