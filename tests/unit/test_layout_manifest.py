"""Object names of the data bucket and the manifests that chain the stages."""

from __future__ import annotations

import json
from datetime import date

import pytest
from msgspec.structs import replace

from spotify_pipeline import layout
from spotify_pipeline.layout import STAGES, UPSTREAM, ManifestRef, manifest_name, parse_manifest_name, prefix
from spotify_pipeline.manifest import FileEntry, Manifest, ManifestError, UpstreamRef, sha256_hex

DATES = [date(2026, 11, 23), date(2024, 2, 29), date(2026, 1, 1), date(1999, 12, 31)]


# --- layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("snapshot", DATES, ids=str)
def test_manifest_names_round_trip(stage: layout.Stage, snapshot: date) -> None:
    name = manifest_name(stage, snapshot)
    assert name == f"{stage}/snapshot_date={snapshot.isoformat()}/_manifest.json"
    assert name.startswith(prefix(stage, snapshot))
    assert parse_manifest_name(name) == ManifestRef(stage, snapshot)


@pytest.mark.parametrize(
    "name",
    [
        "extract/snapshot_date=2026-11-23/playlists/GLOBAL/37i9dQZEVXbNG2KDcFcKOF/page-000.json",
        "extract/snapshot_date=2026-11-23/artists/batch-000.json",
        "extract/snapshot_date=2026-11-23/audio_features/batch-001.json",
        "transform/snapshot_date=2026-11-23/tracks.parquet",
        "recommend/snapshot_date=2026-11-23/recommendations.parquet",
        "extract/snapshot_date=2026-02-30/_manifest.json",  # no such day
        "extract/snapshot_date=2026-13-01/_manifest.json",
        "extract/snapshot_date=26-11-23/_manifest.json",
        "extract/snapshot_date=2026-11-23/_manifest.json.tmp",
        "extract/snapshot_date=2026-11-23/sub/_manifest.json",
        "extract/snapshot_date=2026-11-23/",
        "extract/_manifest.json",
        "inbox/x.csv",
        "inbox/snapshot_date=2026-11-23/_manifest.json",
        "archive/extract/snapshot_date=2026-11-23/_manifest.json",
        "Extract/snapshot_date=2026-11-23/_manifest.json",
        "_manifest.json",
        "",
    ],
)
def test_other_objects_are_not_manifests(name: str) -> None:
    assert parse_manifest_name(name) is None


def test_no_stage_triggers_itself_or_loops() -> None:
    assert set(UPSTREAM) == {"transform", "recommend", "load"}
    for stage, upstream in UPSTREAM.items():
        assert upstream != stage
        assert STAGES.index(upstream) == STAGES.index(stage) - 1  # strictly the previous stage


# --- manifest ---------------------------------------------------------------------------------


def make_manifest() -> Manifest:
    snapshot = date(2026, 11, 23)
    data = b"parquet bytes"
    return Manifest(
        stage="transform",
        snapshot_date=snapshot,
        run_id="ps-0123456789abcdef",
        started_at="2026-11-23T06:00:00+00:00",
        finished_at="2026-11-23T06:00:09.5+00:00",
        files=(
            FileEntry(prefix("transform", snapshot) + "tracks.parquet", sha256_hex(data), len(data), 143, "tracks"),
            FileEntry(prefix("transform", snapshot) + "chart_entries.parquet", "ab" * 32, 99, 150, "chart_entries"),
            FileEntry("extract/snapshot_date=2026-11-23/artists/batch-000.json", "cd" * 32, 10),
        ),
        upstream=UpstreamRef(manifest_name("extract", snapshot), 1763884800123456, "ef" * 32),
        sources={"chart_source": "spotify-playlist", "feature_source": "spotify"},
        summary={"markets": ["BR", "GLOBAL", "KR"], "tracks_without_features": 1, "note": "ünïcode"},
        request={"snapshot_date": "2026-11-23", "markets": ["GLOBAL"], "run_id": "ps-0123456789abcdef"},
    )


def test_manifest_round_trips() -> None:
    m = make_manifest()
    assert Manifest.from_bytes(m.to_bytes(), "m") == m


def test_minimal_manifest_round_trips() -> None:
    m = Manifest("load", date(2026, 11, 23), "r", "a", "b", files=())
    back = Manifest.from_bytes(m.to_bytes(), "m")
    assert back == m and back.upstream is None and back.request is None


def test_manifest_bytes_are_deterministic() -> None:
    a, b = make_manifest(), make_manifest()
    assert a.to_bytes() == b.to_bytes()
    # Key order of the dicts does not matter either.
    c = replace(b, sources=dict(reversed(list(b.sources.items()))), summary=dict(reversed(list(b.summary.items()))))
    assert a.to_bytes() == c.to_bytes()


def test_manifest_bytes_are_readable_json() -> None:
    body = json.loads(make_manifest().to_bytes())
    assert body["format"] == 1
    assert body["stage"] == "transform" and body["snapshot_date"] == "2026-11-23"
    assert body["files"][0]["table"] == "tracks" and body["files"][0]["rows"] == 143
    assert body["upstream"]["generation"] == 1763884800123456


def test_row_counts_and_file_lookup() -> None:
    m = make_manifest()
    assert m.row_counts == {"tracks": 143, "chart_entries": 150}
    assert m.file("tracks").rows == 143
    with pytest.raises(ManifestError, match="model_features"):
        m.file("model_features")


WHERE = "gs://bucket/extract/snapshot_date=2026-11-23/_manifest.json#17"


def _valid_body() -> dict[str, object]:
    body: dict[str, object] = json.loads(make_manifest().to_bytes())
    return body


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xff\xfe\x00",
        b'{"format": 1',
        b"{}",
        json.dumps({**_valid_body(), "format": 2}).encode(),
        json.dumps({k: v for k, v in _valid_body().items() if k != "files"}).encode(),
        json.dumps({**_valid_body(), "snapshot_date": "2026-02-30"}).encode(),
        json.dumps({**_valid_body(), "files": [{"name": "x"}]}).encode(),
        json.dumps({**_valid_body(), "files": [{"bogus": 1}]}).encode(),
        json.dumps({**_valid_body(), "upstream": {"name": "x"}}).encode(),
    ],
    ids=[
        "empty",
        "garbage",
        "binary",
        "truncated",
        "empty-object",
        "format-2",
        "no-files",
        "bad-date",
        "file-missing-fields",
        "file-unknown-field",
        "upstream-missing-fields",
    ],
)
def test_garbage_is_a_manifest_error_naming_the_object(data: bytes) -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.from_bytes(data, WHERE)
    assert str(info.value).startswith(WHERE)


@pytest.mark.parametrize("data", [b"[]", b"null", b"42", b'"manifest"'])
def test_json_that_is_not_an_object_is_a_manifest_error(data: bytes) -> None:
    """BUG: from_bytes calls body.get(...) on whatever json.loads returned; a JSON array, string,
    number or null raises AttributeError, which the entry points treat as transient (retried
    until PIPELINE_MAX_EVENT_AGE_SECONDS) instead of a permanent ManifestError."""
    with pytest.raises(ManifestError) as info:
        Manifest.from_bytes(data, WHERE)
    assert str(info.value).startswith(WHERE)
