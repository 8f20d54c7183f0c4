"""Data-quality gates on the local stack. Chart gates refuse a run in extract before anything is
written (the stored week, its tables and raw objects stay, and replay rebuilds them); feature gates
skip only the model (chart data loads, the reason is recorded), and the operator's --force models
anyway, which is recorded too."""

from __future__ import annotations

import json
import shlex
from datetime import date
from typing import Any

import pytest
from helpers import bucket_objects, ensure_loaded, gcs, ops, query, runs, snapshot_tables, wait_until
from msgspec.structs import replace

from spotify_pipeline import layout
from spotify_pipeline.manifest import FileEntry
from spotify_pipeline.store import BucketStore
from spotify_pipeline_tools.cli.publish import publish_tick

pytestmark = [pytest.mark.emulators]

PREVIOUS = date(2025, 3, 10)  # a loaded week (shared with test_replay.py)
NO_KR = date(2025, 3, 17)
HOT = date(2025, 3, 24)
IMPOSSIBLE = date(2025, 3, 21)
NO_FEATURES = date(2025, 3, 23)


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
    manifest = replace(source, snapshot_date=day, run_id=run_id, files=tuple(files), request=request, parts=())
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


def upload_chart(stack: Any, name: str, rows: list[tuple[int, str]]) -> str:
    """A charts.spotify.com weekly file of ``rows`` (rank, track id) in the bucket; its object name."""
    lines = ["rank,uri,artist_names,track_name,source,peak_rank,previous_rank,weeks_on_chart,streams"]
    lines += [f"{rank},spotify:track:{tid},Someone,Some Track,Label,1,1,1,1000" for rank, tid in rows]
    blob = gcs(stack).bucket("spotify-pipeline-local").blob(f"uploads/test/{name}")
    blob.upload_from_string("\n".join(lines) + "\n", content_type="text/csv")
    return f"uploads/test/{name}"


def test_a_refused_rerun_leaves_the_week_as_it_was_and_replay_rebuilds_it(stack: Any) -> None:
    """A re-run of a loaded week whose chart collapses (BR: 5 entries instead of 50) is refused by the
    chart gates in extract, before anything is written: tables, raw objects and manifests stay, and
    `replay` rebuilds the same tables from the stored raw objects."""
    ensure_loaded(stack, PREVIOUS, "replay-base-b")
    tables_before = snapshot_tables(stack, PREVIOUS)
    prefix = layout.prefix("extract", PREVIOUS)
    raw_before = {n: g for n, g in bucket_objects(stack).items() if n.startswith(prefix)}
    br = query(stack, "SELECT track_id FROM chart_entries WHERE snapshot_date = @d AND market = 'BR'", d=PREVIOUS)
    chart = upload_chart(stack, "regional-br-weekly-short.csv", [(i + 1, r["track_id"]) for i, r in enumerate(br[:5])])
    request = {"snapshot_date": str(PREVIOUS), "markets": ["BR"], "charts_csv": chart, "run_id": "gates-short-br"}
    publish_tick(stack.env(), stack, request)
    rows = wait_until(lambda: [r for r in runs(stack, "gates-short-br") if r["status"] == "failed"] or None, 90)
    error = rows[0]["error"]
    assert [r["stage"] for r in runs(stack, "gates-short-br")] == ["extract"]
    assert "data-quality gate rows_vs_previous failed for snapshot 2025-03-10; nothing was written" in error
    assert "BR has 5 entries, 50 on" in error or "rows_vs_previous" in error
    assert f"spotify-pipeline run --snapshot-date {PREVIOUS} --markets BR --charts-csv gs://" in error
    assert error.rstrip().endswith("--force-gates")
    assert {n: g for n, g in bucket_objects(stack).items() if n.startswith(prefix)} == raw_before
    assert snapshot_tables(stack, PREVIOUS) == tables_before
    assert ops(stack, "replay", "--from", str(PREVIOUS), "--to", str(PREVIOUS)) == 0
    assert snapshot_tables(stack, PREVIOUS) == tables_before

    # The command the error suggests works as printed: it loads the short BR chart past the gate...
    suggested = shlex.split(error[error.index("spotify-pipeline run ") :])
    assert ops(stack, *suggested[1:]) == 0
    br_now = query(
        stack, "SELECT COUNT(*) AS n FROM chart_entries WHERE snapshot_date = @d AND market = 'BR'", d=PREVIOUS
    )
    assert br_now == [{"n": 5}]
    forced = query(
        stack,
        "SELECT error FROM pipeline_runs WHERE snapshot_date = @d AND stage = 'extract' AND status = 'succeeded' "
        "AND STARTS_WITH(error, 'forced past failed gates (run request force_gates)')",
        d=PREVIOUS,
    )
    assert forced and "[rows_vs_previous]" in forced[0]["error"]  # the forced run says so in its row
    # ...and a run of BR from its playlist brings the week back exactly (the other markets never moved).
    assert ops(stack, "run", "--snapshot-date", str(PREVIOUS), "--markets", "BR") == 0
    assert snapshot_tables(stack, PREVIOUS) == tables_before


def test_a_chart_file_without_features_loads_its_chart_and_skips_the_model(stack: Any) -> None:
    """A charts.spotify.com file has no audio features; when no provider has any either (a dev-mode
    app's 403 is the same), chart entries, tracks and artists still load and the model is skipped
    with its reason recorded."""
    # 40 tracks neither Spotify nor ReccoBeats know: names and artists come from the file alone.
    unknown = [(rank, f"NoFeatures{rank:012d}") for rank in range(1, 41)]
    chart = upload_chart(stack, "regional-global-weekly-nofeat.csv", unknown)
    request = {
        "snapshot_date": str(NO_FEATURES),
        "markets": ["GLOBAL"],
        "charts_csv": chart,
        "run_id": "gates-no-features",
        "feature_providers": ["reccobeats"],
        "dataset_features": False,
    }
    publish_tick(stack.env(), stack, request)
    rows = wait_until(
        lambda: [r for r in runs(stack, "gates-no-features") if r["stage"] == "load" or r["status"] == "failed"], 120
    )
    assert [(r["stage"], r["status"]) for r in runs(stack, "gates-no-features")] == [
        ("extract", "succeeded"),
        ("transform", "succeeded"),
        ("recommend", "succeeded"),
        ("load", "succeeded"),
    ], rows
    assert "model skipped for snapshot" in (runs(stack, "gates-no-features")[2]["error"] or "")
    assert "feature_coverage" in runs(stack, "gates-no-features")[3]["error"]
    counts = {
        name: query(stack, f"SELECT COUNT(*) AS n FROM `{name}` WHERE snapshot_date = @d", d=NO_FEATURES)[0]["n"]
        for name in ("chart_entries", "tracks", "artists", "model_features", "recommendations", "clusters")
    }
    assert counts["chart_entries"] == counts["tracks"] == 40 and counts["artists"] == 1
    artist = query(stack, "SELECT artist_id, artist_name FROM artists WHERE snapshot_date = @d", d=NO_FEATURES)
    assert artist == [{"artist_id": "name:Someone", "artist_name": "Someone"}]  # known by name (documented key)
    assert counts["model_features"] == counts["recommendations"] == counts["clusters"] == 0
    # Forcing cannot model tracks without features, and the message says what can instead.
    assert "no use forcing 0 track(s) with features" in runs(stack, "gates-no-features")[2]["error"]
    day = str(NO_FEATURES)
    assert ops(stack, "replay", "--from", day, "--to", day, "--stage", "recommend", "--force") == 0
    after = query(stack, "SELECT COUNT(*) AS n FROM recommendations WHERE snapshot_date = @d", d=NO_FEATURES)
    assert after == [{"n": 0}]


def test_a_feature_outside_its_documented_range_skips_the_model_then_force_models_and_is_recorded(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_loaded(stack, PREVIOUS, "replay-base-b")
    previous_tables = snapshot_tables(stack, PREVIOUS)
    loud = first_modelled_track(stack)
    # +8 dB: a number transform accepts as a loudness, outside the documented range (-60..5 dB here).
    craft_raw_snapshot(stack, HOT, "gates-hot", set_feature(loud, "loudness", 8.0))
    wait_until(lambda: [r for r in runs(stack, "gates-hot") if r["stage"] == "load"] or None, 120)
    stages = runs(stack, "gates-hot")
    assert [(r["stage"], r["status"]) for r in stages] == [
        ("transform", "succeeded"),
        ("recommend", "succeeded"),
        ("load", "succeeded"),
    ]
    error = stages[1]["error"]
    assert "model skipped for snapshot 2025-03-24 (chart data still loaded): gate features_in_range failed" in error
    assert f"value: loudness: 1 value(s) outside the range, e.g. track {loud} = 8" in error
    assert "threshold: loudness -60..5 (PIPELINE_GATE_FEATURE_RANGES)" in error
    assert "spotify-pipeline replay --from 2025-03-24 --to 2025-03-24 --stage recommend --force" in error
    assert query(stack, "SELECT COUNT(*) AS n FROM chart_entries WHERE snapshot_date = @d", d=HOT)[0]["n"] == 150
    assert query(stack, "SELECT COUNT(*) AS n FROM recommendations WHERE snapshot_date = @d", d=HOT)[0]["n"] == 0
    assert snapshot_tables(stack, PREVIOUS) == previous_tables

    # The operator decides the week is right after all: forced, modelled from the stored clean tables.
    capsys.readouterr()
    assert ops(stack, "replay", "--from", str(HOT), "--to", str(HOT), "--stage", "recommend", "--force") == 0
    out = capsys.readouterr().out
    assert "NOTE forced past failed gates (--force)" in out
    loudness = query(stack, "SELECT loudness FROM tracks WHERE snapshot_date = @d AND track_id = @t", d=HOT, t=loud)
    assert loudness == [{"loudness": 8.0}]
    assert query(stack, "SELECT COUNT(*) AS n FROM recommendations WHERE snapshot_date = @d", d=HOT)[0]["n"] > 0
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
