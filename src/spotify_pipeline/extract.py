"""Extract: chart membership, track and artist metadata, audio features; stored as received.

One run reads its chart source, then asks each API only what it must, then writes:

1. **chart** (``request.chart_source``):
   ``spotify-playlist``: every page of one playlist per market (``/items``), track objects
   embedded in the rows; ``charts-csv``: a chart file of the bucket, parsed by
   :mod:`.sources.charts_csv`, one snapshot per date it holds (filtered by ``markets``).
2. **track metadata** (chart files only; playlist rows embed it): cache first, then
   ``/tracks?ids=`` (50 a call), or one ``/tracks/{id}`` per track where the app lacks the bulk
   endpoint. Without Spotify credentials the chart file's own names are used.
3. **artists**: every credited artist once per run, cache first, bulk or one by one likewise.
4. **features**: the provider chain (``dataset``, ``spotify``, ``reccobeats`` in the configured
   order); each provider is asked only about the tracks the earlier ones did not cover, and
   cached answers (positive or negative) are never asked again. A provider this app may not
   use is reported once, with the fix, and the chain moves on.

Everything is fetched before anything is written: a failure leaves nothing partial. Then, per
snapshot date, the raw objects under ``extract/snapshot_date=D/`` (in this execution's run folder,
see :mod:`.layout`) and the manifest last::

    playlists/<MARKET>/<playlist id>/page-NNN.json   spotify-playlist: API pages as received
    charts/<MARKET>.json                             charts-csv: the file's rows of that market and date
    tracks/batch-NNN.json                            {"tracks": [...]} (bulk answers, or single answers gathered)
    artists/batch-NNN.json                           {"artists": [...]}
    audio_features/batch-NNN.json                    {"audio_features": [...]} (provider spotify)
    reccobeats/batch-NNN.json                        {"content": [...]} (provider reccobeats, match by href)
    cached/<kind>.json                               cache entries this snapshot used, with their fetched_at

Nothing is ever written under ``inbox/`` (chart files stay as dropped) and nothing extract
writes can trigger extract.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from msgspec import UNSET

from spotify_pipeline.errors import DataError, SourceUnavailable
from spotify_pipeline.events import FUTURE_SLACK_DAYS, ObjectRef, RunRequest
from spotify_pipeline.manifest import ExtractSummary, Manifest, sha256_hex
from spotify_pipeline.sources import ChartSource, FeatureProvider
from spotify_pipeline.sources.cache import Cache
from spotify_pipeline.sources.charts_csv import ChartEntry, ChartFile, parse_chart_csv
from spotify_pipeline.sources.reccobeats import match_by_href
from spotify_pipeline.store import MergingStore
from spotify_pipeline.week import Batch, ChartSnapshot, Fetched, json_bytes, publish_week, snapshot_objects, track_of

if TYPE_CHECKING:  # the clients are built on first use: importing extract needs no spotipy
    from spotify_pipeline.gates import GateReport
    from spotify_pipeline.sources.reccobeats import ReccoBeatsApi
    from spotify_pipeline.spotify_api import SpotifyApi

log = logging.getLogger(__name__)


class ChartGate(Protocol):
    """The chart gates (:func:`spotify_pipeline.gates.check_chart`), bound to the bucket and thresholds."""

    def __call__(
        self,
        request: RunRequest,
        snapshot: date,
        entries_per_market: dict[str, int],
        duplicate_ranks: tuple[tuple[str, int, int], ...],
    ) -> GateReport: ...


@dataclass(frozen=True)
class ChartObject:
    """A chart file as read from the bucket: its bytes, generation and last-update time (ISO)."""

    data: bytes
    generation: int
    updated: str | None = None


@dataclass
class Sources:
    """The clients a run may use, built on first use: a run that needs no Spotify call makes none.

    ``spotify`` and ``reccobeats`` are factories; ``spotify`` raises
    :class:`~spotify_pipeline.errors.SourceUnavailable` when no credentials are configured.
    ``read_chart`` returns a chart file's content.
    """

    spotify: Callable[[], SpotifyApi]
    reccobeats: Callable[[], ReccoBeatsApi]
    read_chart: Callable[[ObjectRef], ChartObject]
    cache: Cache = field(default_factory=lambda: Cache(None))
    _spotify: SpotifyApi | None = field(default=None, init=False)
    _reccobeats: ReccoBeatsApi | None = field(default=None, init=False)

    def spotify_api(self) -> SpotifyApi:
        if self._spotify is None:
            self._spotify = self.spotify()
        return self._spotify

    def reccobeats_api(self) -> ReccoBeatsApi:
        if self._reccobeats is None:
            self._reccobeats = self.reccobeats()
        return self._reccobeats

    @property
    def spotify_restrictions(self) -> dict[str, str]:
        """Restricted Spotify endpoints detected during the run (each once)."""
        return dict(self._spotify.unavailable) if self._spotify else {}

    @property
    def requests(self) -> dict[str, int]:
        return {
            "spotify": self._spotify.requests_sent if self._spotify else 0,
            "reccobeats": self._reccobeats.requests_sent if self._reccobeats else 0,
        }


# -- chart sources ----------------------------------------------------------------------------------


def _playlist_snapshot(request: RunRequest, api: SpotifyApi, fetched: Fetched) -> ChartSnapshot:
    snap = ChartSnapshot(request.snapshot_date)
    for market in request.markets:
        playlist_id = request.playlists[market]
        count = 0
        for page_no, page in enumerate(api.playlist_pages(playlist_id, market)):
            rows = page.get("items") or []
            snap.chart_objects.append(
                (f"playlists/{market}/{playlist_id}/page-{page_no:03d}.json", json_bytes(page), len(rows))
            )
            raw_offset = page.get("offset")
            offset = raw_offset if isinstance(raw_offset, int) else 0
            for i, row in enumerate(rows):
                track = track_of(row) if isinstance(row, dict) else None
                if track is None:
                    continue
                count += 1
                snap.ranks.setdefault(market, []).append(offset + i + 1)
                snap.add_track(track["id"])
                fetched.tracks.setdefault(track["id"], track)
        snap.entries_per_market[market] = count
    return snap


def select_entries(chart: ChartFile, request: RunRequest) -> list[ChartEntry]:
    """The file's entries this request asks for (``markets`` filter, snapshot date if given); never empty."""
    day = request.snapshot_date if request.snapshot_date_given else None
    chosen = chart.select(request.markets, day)
    if not chosen:
        wanted = ", ".join(request.markets) or "any market"
        when = f" on {day}" if day else ""
        raise DataError(
            f"{chart.name}: no chart entries for {wanted}{when}; the file holds markets "
            f"{', '.join(chart.markets)} on {', '.join(d.isoformat() for d in chart.dates[:10])}"
            f"{' ...' if len(chart.dates) > 10 else ''}. Fix the `markets` filter (--markets) or the snapshot date"
        )
    return chosen


def _chart_file_snapshots(
    request: RunRequest, sources: Sources, bucket: str
) -> tuple[list[ChartSnapshot], ChartFile, dict[str, Any]]:
    ref = request.charts_csv
    assert ref is not None  # parse_run_request guarantees it for charts-csv
    obj = sources.read_chart(ref)
    data = obj.data
    uri = f"gs://{bucket}/{ref.name}#{obj.generation}"
    chart = parse_chart_csv(
        data,
        ref.name,
        snapshot_date=request.snapshot_date if request.snapshot_date_given else None,
        market=request.markets[0] if len(request.markets) == 1 else None,
    )
    provenance = {
        "uri": uri,
        "format": chart.format,
        "sha256": sha256_hex(data),
        "bytes": len(data),
        "updated": obj.updated,
    }
    by_key: dict[tuple[date, str], list[ChartEntry]] = {}
    for entry in select_entries(chart, request):
        by_key.setdefault((entry.snapshot_date, entry.market), []).append(entry)
    snaps: dict[date, ChartSnapshot] = {}
    for (day, market), entries in sorted(by_key.items()):
        snap = snaps.setdefault(day, ChartSnapshot(day))
        entries.sort(key=lambda e: e.rank)
        body = {
            "format": chart.format,
            "source": provenance,
            "snapshot_date": day.isoformat(),
            "market": market,
            "entries": [e.to_json() for e in entries],
        }
        snap.chart_objects.append((f"charts/{market}.json", json_bytes(body), len(entries)))
        snap.entries_per_market[market] = len(entries)
        snap.ranks[market] = [e.rank for e in entries]
        for e in entries:
            snap.add_track(e.track_id)
    return [snaps[d] for d in sorted(snaps)], chart, provenance


# -- metadata ------------------------------------------------------------------------------------------


def _ordered_unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _from_cache_then_api(
    kind: str,
    ids: list[str],
    cache: Cache,
    fetch: Callable[[list[str]], Iterator[Batch]],
    fetched_at: str,
    fetched: Fetched,
) -> tuple[dict[str, dict[str, Any] | None], list[Batch]]:
    """Objects of ``ids`` (None where the API has none): cached ones, then one pass of ``fetch``."""
    out: dict[str, dict[str, Any] | None] = {}
    for oid, entry in cache.get(kind, ids).items():
        out[oid] = entry.get("value")
        fetched.cached.setdefault(kind, {})[oid] = entry
    missing = [i for i in ids if i not in out]
    batches: list[Batch] = []
    if missing:
        for asked, body in fetch(missing):
            batches.append((asked, body))
            items = body.get(kind) or []
            by_id = {o["id"]: o for o in items if isinstance(o, dict) and o.get("id")}
            for oid in asked:
                out[oid] = by_id.get(oid)
                cache.put(kind, oid, by_id.get(oid), fetched_at)
    return out, batches


def _metadata(snapshots: list[ChartSnapshot], sources: Sources, fetched: Fetched, fetched_at: str) -> None:
    all_tracks = _ordered_unique(t for s in snapshots for t in s.track_ids)
    need_tracks = [t for t in all_tracks if t not in fetched.tracks]
    try:
        api: SpotifyApi | None = sources.spotify_api() if need_tracks or fetched.tracks else None
    except SourceUnavailable as exc:
        api = None
        fetched.metadata = "chart file only"
        fetched.unavailable["spotify-metadata"] = str(exc)
        log.warning("no Spotify metadata for this run (names and artists from the chart file): %s", exc)
    if api is None:
        return
    if need_tracks:
        objs, fetched.track_batches = _from_cache_then_api(
            "tracks", need_tracks, sources.cache, api.tracks, fetched_at, fetched
        )
        fetched.tracks.update({t: o for t, o in objs.items() if o is not None})
    artist_ids = _ordered_unique(
        a["id"]
        for t in all_tracks
        for a in (fetched.tracks.get(t) or {}).get("artists") or []
        if isinstance(a, dict) and a.get("id")
    )
    if artist_ids:
        _, fetched.artist_batches = _from_cache_then_api(
            "artists", artist_ids, sources.cache, api.artists, fetched_at, fetched
        )


# -- features ------------------------------------------------------------------------------------------


def _features(
    request: RunRequest,
    snapshots: list[ChartSnapshot],
    chart: ChartFile | None,
    sources: Sources,
    fetched: Fetched,
    fetched_at: str,
) -> tuple[FeatureProvider, ...]:
    chain = request.provider_chain(chart is not None and chart.has_features)
    need = _ordered_unique(t for s in snapshots for t in s.track_ids)
    for provider in chain:
        if not need:
            break
        if provider == FeatureProvider.DATASET:
            with_features = {e.track_id for e in (chart.entries if chart else ()) if e.features is not None}
            covered = [t for t in need if t in with_features]
        else:
            kind = f"features-{provider}"
            covered = []
            for tid, entry in sources.cache.get(kind, need).items():
                fetched.cached.setdefault(kind, {})[tid] = entry
                if entry.get("value") is not None:
                    covered.append(tid)
            missing = [t for t in need if t not in fetched.cached.get(kind, {})]
            try:
                if missing:
                    covered += _fetch_features(provider, missing, sources, fetched, fetched_at)
            except SourceUnavailable as exc:
                fetched.unavailable[provider] = str(exc)
                log.warning("feature provider %s unavailable, trying the next one: %s", provider, exc)
        for tid in covered:
            fetched.provider_of.setdefault(tid, provider)
        need = [t for t in need if t not in fetched.provider_of]
    if not fetched.provider_of and any(p in fetched.unavailable for p in chain):
        # Chart data loads without features; the model is skipped downstream (feature gates).
        log.warning(
            "no track got audio features; the week's chart data still loads, its model is skipped: %s",
            "; ".join(fetched.unavailable[p] for p in chain if p in fetched.unavailable),
        )
    return chain


def _fetch_features(
    provider: FeatureProvider, ids: list[str], sources: Sources, fetched: Fetched, fetched_at: str
) -> list[str]:
    kind = f"features-{provider}"
    batches = fetched.feature_batches.setdefault(provider, [])
    covered: list[str] = []
    if provider == FeatureProvider.SPOTIFY:
        answers: Iterator[Batch] = sources.spotify_api().audio_features(ids)
    elif provider == FeatureProvider.RECCOBEATS:
        answers = sources.reccobeats_api().audio_features(ids)
    else:
        raise AssertionError(provider)
    for asked, body in answers:
        batches.append((asked, body))
        if provider == FeatureProvider.SPOTIFY:
            found = {f["id"]: f for f in body.get("audio_features") or [] if isinstance(f, dict) and f.get("id")}
        else:
            found = match_by_href(body)
        for tid in asked:
            sources.cache.put(kind, tid, found.get(tid), fetched_at)
            if found.get(tid) is not None:
                covered.append(tid)
    return covered


def run_extract(
    request: RunRequest,
    store: MergingStore,
    sources: Sources,
    now: Callable[[], datetime],
    *,
    bucket: str = "",
    chart_gate: ChartGate | None = None,
) -> list[tuple[Manifest, int]]:
    """Fetch everything, then per week write raw objects and publish the week's manifest, merged
    with the markets already stored for it; return (manifest, generation)s.

    ``chart_gate`` checks each week's new chart entries before anything is written (see
    :mod:`spotify_pipeline.gates`); a failure raises and nothing is written.
    """
    started = now()
    fetched_at = started.isoformat()
    fetched = Fetched()
    chart: ChartFile | None = None
    chart_file: dict[str, Any] | None = None
    if request.chart_source == ChartSource.CHARTS_CSV:
        snapshots, chart, chart_file = _chart_file_snapshots(request, sources, bucket)
    elif request.markets:
        snapshots = [_playlist_snapshot(request, sources.spotify_api(), fetched)]
    else:
        snapshots = [ChartSnapshot(request.snapshot_date)]  # only removing markets: nothing to fetch
    for snap in snapshots:
        if (snap.snapshot_date - started.date()).days > FUTURE_SLACK_DAYS:  # as a request's snapshot_date
            where = request.charts_csv or "the run request"
            raise DataError(
                f"{where}: snapshot_date {snap.snapshot_date} is in the future (today is {started.date()} UTC); "
                "fix the file's dates"
            )
    forced: dict[date, str] = {}  # week -> the forced gates' message, recorded with the run
    if chart_gate is not None:
        for snap in snapshots:
            if snap.entries_per_market:
                report = chart_gate(request, snap.snapshot_date, snap.entries_per_market, snap.duplicate_ranks())
                if report.forced:
                    forced[snap.snapshot_date] = report.message()
    _metadata(snapshots, sources, fetched, fetched_at)
    chain = _features(request, snapshots, chart, sources, fetched, fetched_at)
    fetched.unavailable.update(sources.spotify_restrictions)

    sources_row = {"chart_source": request.chart_source, "feature_source": ",".join(chain), "fetched_at": fetched_at}
    if chart_file is not None:
        sources_row["chart_file"] = chart_file["uri"]
    results: list[tuple[Manifest, int]] = []
    for snap in snapshots:
        objects, artists = snapshot_objects(snap, fetched)
        by_provider: dict[str, int] = {}
        for tid in snap.track_ids:
            if tid in fetched.provider_of:
                by_provider[fetched.provider_of[tid]] = by_provider.get(fetched.provider_of[tid], 0) + 1
        summary = ExtractSummary(
            run_entries_per_market=dict(snap.entries_per_market),
            removed_markets=list(request.remove_markets),
            distinct_tracks=len(snap.track_ids),
            distinct_artists=len(artists),
            tracks_without_features=len(snap.track_ids) - sum(by_provider.values()),
            features_by_provider=by_provider,
            metadata=fetched.metadata,
            requests=sources.requests,
            spotify_requests=sources.requests["spotify"],
            cache_hits={k: len(v) for k, v in sorted(fetched.cached.items())},
            unavailable=dict(fetched.unavailable),
            snapshots_in_run=[s.snapshot_date.isoformat() for s in snapshots],
            chart_file=UNSET if chart_file is None else chart_file,
            gates_forced=forced.get(snap.snapshot_date, UNSET),
        )
        results.append(publish_week(request, store, snap, objects, summary, sources_row, now))
    sources.cache.flush()
    return results
