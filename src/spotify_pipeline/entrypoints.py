"""What each Cloud Function does with its event: parse, filter, run the stage core, record.

This is the edge where the environment is read (once per instance) and clients are built;
the stage cores below it receive everything injected. ``functions/*/main.py`` call into here.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from spotify_pipeline import layout, logs
from spotify_pipeline.config import Settings
from spotify_pipeline.errors import PermanentError
from spotify_pipeline.events import InvalidEvent, decode_pubsub_payload, parse_run_request, parse_storage_event
from spotify_pipeline.manifest import ManifestError, UpstreamRef
from spotify_pipeline.runlog import RunLog, StageRun
from spotify_pipeline.store import BucketStore, StaleObject

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent
    from google.cloud import bigquery

log = logging.getLogger("spotify_pipeline")


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
    def store(self) -> BucketStore:
        from spotify_pipeline.clients import storage_client

        return BucketStore(storage_client(self.settings.project, self.env), self.settings.bucket)

    @cached_property
    def bigquery(self) -> bigquery.Client:
        from spotify_pipeline.clients import bigquery_client

        return bigquery_client(self.settings.project, self.settings.bq_location, self.env)

    @cached_property
    def runlog(self) -> RunLog:
        return RunLog(self.bigquery, f"{self.settings.project}.{self.settings.dataset}.pipeline_runs")


_RUNTIME: Runtime | None = None


def runtime() -> Runtime:
    global _RUNTIME
    if _RUNTIME is None:
        logs.configure()
        _RUNTIME = Runtime(env=dict(os.environ))
    return _RUNTIME


def _event_time(cloud_event: CloudEvent) -> datetime | None:
    raw = cloud_event.get("time")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


def _too_old(rt: Runtime, when: datetime | None, what: str) -> bool:
    if when is None:
        return False
    age = (rt.now() - when).total_seconds()
    if age > rt.settings.max_event_age_seconds:
        log.error(
            "dropping %s: %.0f s old, older than PIPELINE_MAX_EVENT_AGE_SECONDS=%d; retries end here",
            what,
            age,
            rt.settings.max_event_age_seconds,
        )
        return True
    return False


def _finish(rt: Runtime, run: StageRun, fn: Callable[[], dict[str, int]]) -> None:
    """Run a stage body and record how it ended. Permanent errors are acknowledged, others retried."""
    fields = {"stage": run.stage, "run_id": run.run_id, "snapshot_date": str(run.snapshot_date), "trigger": run.trigger}
    try:
        counts = fn()
    except StaleObject as exc:
        log.info("%s: superseded, nothing to do: %s", run.stage, exc, extra={"fields": fields})
        return
    except (PermanentError, InvalidEvent, ManifestError) as exc:
        log.error("%s failed permanently (acknowledged, not retried): %s", run.stage, exc, extra={"fields": fields})
        rt.runlog.record(run.row("failed", rt.now(), error=str(exc)))
        return
    except Exception as exc:
        log.exception("%s failed; the event will be redelivered: %s", run.stage, exc, extra={"fields": fields})
        rt.runlog.record(run.row("retrying", rt.now(), error=f"{type(exc).__name__}: {exc}"))
        raise
    log.info("%s succeeded: %s", run.stage, counts, extra={"fields": {**fields, "row_counts": counts}})
    rt.runlog.record(run.row("succeeded", rt.now(), counts))


def handle_tick(cloud_event: CloudEvent, rt: Runtime | None = None) -> None:
    """extract: a Pub/Sub run request."""
    from spotify_pipeline.extract import run_extract
    from spotify_pipeline.spotify_api import SpotifyApi

    rt = rt or runtime()
    data: Mapping[str, Any] = cloud_event.data or {}
    message = data.get("message") if isinstance(data, Mapping) else None
    message = message if isinstance(message, Mapping) else {}  # decode_pubsub_payload reports the shape
    message_id = str(message.get("messageId") or message.get("message_id") or cloud_event["id"])
    where = f"Pub/Sub message {message_id}"
    if _too_old(rt, _event_time(cloud_event), where):
        return
    try:
        payload = decode_pubsub_payload(data, where)
        # A redelivered message keeps its id, so it keeps its run id.
        default_run_id = "ps-" + hashlib.sha256(message_id.encode()).hexdigest()[:16]
        request = parse_run_request(
            payload, rt.settings, default_run_id=default_run_id, today=rt.now().date(), where=where
        )
    except InvalidEvent as exc:
        log.error(
            "rejected run request (acknowledged, nothing written): %s",
            exc,
            extra={"fields": {"stage": "extract", "field": exc.field, "value": exc.value}},
        )
        return
    run = StageRun(
        run_id=request.run_id,
        stage="extract",
        started_at=rt.now(),
        snapshot_date=request.snapshot_date,
        trigger=where,
        sources={"chart_source": request.chart_source, "feature_source": ",".join(request.feature_providers)},
    )

    def body() -> dict[str, int]:
        manifest, _ = run_extract(request, SpotifyApi(rt.settings), rt.store, rt.now)
        return {"raw_objects": len(manifest.files)}

    _finish(rt, run, body)


def handle_object(stage: layout.Stage, cloud_event: CloudEvent, rt: Runtime | None = None) -> None:
    """transform, recommend, load: act on the upstream stage's manifest, ignore everything else."""
    rt = rt or runtime()
    try:
        obj = parse_storage_event(cloud_event.data, cloud_event.get("time"))
    except InvalidEvent as exc:
        log.error("%s: malformed storage event (acknowledged): %s", stage, exc)
        return
    ref = layout.parse_manifest_name(obj.name)
    if ref is None or ref.stage != layout.UPSTREAM[stage] or obj.bucket != rt.settings.bucket:
        return  # not ours: decided by name alone, the object is never read
    if _too_old(rt, obj.event_time, obj.uri):
        return
    run = StageRun(run_id="unknown", stage=stage, started_at=rt.now(), snapshot_date=ref.snapshot_date, trigger=obj.uri)

    def body() -> dict[str, int]:
        manifest, generation, sha = rt.store.read_manifest(obj.name, obj.generation)
        run.run_id, run.sources = manifest.run_id, dict(manifest.sources)
        if manifest.stage != ref.stage or manifest.snapshot_date != ref.snapshot_date:
            raise ManifestError(
                f"{obj.uri}: manifest says {manifest.stage}/{manifest.snapshot_date}, "
                f"its name says {ref.stage}/{ref.snapshot_date}"
            )
        upstream = UpstreamRef(obj.name, generation, sha)
        s = rt.settings
        if stage == "transform":
            from spotify_pipeline.transform import run_transform

            out, _ = run_transform(manifest, upstream, rt.store, rt.now)
            return out.row_counts
        if stage == "recommend":
            from spotify_pipeline.recommend import ModelParams, run_recommend

            params = ModelParams(s.n_clusters, s.random_state, s.top_k, s.all_pairs_max_tracks)
            out, _ = run_recommend(manifest, upstream, rt.store, params, rt.now)
            return out.row_counts
        from spotify_pipeline.load import run_load

        _, counts = run_load(manifest, upstream, rt.store, rt.bigquery, s.dataset, rt.now)
        return counts

    _finish(rt, run, body)
