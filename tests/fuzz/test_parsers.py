"""Every parser of outside input, fuzzed: whatever it is fed, the only exception that may escape is
the project's own validation error (the entry points acknowledge those as permanent; anything
else would be retried as transient until the event ages out).

* tick message: ``decode_pubsub_payload`` and ``parse_run_request`` -> :class:`InvalidEvent`;
  ``parse_storage_event`` -> :class:`InvalidEvent`;
* chart CSV import: ``parse_chart_csv`` -> :class:`DataError`;
* raw JSON: ``transform.build_tables`` (and the Parquet conversion after it) -> :class:`DataError`;
* manifest: ``Manifest.from_bytes`` -> :class:`ManifestError`.

Inputs are both free-form (any bytes, any JSON) and mutations of real inputs (the golden raw
objects, the chart file fixtures, a real manifest), which reach far deeper into each parser.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from reliability_log import record

from spotify_pipeline.config import Settings
from spotify_pipeline.errors import DataError
from spotify_pipeline.events import (
    RUN_REQUEST_FIELDS,
    InvalidEvent,
    decode_pubsub_payload,
    parse_run_request,
    parse_storage_event,
)
from spotify_pipeline.manifest import FileEntry, Manifest, ManifestError, UpstreamRef
from spotify_pipeline.schema import table
from spotify_pipeline.sources.charts_csv import parse_chart_csv
from spotify_pipeline.tabular import to_arrow
from spotify_pipeline.transform import build_tables

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURES / "golden" / "raw"
SNAPSHOT = date(2026, 11, 23)
TODAY = date(2026, 11, 27)
SETTINGS = Settings()

# -- shared strategies ------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
odd_scalars = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        2**63,
        -(2**70),
        1.5,
        float("nan"),
        float("inf"),
        -float("inf"),
        1e308,
        "",
        " ",
        "NaN",
        "inf",
        "2026-02-30",
        "9999-12-31",
        "0000-01-01",
        "\x00",
        "é" * 3,
        "a" * 300,
        "1e999",
        "GLOBAL",
        "37i9dQZEVXbNG2KDcFcKOF",
    ]
)
json_values = st.recursive(
    scalars | odd_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def mutate(value: Any, draw: Any, depth: int = 0) -> Any:
    """Replace, delete or retype one randomly chosen node of a JSON document."""
    if isinstance(value, dict) and value and depth < 8 and draw(st.integers(0, 3)) > 0:
        key = draw(st.sampled_from(sorted(value, key=str)))
        out = dict(value)
        action = draw(st.integers(0, 4))
        if action == 0:
            del out[key]
        else:
            out[key] = mutate(value[key], draw, depth + 1)
        return out
    if isinstance(value, list) and value and depth < 8 and draw(st.integers(0, 3)) > 0:
        i = draw(st.integers(0, len(value) - 1))
        out_list = list(value)
        out_list[i] = mutate(value[i], draw, depth + 1)
        return out_list
    return draw(json_values)


# -- tick message -----------------------------------------------------------------------------------


def pubsub(data: Any) -> dict[str, Any]:
    return {"message": {"data": data, "messageId": "1"}, "subscription": "s"}


@given(st.binary(max_size=300))
@example(b"\xff\xfe")
@example(b"[" * 5000 + b"]" * 5000)  # deeper than the JSON parser's recursion limit
@example(b'{"a": ' * 3000 + b"1" + b"}" * 3000)
def _any_message_bytes_decode_or_are_invalid(raw: bytes) -> None:
    try:
        payload = decode_pubsub_payload(pubsub(base64.b64encode(raw).decode()), "m")
    except InvalidEvent:
        return
    assert isinstance(payload, dict)


@given(json_values)
def _any_event_data_shape_decodes_or_is_invalid(data: Any) -> None:
    with contextlib.suppress(InvalidEvent):
        decode_pubsub_payload(data if isinstance(data, dict) else pubsub(data), "m")


run_request_values = st.fixed_dictionaries(
    {},
    optional={
        "snapshot_date": st.dates().map(date.isoformat) | json_values,
        "markets": st.lists(st.sampled_from(["GLOBAL", "BR", "KR", "XX", "br", "Brazil", ""]), max_size=4)
        | json_values,
        "run_id": st.from_regex(r"[A-Za-z0-9_-]{1,70}", fullmatch=True) | json_values,
        "playlists": st.dictionaries(st.sampled_from(["GLOBAL", "BR", "KR", "zz"]), json_values, max_size=3)
        | json_values,
        "chart_source": st.sampled_from(["spotify-playlist", "charts-csv", "kaggle"]) | json_values,
        "charts_csv": st.sampled_from(["inbox/a.csv", "gs://other/a.csv", "inbox/a#b.csv#12", "#1", ""]) | json_values,
        "feature_providers": st.lists(st.sampled_from(["dataset", "spotify", "reccobeats", "x"]), max_size=3)
        | json_values,
        "dataset_features": json_values,
    },
)


@given(run_request_values, st.dictionaries(st.text(max_size=10), json_values, max_size=2))
def _any_run_request_parses_or_is_invalid(payload: dict[str, Any], extra: dict[str, Any]) -> None:
    if extra and set(extra) - set(RUN_REQUEST_FIELDS) and len(payload) % 2:
        payload = {**payload, **extra}
    try:
        request = parse_run_request(payload, SETTINGS, default_run_id="ps-0", today=TODAY, where="m")
    except InvalidEvent as exc:
        assert exc.field is not None and str(exc).startswith("m: field ")
        return
    assert request.snapshot_date <= date(2026, 12, 4)  # at most a week ahead (a chart week's last day)
    assert all(m == "GLOBAL" or (len(m) == 2 and m.isupper()) for m in request.markets)


@given(json_values, st.none() | st.text(max_size=40))
def _any_storage_event_parses_or_is_invalid(data: Any, when: str | None) -> None:
    with contextlib.suppress(InvalidEvent):
        parse_storage_event(data if isinstance(data, dict) else {"bucket": "b", "name": data, "generation": data}, when)


# -- chart CSV ----------------------------------------------------------------------------------------

CHART_FIXTURES = {
    "regional-global-weekly-2026-11-19.csv": (FIXTURES / "charts" / "regional-global-weekly-2026-11-19.csv"),
    "kaggle.csv": FIXTURES / "charts" / "kaggle-top-songs-iso.csv",
}
cell_values = st.sampled_from(
    ["", "NaN", "nan", "inf", "-inf", "1e999", "-1", "0", "1.5", "2", "101", "x", "9" * 30, "1_0", " 3 ", "\x00"]
) | st.text(max_size=12)


@st.composite
def chart_files(draw: Any) -> tuple[bytes, str]:
    name = draw(st.sampled_from(sorted(CHART_FIXTURES)))
    text = CHART_FIXTURES[name].read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))[:8]
    for _ in range(draw(st.integers(1, 4))):
        r = draw(st.integers(0, len(rows) - 1))
        if rows[r]:
            c = draw(st.integers(0, len(rows[r]) - 1))
            rows[r][c] = draw(cell_values)
    if draw(st.booleans()):
        rows.append(list(rows[-1]))  # a duplicate row
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    data = out.getvalue().encode("utf-8")
    how = draw(st.integers(0, 5))
    if how == 0:
        data = data[: draw(st.integers(0, len(data)))]  # truncated
    elif how == 1:
        data = out.getvalue().encode("utf-16")  # wrong encoding
    elif how == 2:
        data = data.replace(b"\n", b"\n\x00", 1)  # a NUL byte
    if draw(st.booleans()):
        name = draw(
            st.sampled_from(
                [
                    "regional-global-weekly-2026-02-30.csv",
                    "regional-xx-daily-2026-11-19 (1).csv",
                    "inbox/odd name #1 ü.csv",
                    "renamed.csv",
                ]
            )
        )
    return data, name


@given(chart_files())
def _any_chart_file_parses_or_is_a_data_error(file: tuple[bytes, str]) -> None:
    data, name = file
    try:
        chart = parse_chart_csv(data, name)
    except DataError as exc:
        assert str(exc).startswith(name)
        return
    assert chart.entries
    for entry in chart.entries:
        assert entry.rank >= 1
        for value in (entry.features or {}).values():
            assert value is None or (value == value and abs(value) != float("inf"))


@given(st.binary(max_size=400), st.sampled_from(["x.csv", "regional-kr-weekly-2026-11-19.csv"]))
def _any_bytes_as_a_chart_file_parse_or_are_a_data_error(data: bytes, name: str) -> None:
    with contextlib.suppress(DataError):
        parse_chart_csv(data, name, snapshot_date=SNAPSHOT, market="BR")


# -- raw JSON through transform ------------------------------------------------------------------------


def _golden() -> list[tuple[str, Any]]:
    manifest = Manifest.from_bytes(
        (GOLDEN / "extract" / "snapshot_date=2026-11-23" / "_manifest.json").read_bytes(), "m"
    )
    return [(f.name, json.loads((GOLDEN / f.name).read_bytes())) for f in manifest.files]


GOLDEN_RAW = _golden()
CHART_RAW = (
    "extract/snapshot_date=2026-11-23/charts/GLOBAL.json",
    {
        "format": "kaggle-top-songs",
        "source": {"updated": "2026-11-20T00:00:00+00:00"},
        "snapshot_date": "2026-11-23",
        "market": "GLOBAL",
        "entries": [
            {
                "rank": r,
                "track_id": f"{r:022d}",
                "track_name": "t",
                "artist_names": ["a"],
                "features": {"danceability": 0.5, "energy": 0.5, "loudness": -5.0, "valence": 0.5, "key": 1},
                "extra": {"popularity": 50, "explicit": False, "duration_ms": 1000},
            }
            for r in (1, 2, 3)
        ],
    },
)


def _build_and_convert(raw: list[tuple[str, Any]], feature_source: str) -> None:
    frames = build_tables(raw, SNAPSHOT, "spotify-playlist", feature_source)
    for name, frame in frames.items():
        to_arrow(frame, table(name))


@given(st.data())
def _mutated_raw_objects_build_tables_or_are_a_data_error(data: Any) -> None:
    raw = [*copy.deepcopy(GOLDEN_RAW), copy.deepcopy(CHART_RAW)]
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = (raw[i][0], mutate(raw[i][1], data.draw))
    with contextlib.suppress(DataError):
        _build_and_convert(raw, data.draw(st.sampled_from(["spotify", "dataset,spotify", "reccobeats,spotify"])))


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "extract/snapshot_date=2026-11-23/playlists/GLOBAL/37i9dQZEVXbNG2KDcFcKOF/page-000.json",
                    "extract/snapshot_date=2026-11-23/charts/BR.json",
                    "extract/snapshot_date=2026-11-23/tracks/batch-000.json",
                    "extract/snapshot_date=2026-11-23/artists/batch-000.json",
                    "extract/snapshot_date=2026-11-23/audio_features/batch-000.json",
                    "extract/snapshot_date=2026-11-23/reccobeats/batch-000.json",
                    "extract/snapshot_date=2026-11-23/cached/artists.json",
                    "extract/snapshot_date=2026-11-23/cached/features-spotify.json",
                    "extract/snapshot_date=2026-11-23/other.json",
                ]
            ),
            json_values,
        ),
        max_size=4,
    )
)
def _any_raw_json_builds_tables_or_is_a_data_error(raw: list[tuple[str, Any]]) -> None:
    with contextlib.suppress(DataError):
        _build_and_convert(raw, "dataset,spotify,reccobeats")


# -- manifests ---------------------------------------------------------------------------------------

MANIFEST = Manifest(
    stage="transform",
    snapshot_date=SNAPSHOT,
    run_id="ps-0123456789abcdef",
    started_at="2026-11-23T06:00:00+00:00",
    finished_at="2026-11-23T06:00:09+00:00",
    files=(FileEntry("transform/snapshot_date=2026-11-23/run=x.1.0a0a0a0a/tracks.parquet", "ab" * 32, 9, 3, "tracks"),),
    upstream=UpstreamRef("extract/snapshot_date=2026-11-23/_manifest.json", 7, "cd" * 32),
    sources={"chart_source": "spotify-playlist"},
    summary={"n": 1},
)


@given(st.binary(max_size=300))
@example(b"[" * 5000)
def _any_bytes_as_a_manifest_are_a_manifest_error(data: bytes) -> None:
    try:
        Manifest.from_bytes(data, "gs://b/m#1")
    except ManifestError as exc:
        assert str(exc).startswith("gs://b/m#1")


@given(st.data())
def _mutated_manifests_parse_or_are_a_manifest_error(data: Any) -> None:
    body = json.loads(MANIFEST.to_bytes())
    body = mutate(body, data.draw)
    try:
        manifest = Manifest.from_bytes(json.dumps(body).encode(), "gs://b/m#1")
    except ManifestError as exc:
        assert str(exc).startswith("gs://b/m#1")
        return
    # Whatever parses is usable as the stages use it.
    assert isinstance(manifest.run_id, str) and manifest.stage in ("extract", "transform", "recommend", "load")
    for entry in manifest.files:
        assert isinstance(entry.name, str) and isinstance(entry.sha256, str) and isinstance(entry.bytes, int)
    manifest.to_bytes()
    _ = manifest.row_counts


def test_a_manifest_round_trips() -> None:
    assert Manifest.from_bytes(MANIFEST.to_bytes(), "m") == MANIFEST


@pytest.mark.parametrize("value", ["[", "{", '{"a":', "\ud800"])
def test_truncated_json_payloads_are_invalid(value: str) -> None:
    with pytest.raises(InvalidEvent):
        decode_pubsub_payload(pubsub(base64.b64encode(value.encode("utf-8", "surrogatepass")).decode()), "m")


# -- the tests: each fuzzer runs, then its case is recorded for docs/reliability.md --------------


def _record(case: str, tried: str, observed: str) -> None:
    examples = settings().max_examples
    record("fuzz", case, tried, f"{observed} (up to {examples} generated examples, derandomized)")


def test_any_message_bytes_decode_or_are_invalid() -> None:
    _any_message_bytes_decode_or_are_invalid()
    _record(
        "fuzz-tick-bytes",
        "tick message: random bytes as `message.data` (base64-encoded), plus JSON nested 5,000 deep",
        "only `InvalidEvent` (field `message.data`) escapes `decode_pubsub_payload`; "
        "deep nesting is refused, not a RecursionError",
    )


def test_any_event_data_shape_decodes_or_is_invalid() -> None:
    _any_event_data_shape_decodes_or_is_invalid()
    _record(
        "fuzz-tick-shape",
        "tick event: any JSON value as the CloudEvent data or as `message.data`",
        "only `InvalidEvent` (field `message` or `message.data`) escapes",
    )


def test_any_run_request_parses_or_is_invalid() -> None:
    _any_run_request_parses_or_is_invalid()
    _record(
        "fuzz-run-request",
        "run request: every field with valid, odd and wrongly typed values, plus unknown fields",
        "only `InvalidEvent` escapes `parse_run_request`,"
        " naming the field; accepted requests have valid markets and a date at most 7 days ahead",
    )


def test_any_storage_event_parses_or_is_invalid() -> None:
    _any_storage_event_parses_or_is_invalid()
    _record(
        "fuzz-storage-event",
        "storage event: any JSON as bucket, name, generation and any string as the event time",
        "only `InvalidEvent` escapes `parse_storage_event`",
    )


def test_any_chart_file_parses_or_is_a_data_error() -> None:
    _any_chart_file_parses_or_is_a_data_error()
    _record(
        "fuzz-chart-csv",
        "chart CSV: both fixture formats with cells replaced (NaN, inf, 1e999, huge, negative, text),"
        " duplicated rows, truncation, UTF-16, NUL bytes, odd file names",
        "only `DataError` escapes `parse_chart_csv`,"
        " starting with the file name; parsed entries have ranks >= 1 and finite features",
    )


def test_any_bytes_as_a_chart_file_parse_or_are_a_data_error() -> None:
    _any_bytes_as_a_chart_file_parse_or_are_a_data_error()
    _record("fuzz-chart-bytes", "chart CSV: random bytes", "only `DataError` escapes `parse_chart_csv`")


def test_mutated_raw_objects_build_tables_or_are_a_data_error() -> None:
    _mutated_raw_objects_build_tables_or_are_a_data_error()
    _record(
        "fuzz-raw-mutated",
        "raw JSON: the golden extract objects and a chart object with 1-3 nodes replaced,"
        " deleted or retyped, then converted to the Parquet schemas",
        "only `DataError` escapes `build_tables` and the Arrow conversion",
    )


def test_any_bytes_as_a_manifest_are_a_manifest_error() -> None:
    _any_bytes_as_a_manifest_are_a_manifest_error()
    _record(
        "fuzz-manifest-bytes",
        "manifest: random bytes, and a JSON array nested 5,000 deep",
        "only `ManifestError` escapes `Manifest.from_bytes`, naming the object",
    )


def test_mutated_manifests_parse_or_are_a_manifest_error() -> None:
    _mutated_manifests_parse_or_are_a_manifest_error()
    _record(
        "fuzz-manifest-mutated",
        "manifest: a real manifest with one node replaced, deleted or retyped",
        "only `ManifestError` escapes; whatever parses has typed fields the stages can use",
    )


def test_any_raw_json_builds_tables_or_is_a_data_error() -> None:
    _any_raw_json_builds_tables_or_is_a_data_error()
    _record(
        "fuzz-raw-any",
        "raw JSON: any JSON value under every raw object name extract writes",
        "only `DataError` escapes `build_tables` and the Arrow conversion",
    )
