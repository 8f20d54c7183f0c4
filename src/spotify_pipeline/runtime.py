"""The runtime of one function instance: its settings and clients, and the stages it runs.

Read top-down: ``functions/<name>/main.py`` calls :mod:`spotify_pipeline.handlers` (parse the event,
filter it by name, apply the one error policy of :mod:`spotify_pipeline.policy`), which calls
:func:`run_stage` here: the registry :data:`RUNNERS` maps transform, recommend and load to their
stage cores. extract is started by a run request, not a manifest; its wiring (sources, chart gates)
is :func:`extract_sources` and :func:`chart_gate`. ``spotify-pipeline replay`` calls
:func:`run_stage` too, in its own process.

This is the edge where the environment is read (once per instance, through
:func:`spotify_pipeline.config.process_environment`) and clients are built; the stage cores
receive everything injected.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from spotify_pipeline import layout, logs
from spotify_pipeline.config import Settings, process_environment
from spotify_pipeline.errors import DataError
from spotify_pipeline.manifest import LoadSummary, Manifest, ManifestError, RecommendSummary, UpstreamRef
from spotify_pipeline.outcomes import Outbox, OutcomeBook
from spotify_pipeline.runlog import RunLog, StageRun
from spotify_pipeline.store import BucketStore, ConcurrentPublish, ObjectMismatch, RunScopedStore, StaleObject

if TYPE_CHECKING:
    import google.cloud.storage as gcs
    from google.cloud import bigquery

    from spotify_pipeline.events import ObjectRef, RunRequest
    from spotify_pipeline.extract import ChartGate, ChartObject, Sources
    from spotify_pipeline.gates import GateReport

INBOX_PREFIX = layout.INBOX_PREFIX
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
    """Settings and clients of one function instance, built lazily and reused across events: the
    bucket (``store``), the warehouse, the run log (``pipeline_runs``) and the outcome book."""

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
    """This instance's runtime, built on its first event."""
    global _RUNTIME
    if _RUNTIME is None:
        logs.configure()
        _RUNTIME = Runtime(env=process_environment())
    return _RUNTIME


# -- extract's wiring ---------------------------------------------------------------------------------


def extract_sources(rt: Runtime) -> Sources:
    """The clients extract may use, configured from the settings; none is built before it is needed."""
    from spotify_pipeline.extract import Sources
    from spotify_pipeline.sources.cache import Cache, GcsCacheBackend
    from spotify_pipeline.sources.credentials import with_spotify_credentials
    from spotify_pipeline.sources.http import RetryPolicy
    from spotify_pipeline.sources.reccobeats import ReccoBeatsApi
    from spotify_pipeline.spotify_api import SpotifyApi

    s = rt.settings
    policy = RetryPolicy(retry_after_cap=s.retry_after_cap_seconds, budget=s.retry_budget_seconds)
    return Sources(
        spotify=lambda: SpotifyApi(with_spotify_credentials(s), policy=policy),  # secrets read on first use
        reccobeats=lambda: ReccoBeatsApi(s.reccobeats_api_base, float(s.spotify_timeout_seconds), policy),
        read_chart=lambda ref: _read_chart(rt, ref),
        cache=Cache(GcsCacheBackend(rt.gcs_bucket) if s.cache_enabled else None),
    )


def _read_chart(rt: Runtime, ref: ObjectRef) -> ChartObject:
    """A chart file of the bucket, at the generation its event named (gone since: stale)."""
    from google.api_core.exceptions import NotFound

    from spotify_pipeline.extract import ChartObject

    uri = f"gs://{rt.settings.bucket}/{ref}"
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


# -- the stages a manifest starts ---------------------------------------------------------------------


# One stage on its upstream manifest: (runtime, manifest, its reference, the stage's row, force_gates) -> row counts.
StageRunner = Callable[[Runtime, Manifest, UpstreamRef, StageRun, "bool | None"], dict[str, int]]


def run_stage(
    rt: Runtime,
    stage: layout.Stage,
    manifest: Manifest,
    upstream: UpstreamRef,
    run: StageRun,
    *,
    force_gates: bool | None = None,
) -> dict[str, int]:
    """Run ``stage`` (:data:`RUNNERS`) on its upstream ``manifest`` (read from ``upstream``); return
    its row counts. Shared by the functions and ``spotify-pipeline replay``.

    A file of the input missing or altered while the input is still the current manifest was
    changed outside the pipeline: permanent (:class:`DataError`); otherwise the input was superseded
    meanwhile: stale.
    """
    uri = f"gs://{rt.settings.bucket}/{upstream.name}#{upstream.generation}"
    # What must still be current for a missing or altered input file to be a permanent error.
    inputs = [upstream] + ([manifest.upstream] if stage == "load" and manifest.upstream is not None else [])
    try:
        return RUNNERS[stage](rt, manifest, upstream, run, force_gates)
    except ObjectMismatch as exc:
        if all(rt.store.generation(i.name) == i.generation for i in inputs):
            raise DataError(
                f"{exc}; {uri} is still the current manifest, so the object was changed or deleted outside "
                "the pipeline: run the upstream stage again"
            ) from None
        raise  # its manifest was superseded meanwhile: stale


@contextmanager
def _run_folder(rt: Runtime, stage: layout.Stage, run_id: str, upstream: UpstreamRef) -> Iterator[RunScopedStore]:
    """The store a publishing stage writes through; nothing partial of a failed execution stays."""
    scoped = RunScopedStore(rt.store, stage, run_id)
    try:
        yield scoped
    except ConcurrentPublish as exc:  # publish deleted the folder already
        _resolve_conflict(rt, upstream, exc)
        raise
    except BaseException:
        scoped.abandon()
        raise


def _transform(
    rt: Runtime, manifest: Manifest, upstream: UpstreamRef, run: StageRun, force_gates: bool | None
) -> dict[str, int]:
    from spotify_pipeline.transform import run_transform

    with _run_folder(rt, "transform", manifest.run_id, upstream) as scoped:
        out, _ = run_transform(manifest, upstream, scoped, rt.now)
        return out.row_counts


def _recommend(
    rt: Runtime, manifest: Manifest, upstream: UpstreamRef, run: StageRun, force_gates: bool | None
) -> dict[str, int]:
    """The feature gates (:func:`spotify_pipeline.gates.check_features`) first: a failure skips only the
    model (its tables are written empty, the reason noted on ``run`` and in the manifests), so the
    week's chart data still loads; ``force_gates`` (replay's ``--force``; None: the run request's
    ``force_gates``) models anyway."""
    from spotify_pipeline.gates import check_features
    from spotify_pipeline.recommend import ModelParams, run_recommend

    s = rt.settings
    with _run_folder(rt, "recommend", manifest.run_id, upstream) as scoped:
        report = check_features(manifest, rt.store, s.gates, force=force_gates, clusters=s.n_clusters)
        skip = None if report.passed or report.forced else report.message()
        params = ModelParams(s.n_clusters, s.random_state, s.top_k, s.all_pairs_max_tracks)
        out, _ = run_recommend(manifest, upstream, scoped, params, rt.now, skip_reason=skip)
        run.note = RecommendSummary.of(out).model_skipped or (report.message() if report.forced else None)
        return out.row_counts


def _load(
    rt: Runtime, manifest: Manifest, upstream: UpstreamRef, run: StageRun, force_gates: bool | None
) -> dict[str, int]:
    from spotify_pipeline.load import run_load

    receipt, counts = run_load(manifest, upstream, rt.store, rt.bigquery, rt.settings.dataset, rt.now)
    run.note = LoadSummary.of(receipt).model_skipped or None
    _settle_loaded(rt, run, receipt)
    rt.runlog.outbox_flush()  # the warehouse is up: rows that waited for it go in now
    rt.outcomes.sweep(rt.settings.max_event_age_seconds)
    return counts


RUNNERS: dict[layout.Stage, StageRunner] = {  # the stages a manifest starts; extract is started by requests
    "transform": _transform,
    "recommend": _recommend,
    "load": _load,
}


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
