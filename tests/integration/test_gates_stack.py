"""Data-quality gates on the local stack: a raw snapshot with one market missing, or with an audio
feature out of its range, goes through the real chain (Eventarc -> transform -> recommend) and stops
before load with a message naming the gate, its value and its threshold; the previous week's tables
are untouched. Then the operator's --force path loads it, and that is recorded too."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from helpers import ensure_loaded, gcs, ops, query, runs, snapshot_tables, wait_until

from spotify_pipeline import layout
from spotify_pipeline.manifest import FileEntry
from spotify_pipeline.store import BucketStore

pytestmark = [pytest.mark.emulators]

PREVIOUS = date(2025, 3, 10)  # a loaded week (shared with test_replay.py)
NO_KR = date(2025, 3, 17)
HOT = date(2025, 3, 24)
IMPOSSIBLE = date(2025, 3, 21)


def store(stack: Any) -> BucketStore:
    return BucketStore(gcs(stack), "spotify-pipeline-local")


def craft_raw_snapshot(stack: Any, day: date, run_id: str, edit: Any) -> None:
    """Copy the previous week's raw objects to ``day`` through ``edit(name, body) -> body | None``
    (None drops the object), and publish an extract manifest for them: what extract would have
    written had Spotify answered that. The manifest's event starts transform, as in production."""
    bucket = store(stack)
    source, _, _ = bucket.read_manifest(layout.manifest_name("extract", PREVIOUS))
    old, new = layout.prefix("extract", PREVIOUS), layout.prefix("extract", day)
    files: list[FileEntry] = []
    for entry in source.files:
        body = edit(entry.name, json.loads(bucket.read_verified(entry)))
        if body is None:
            continue
        data = json.dumps(body).encode()
        files.append(bucket.write(new + entry.name[len(old) :], data, "application/json", rows=entry.rows))
    request = {**(source.request or {}), "snapshot_date": day.isoformat(), "run_id": run_id}
    manifest = replace(source, snapshot_date=day, run_id=run_id, files=tuple(files), request=request)
    bucket.write_manifest(manifest, layout.manifest_name("extract", day))


def stopped_before_load(stack: Any, day: date, run_id: str, stage: str = "recommend") -> str:
    """Wait for ``stage``'s failed row of ``run_id``; assert the snapshot went no further; return its error."""
    chain = ["transform", "recommend"]
    rows = wait_until(lambda: [r for r in runs(stack, run_id) if r["stage"] == stage] or None, 90)
    expected = [(s, "succeeded") for s in chain[: chain.index(stage)]] + [(stage, "failed")]
    assert [(r["stage"], r["status"]) for r in runs(stack, run_id)] == expected
    assert not store(stack).names(layout.prefix("recommend", day))  # nothing modelled
    assert not store(stack).names(layout.prefix("load", day))  # nothing loaded
    for name in ("chart_entries", "tracks", "recommendations"):
        assert not query(stack, f"SELECT 1 FROM `{name}` WHERE snapshot_date = @d LIMIT 1", d=day), name
    error: str = rows[0]["error"]
    return error


def set_feature(track_id: str, feature: str, value: float) -> Any:
    """An ``edit`` for :func:`craft_raw_snapshot`: the track's feature, wherever the snapshot holds it
    (a fresh audio_features batch or the cache's copy)."""

    def edit(name: str, body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        for feat in body.get("audio_features") or []:
            if feat and feat.get("id") == track_id:
                feat[feature] = value
        if str(body.get("kind", "")).startswith("features-"):
            entry = (body.get("entries") or {}).get(track_id)
            if entry and entry.get("value"):
                entry["value"][feature] = value
        return body

    return edit


def first_modelled_track(stack: Any) -> str:
    rows = query(stack, "SELECT MIN(track_id) AS t FROM model_features WHERE snapshot_date = @d", d=PREVIOUS)
    track: str = rows[0]["t"]
    return track


def test_a_missing_market_stops_before_load_and_the_previous_week_is_untouched(stack: Any) -> None:
    ensure_loaded(stack, PREVIOUS, "replay-base-b")
    previous_tables = snapshot_tables(stack, PREVIOUS)

    craft_raw_snapshot(stack, NO_KR, "gates-no-kr", lambda name, body: None if "/playlists/KR/" in name else body)
    error = stopped_before_load(stack, NO_KR, "gates-no-kr")
    assert "data-quality gate markets_present failed for snapshot 2025-03-17" in error
    assert "value: missing KR (present: BR, GLOBAL)" in error
    assert "threshold: every market of the run request: GLOBAL, BR, KR" in error
    assert "--stage recommend --force" in error  # says what the operator can do
    assert snapshot_tables(stack, PREVIOUS) == previous_tables


def test_a_feature_outside_its_documented_range_stops_at_the_gate_then_force_loads_and_is_recorded(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_loaded(stack, PREVIOUS, "replay-base-b")
    previous_tables = snapshot_tables(stack, PREVIOUS)
    loud = first_modelled_track(stack)
    # +8 dB: a number transform accepts as a loudness, outside the documented range (-60..5 dB here).
    craft_raw_snapshot(stack, HOT, "gates-hot", set_feature(loud, "loudness", 8.0))
    error = stopped_before_load(stack, HOT, "gates-hot")
    assert "data-quality gate features_in_range failed for snapshot 2025-03-24" in error
    assert f"value: loudness: 1 value(s) outside the range, e.g. track {loud} = 8" in error
    assert "threshold: loudness -60..5 (PIPELINE_GATE_FEATURE_RANGES)" in error
    assert snapshot_tables(stack, PREVIOUS) == previous_tables

    # The operator decides the week is right after all: forced, loaded from the stored clean tables.
    capsys.readouterr()
    assert ops(stack, "replay", "--from", str(HOT), "--stage", "recommend", "--force") == 0
    out = capsys.readouterr().out
    assert "gates forced (--force)" in out and "NOTE forced past failed gates (--force)" in out
    loudness = query(stack, "SELECT loudness FROM tracks WHERE snapshot_date = @d AND track_id = @t", d=HOT, t=loud)
    assert loudness == [{"loudness": 8.0}]
    forced = query(
        stack,
        "SELECT stage, status, error FROM pipeline_runs WHERE snapshot_date = @d AND STARTS_WITH(run_id, 'replay-') "
        "ORDER BY finished_at",
        d=HOT,
    )
    assert [(r["stage"], r["status"]) for r in forced] == [("recommend", "succeeded"), ("load", "succeeded")]
    assert forced[0]["error"].startswith(
        "forced past failed gates (--force) for snapshot 2025-03-24: [features_in_range]"
    )
    assert snapshot_tables(stack, PREVIOUS) == previous_tables

    # `status` shows it all: the stopped runs with their gate, the forced one with its note.
    capsys.readouterr()
    assert ops(stack, "status", "--limit", "10", "--days", "3650") == 0
    report = capsys.readouterr().out
    assert "last successful load: snapshot 2025-03-24" in report
    recommend = report.split("\nrecommend\n")[1].split("\n\n")[0]
    assert "gates-hot" in recommend and "features_in_range" in recommend
    assert "NOTE forced past failed gates (--force)" in recommend
    assert "spotify-playlist/spotify" in recommend


def test_a_feature_that_cannot_be_one_stops_before_load_too(stack: Any) -> None:
    """energy 1.7 is outside 0..1, energy's whole scale: transform's input contract refuses it first
    (a corrupt input, not a judgement call: no force), naming the object, field and value. Either
    way the week stops before load and the previous week is untouched."""
    ensure_loaded(stack, PREVIOUS, "replay-base-b")
    previous_tables = snapshot_tables(stack, PREVIOUS)
    track = first_modelled_track(stack)
    craft_raw_snapshot(stack, IMPOSSIBLE, "gates-impossible", set_feature(track, "energy", 1.7))
    stage = wait_until(
        lambda: next((r["stage"] for r in runs(stack, "gates-impossible") if r["status"] == "failed"), None), 90
    )
    error = stopped_before_load(stack, IMPOSSIBLE, "gates-impossible", stage)
    assert "energy" in error and "1.7" in error
    if stage == "recommend":
        assert "features_in_range" in error and "energy 0..1" in error
    assert snapshot_tables(stack, PREVIOUS) == previous_tables
