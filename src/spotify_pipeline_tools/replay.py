"""Replay and backfill: re-run the past without calling Spotify, and load past weeks from a chart file.

Replay (``spotify-pipeline replay --from D1 --to D2 [--stage transform|recommend|load] [--force]``)
re-runs ``--stage`` and every later stage for each stored snapshot in the range, oldest first, one
snapshot at a time, from what the bucket already holds: extract's raw objects for ``transform``,
transform's tables for ``recommend``, recommend's for ``load``. It never calls an external API (the
raw objects include what extract took from its cache, so transform needs nothing else).

How: in this process, through the same stage code the functions run
(:func:`spotify_pipeline.runtime.run_stage`, gates included), against the bucket and dataset
the environment names (the local stack's emulators, or a deployed project through the official
clients and Application Default Credentials). The manifests it writes carry
``sources["replay"] = <replay run id>``, and the functions acknowledge and ignore such manifests, so
a replay and the deployed chain never both act on a snapshot: the replay runs the later stages
itself and follows each one. The model settings are this environment's (``PIPELINE_CLUSTERS``,
``PIPELINE_RANDOM_STATE``, ``PIPELINE_TOP_K``, ``PIPELINE_ALL_PAIRS_MAX_TRACKS``), which is the
point: change them, replay, and only the replayed snapshots' model tables change. Each stage
records a ``pipeline_runs`` row (run id ``replay-...``, trigger ``spotify-pipeline replay ...``).
Same inputs and settings give byte-identical files, so a replay leaves the tables a fresh run would.

Backfill (``spotify-pipeline backfill --charts-csv FILE --from D1 --to D2``) loads past weeks from a
chart file holding many dates (the Kaggle "Top Spotify Songs in 73 Countries" export: daily
snapshots). **Rule: one snapshot per ISO week (Monday to Sunday): the latest date of that week the
file holds within the range; its snapshot_date is that date** (a real chart day, never a made-up
one; a complete daily file gives the Sundays). Weeks without any date in the file are reported as
gaps. For each week, oldest first, the rows of that date (and ``--markets``) are written as a small
file of the same format under ``uploads/<backfill id>/<date>/`` (which starts nothing) and one run
request names it, so extract reads a few kilobytes instead of the whole export, and the gates of
each week compare it with the week before, already loaded.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import msgspec

from spotify_pipeline import layout
from spotify_pipeline.errors import PermanentError
from spotify_pipeline.events import InvalidEvent
from spotify_pipeline.gates import stored_snapshots
from spotify_pipeline.manifest import ManifestError, UpstreamRef
from spotify_pipeline.runlog import StageRun
from spotify_pipeline.sources import ChartSource
from spotify_pipeline.store import StaleObject

if TYPE_CHECKING:
    from spotify_pipeline.runtime import Runtime
    from spotify_pipeline.sources.charts_csv import ChartFile

REPLAYABLE: tuple[layout.Stage, ...] = ("transform", "recommend", "load")
REPLAY_TRIGGER = "spotify-pipeline replay"


# ------------------------------------------------------------------------ replay


@dataclass
class StageOutcome:
    stage: str
    status: str  # succeeded | failed
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    note: str | None = None


@dataclass
class SnapshotOutcome:
    snapshot_date: date
    stages: list[StageOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.stages) and all(s.status == "succeeded" for s in self.stages)


def replay_plan(rt: Runtime, start: layout.Stage, first: date, last: date) -> list[date]:
    """Snapshots in ``[first, last]`` whose input for ``start`` (its upstream manifest) is stored."""
    if start not in REPLAYABLE:
        raise ValueError(f"--stage must be one of {', '.join(REPLAYABLE)}, not {start!r}")
    return [d for d in stored_snapshots(rt.store, layout.UPSTREAM[start]) if first <= d <= last]


def replay_snapshot(
    rt: Runtime,
    snapshot: date,
    start: layout.Stage,
    run_id: str,
    *,
    force: bool = False,
    say: Callable[[str], None] = print,
) -> SnapshotOutcome:
    """Re-run ``start`` and the later stages for one snapshot, in this process; stop at a failure.

    ``force``: go past failed data-quality gates (recorded); without it, the stored run request's
    ``force_gates`` decides, as in the functions.
    """
    from spotify_pipeline.runtime import REPLAY_SOURCE, run_stage

    outcome = SnapshotOutcome(snapshot)
    source = layout.manifest_name(layout.UPSTREAM[start], snapshot)
    try:
        manifest, generation, sha = rt.store.read_manifest(source)
    except (StaleObject, ManifestError) as exc:
        outcome.stages.append(StageOutcome(start, "failed", 0.0, error=f"no usable input: {exc}"))
        say(f"    {start:<9} failed     no usable input: {exc}")
        return outcome
    trigger = f"{REPLAY_TRIGGER} (gs://{rt.settings.bucket}/{source}#{generation})"
    # The stored manifest, re-labelled in memory only: the stages copy run id and sources forward,
    # so every manifest this replay writes names it, and the functions leave those alone.
    manifest = msgspec.structs.replace(manifest, run_id=run_id, sources={**manifest.sources, REPLAY_SOURCE: run_id})
    upstream = UpstreamRef(source, generation, sha)
    for stage in layout.STAGES[layout.STAGES.index(start) :]:
        run = StageRun(run_id, stage, rt.now(), snapshot, trigger=trigger, sources=dict(manifest.sources))
        began = time.monotonic()
        try:
            counts = run_stage(rt, stage, manifest, upstream, run, force_gates=True if force else None)
            if stage != "load":  # what this stage published is the next stage's input
                written = layout.manifest_name(stage, snapshot)
                manifest, generation, sha = rt.store.read_manifest(written)
                if manifest.run_id != run_id:
                    raise StaleObject(f"{written} was published by run {manifest.run_id} meanwhile")
                upstream = UpstreamRef(written, generation, sha)
        except Exception as exc:  # recorded and reported; the next snapshot is still replayed
            seconds = time.monotonic() - began
            kind = "" if isinstance(exc, PermanentError | InvalidEvent | ManifestError) else f"{type(exc).__name__}: "
            error = f"{kind}{exc}"
            rt.runlog.record(run.row("failed", rt.now(), error=error))
            outcome.stages.append(StageOutcome(stage, "failed", seconds, error=error))
            say(f"    {stage:<9} failed    {seconds:6.1f} s  {error}")
            return outcome
        seconds = time.monotonic() - began
        rt.runlog.record(run.row("succeeded", rt.now(), counts))
        outcome.stages.append(StageOutcome(stage, "succeeded", seconds, counts, note=run.note))
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        say(f"    {stage:<9} succeeded {seconds:6.1f} s  {detail}" + (f"\n      NOTE {run.note}" if run.note else ""))
    return outcome


def replay(
    rt: Runtime,
    start: layout.Stage,
    first: date,
    last: date,
    *,
    run_id: str,
    force: bool = False,
    say: Callable[[str], None] = print,
) -> list[SnapshotOutcome]:
    """Replay every stored snapshot in ``[first, last]``, oldest first, one at a time."""
    days = replay_plan(rt, start, first, last)
    s = rt.settings
    say(
        f"replay {run_id}: {len(days)} snapshot(s) from {first} to {last}, stages "
        f"{' -> '.join(layout.STAGES[layout.STAGES.index(start) :])}; bucket gs://{s.bucket}, dataset "
        f"{s.project}.{s.dataset}; model PIPELINE_CLUSTERS={s.n_clusters} PIPELINE_RANDOM_STATE={s.random_state} "
        f"PIPELINE_TOP_K={s.top_k} PIPELINE_ALL_PAIRS_MAX_TRACKS={s.all_pairs_max_tracks}"
        + ("; gates forced (--force)" if force else "")
    )
    outcomes = []
    for i, day in enumerate(days, 1):
        say(f"[{i}/{len(days)}] snapshot {day}")
        outcomes.append(replay_snapshot(rt, day, start, run_id, force=force, say=say))
    return outcomes


# ------------------------------------------------------------------------ backfill


@dataclass(frozen=True)
class WeekPick:
    """The snapshot the backfill rule picks for one ISO week."""

    iso_year: int
    iso_week: int
    snapshot_date: date
    dates_in_week: int  # how many of the week's dates the file holds (within the range)

    @property
    def label(self) -> str:
        return f"{self.iso_year}-W{self.iso_week:02d}"


def weekly_picks(dates: Iterable[date], first: date | None = None, last: date | None = None) -> list[WeekPick]:
    """The backfill rule: per ISO week, the latest of ``dates`` within ``[first, last]``; oldest first."""
    weeks: dict[tuple[int, int], list[date]] = {}
    for day in set(dates):
        if (first is not None and day < first) or (last is not None and day > last):
            continue
        iso = day.isocalendar()
        weeks.setdefault((iso.year, iso.week), []).append(day)
    return [WeekPick(y, w, max(days), len(days)) for (y, w), days in sorted(weeks.items())]


def missing_weeks(picks: list[WeekPick]) -> list[str]:
    """ISO weeks between the first and last pick that the file does not cover."""
    if not picks:
        return []
    from datetime import timedelta

    have = {(p.iso_year, p.iso_week) for p in picks}
    gaps = []
    monday = date.fromisocalendar(picks[0].iso_year, picks[0].iso_week, 1)
    end = date.fromisocalendar(picks[-1].iso_year, picks[-1].iso_week, 1)
    while monday <= end:
        iso = monday.isocalendar()
        if (iso.year, iso.week) not in have:
            gaps.append(f"{iso.year}-W{iso.week:02d}")
        monday += timedelta(days=7)
    return gaps


def slice_chart_file(data: bytes, chart: ChartFile, day: date, markets: tuple[str, ...]) -> tuple[bytes, int]:
    """The file's header and its rows of ``day`` (and ``markets``, if any), in the file's own format.

    Rows are chosen by the line numbers the parser recorded, so the slice parses to exactly those
    entries; the bytes are the original fields re-written as CSV (UTF-8, no BOM).
    """
    wanted = {e.line for e in chart.select(markets, day)}
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for i, row in enumerate(reader):
        if i == 0 or reader.line_num in wanted:
            writer.writerow(row)
    return out.getvalue().encode("utf-8"), len(wanted)


@dataclass(frozen=True)
class BackfillWeek:
    pick: WeekPick
    data: bytes
    entries: int
    markets: tuple[str, ...]


def plan_backfill(
    data: bytes, name: str, first: date | None, last: date | None, markets: tuple[str, ...] = ()
) -> tuple[list[BackfillWeek], list[str]]:
    """Parse the chart file and apply the rule: the weeks to load (with their file slices) and the gaps.

    The markets each run expects are ``markets`` if given, else every market the file holds on the
    picked dates: so a week whose picked day lacks a market fails the markets_present gate.
    """
    from spotify_pipeline.sources.charts_csv import parse_chart_csv

    chart = parse_chart_csv(data, name)
    entries = chart.select(markets)
    picks = weekly_picks((e.snapshot_date for e in entries), first, last)
    picked = {p.snapshot_date for p in picks}
    expected = markets or tuple(sorted({e.market for e in entries if e.snapshot_date in picked}))
    weeks = []
    for pick in picks:
        sliced, count = slice_chart_file(data, chart, pick.snapshot_date, markets)
        weeks.append(BackfillWeek(pick, sliced, count, expected))
    return weeks, missing_weeks(picks)


def backfill_request(week: BackfillWeek, object_ref: str, run_id: str, *, force: bool = False) -> dict[str, Any]:
    """The run request for one week: the sliced chart file, its date, the expected markets."""
    message: dict[str, Any] = {
        "run_id": run_id,
        "chart_source": ChartSource.CHARTS_CSV,
        "charts_csv": object_ref,
        "snapshot_date": week.pick.snapshot_date.isoformat(),
        "markets": list(week.markets),
    }
    if force:
        message["force_gates"] = True
    return message
