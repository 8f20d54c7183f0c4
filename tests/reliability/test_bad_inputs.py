"""The bad-input corpus, through functions-framework (real CloudEvents, real HTTP status) against
the emulators, in a bucket of its own so each case is delivered exactly once.

Every case must give: HTTP 2xx (a permanent error is acknowledged, never retried), exactly one
ERROR log line naming the object, the field and the value, nothing written, and where a run
exists, a ``pipeline_runs`` row ``failed`` with the reason."""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import logging
import re
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from functions_framework import create_app
from helpers import gcs, query
from reliability_log import record

from spotify_pipeline import layout
from spotify_pipeline.logs import DropReraised
from spotify_pipeline.manifest import FileEntry, Manifest, sha256_hex
from spotify_pipeline.outcomes import OUTCOMES_PREFIX, REQUEST, RunOutcome

pytestmark = pytest.mark.emulators

SOURCE = str(Path(__file__).resolve().parent / "corpus_functions.py")
BUCKET = "reliability-corpus"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "charts"
DROP = DropReraised()


@pytest.fixture(scope="module")
def corpus(stack: Any) -> Any:
    from google.api_core.exceptions import Conflict

    client = gcs(stack)
    with contextlib.suppress(Conflict):
        client.create_bucket(BUCKET)
    return client.bucket(BUCKET)


def post(target: str, event: CloudEvent) -> int:
    headers, body = to_binary(event)
    status: int = (
        create_app(target, SOURCE, "cloudevent").test_client().post("/", headers=headers, data=body).status_code
    )
    return status


def objects(bucket: Any) -> dict[str, int]:
    """The bucket's data objects (the runs' bookkeeping under runs/ left out: see :func:`outcomes`)."""
    return {b.name: int(b.generation) for b in bucket.client.list_blobs(BUCKET) if not b.name.startswith("runs/")}


def outcomes(bucket: Any) -> dict[str, RunOutcome]:
    blobs = bucket.client.list_blobs(BUCKET, prefix=OUTCOMES_PREFIX)
    return {b.name: RunOutcome.from_bytes(b.download_as_bytes()) for b in blobs}


def storage_event(name: str, generation: int | str, event_id: str) -> CloudEvent:
    """The finalize event Eventarc delivers for ``name#generation`` of the corpus bucket, sent now."""
    return CloudEvent(
        {
            "type": "google.cloud.storage.object.v1.finalized",
            "id": event_id,
            "source": f"//storage.googleapis.com/projects/_/buckets/{BUCKET}",
            "time": datetime.now(UTC).isoformat(),
        },
        {"bucket": BUCKET, "name": name, "generation": str(generation)},
    )


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """ERROR lines as the functions' log handler emits them (a re-raised error's second report dropped)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and DROP.filter(r)]


def norm(text: str) -> str:
    """Stable wording for the table: no generations, dates of today, or per-upload run ids."""
    text = re.sub(r"#\d{6,}", "#<generation>", text)
    text = re.sub(r"gcs-[0-9a-f]{16}", "gcs-<id>", text)
    text = re.sub(r"today is \d{4}-\d{2}-\d{2}", "today is <today>", text)
    text = re.sub(r"generation \d{6,}", "generation <generation>", text)
    return text if len(text) <= 400 else text[:397] + "..."


def failed_rows(stack: Any, trigger: str | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT run_id, stage, status, error FROM pipeline_runs WHERE "
    sql += "`trigger` = @t" if trigger else "run_id = @r"
    return query(stack, sql, **({"t": trigger} if trigger else {"r": run_id}))


# -- Pub/Sub payloads -------------------------------------------------------------------------------

DECOY = b'{"secret_first_line": "never shown"}\n'  # cache/tracks.json: a run request may not read it
HUGE = b'{"markets": ["GLOBAL"], "pad": "' + b"x" * (9 * 2**20) + b'"}'  # 9 MB, under Pub/Sub's 10 MB
TICKS = [
    ("tick-not-json", b"{snapshot_date: 2026-11-23", "message.data", "{snapshot_date: 2026-11-23"),
    ("tick-not-an-object", b"[1, 2]", "message.data", "[1, 2]"),
    ("tick-not-base64", None, "message.data", "%%%"),
    ("tick-markets-wrong-type", {"markets": 5}, "markets", "5"),
    ("tick-date-wrong-type", {"snapshot_date": 20261123}, "snapshot_date", "20261123"),
    ("tick-run-id-wrong-type", {"run_id": ["a"]}, "run_id", "['a']"),
    ("tick-unknown-market", {"markets": ["GLOBAL", "ZZ"]}, "markets", "ZZ"),
    ("tick-market-not-a-code", {"markets": ["Brazil"]}, "markets", "Brazil"),
    ("tick-date-in-the-future", {"snapshot_date": "2031-06-02"}, "snapshot_date", "2031-06-02"),
    ("tick-date-not-a-day", {"snapshot_date": "2026-02-30"}, "snapshot_date", "2026-02-30"),
    ("tick-unknown-field", {"snapshotdate": "2026-11-23"}, "snapshotdate", "2026-11-23"),
    ("tick-playlist-id-malformed", {"markets": ["BR"], "playlists": {"BR": "not-an-id"}}, "playlists.BR", "not-an-id"),
    ("tick-charts-csv-outside-inbox", {"charts_csv": "cache/tracks.json"}, "charts_csv", "under inbox/ or uploads/"),
    (
        "tick-charts-csv-dot-dot",
        {"charts_csv": "inbox/../recommend/snapshot_date=2026-11-23/_manifest.json"},
        "charts_csv",
        "a '.' or '..' segment",
    ),
    ("tick-charts-csv-control-character", {"charts_csv": "uploads/chart\u0085.csv"}, "charts_csv", "U+0085"),
    ("tick-charts-csv-bidi-override", {"charts_csv": "inbox/\u202evsc.csv"}, "charts_csv", "U+202E"),
    ("tick-9-mb", HUGE, "message.data", f"{len(HUGE):,} bytes"),
]


@pytest.mark.parametrize(("case", "payload", "field", "value"), TICKS, ids=[t[0] for t in TICKS])
def test_bad_tick(
    stack: Any, corpus: Any, caplog: pytest.LogCaptureFixture, case: str, payload: Any, field: str, value: str
) -> None:
    message_id = f"rel-{case}"
    if payload is None:
        data = "%%%"
    else:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        data = base64.b64encode(raw).decode()
    event = CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "id": message_id,
            "source": "//pubsub.googleapis.com/projects/local-project/topics/spotify-pipeline-ticks",
            "time": datetime.now(UTC).isoformat(),
        },
        {"message": {"data": data, "messageId": message_id}, "subscription": "test"},
    )
    corpus.blob("cache/tracks.json").upload_from_string(DECOY)
    before, decided = objects(corpus), outcomes(corpus)
    caplog.clear()
    assert post("extract", event) == 200
    lines = errors(caplog)
    assert len(lines) == 1, lines
    assert f"Pub/Sub message {message_id}" in lines[0] and f"'{field}'" in lines[0] and value in lines[0]
    assert "secret_first_line" not in lines[0] and len(lines[0]) < 2000  # nothing read, nothing echoed
    assert objects(corpus) == before
    recorded = failed_rows(stack, trigger=f"Pub/Sub message {message_id}")
    assert [(r["stage"], r["status"]) for r in recorded] == [("extract", "failed")]
    assert recorded[0]["error"] in lines[0]
    new = [o for name, o in outcomes(corpus).items() if name not in decided]
    assert [(o.outcome, o.week, o.reason) for o in new] == [("failed", REQUEST, f"refused: {recorded[0]['error']}")]
    record(
        "input",
        case,
        f"run request {_show(payload)}",
        "acknowledged (HTTP 200), no data written to the bucket, no run started, a failed extract row in "
        f"pipeline_runs and the run's one outcome (`failed`, before any week) with the reason; one error: "
        f"`{norm(lines[0])}`",
    )


def _show(payload: Any) -> str:
    if payload is None:
        return "whose `message.data` is not base64 (`%%%`)"
    if isinstance(payload, bytes) and len(payload) > 1000:
        return f"of {len(payload):,} bytes (9 MiB: a JSON object padded with `x`; the limit is 64 KiB)"
    if isinstance(payload, bytes):
        return f"`{payload.decode()}`"
    return f"`{json.dumps(payload)}`"


# -- raw objects and manifests, through transform -----------------------------------------------------

PAGE = "playlists/GLOBAL/37i9dQZEVXbMDoHDwVN2tF/page-000.json"
GOOD_PAGE = {
    "href": "x",
    "items": [
        {
            "added_at": "2026-11-20T00:00:00Z",
            "item": {
                "type": "track",
                "id": "4uLU6hMCjMI75M1A2tKUQC",
                "name": "t",
                "artists": [{"id": "0OdUWJ0sBjDrqHygGUXeCF", "name": "a"}],
            },
        }
    ],
    "offset": 0,
}


def _truncated() -> bytes:
    data = json.dumps(GOOD_PAGE).encode()
    return data[: len(data) // 2]


RAW = [
    ("raw-empty", PAGE, b"", "page-000.json", "empty object"),
    ("raw-truncated", PAGE, _truncated(), "page-000.json", "not JSON"),
    ("raw-not-json", PAGE, b"<html><body>502 Bad Gateway</body></html>", "page-000.json", "not JSON"),
    ("raw-items-wrong-type", PAGE, json.dumps({"items": "none", "offset": 0}).encode(), "'items'", "'none'"),
    (
        "raw-added-at-not-a-time",
        PAGE,
        json.dumps({**GOOD_PAGE, "items": [{**GOOD_PAGE["items"][0], "added_at": "yesterday"}]}).encode(),
        "'items[0].added_at'",
        "'yesterday'",
    ),
    (
        "raw-chart-entry-missing-track-id",
        "charts/GLOBAL.json",
        json.dumps({"entries": [{"rank": 1, "track_name": "t"}]}).encode(),
        "'entries[0].track_id'",
        "None",
    ),
    (
        "raw-artist-missing-id",
        "artists/batch-000.json",
        json.dumps({"artists": [{"name": "no id"}]}).encode(),
        "'artists[0].id'",
        "None",
    ),
    (
        "raw-feature-out-of-range",
        "audio_features/batch-000.json",
        json.dumps({"audio_features": [{"id": "4uLU6hMCjMI75M1A2tKUQC", "danceability": 7.5}]}).encode(),
        "'audio_features[0].danceability'",
        "7.5",
    ),
    (
        "raw-feature-nan",
        "audio_features/batch-000.json",
        b'{"audio_features": [{"id": "4uLU6hMCjMI75M1A2tKUQC", "energy": NaN}]}',
        "'audio_features[0].energy'",
        "nan",
    ),
]


def _extract_manifest(day: date, files: list[FileEntry], run_id: str) -> Manifest:
    return Manifest(
        stage="extract",
        snapshot_date=day,
        run_id=run_id,
        started_at="2026-11-27T00:00:00+00:00",
        finished_at="2026-11-27T00:00:01+00:00",
        files=tuple(files),
        sources={"chart_source": "spotify-playlist", "feature_source": "spotify"},
    )


def _deliver_manifest(corpus: Any, name: str, data: bytes) -> tuple[int, str]:
    blob = corpus.blob(name)
    blob.upload_from_string(data, content_type="application/json")
    gen = int(blob.generation)
    event = storage_event(name, gen, f"{name}#{gen}")
    return post("transform", event), f"gs://{BUCKET}/{name}#{gen}"


def _check_transform_case(stack: Any, corpus: Any, caplog: Any, day: date, manifest_bytes: bytes) -> tuple[str, str]:
    name = layout.manifest_name("extract", day)
    caplog.clear()
    status, uri = _deliver_manifest(corpus, name, manifest_bytes)
    assert status == 200
    lines = errors(caplog)
    assert len(lines) == 1, lines
    assert not [n for n in objects(corpus) if n.startswith(layout.prefix("transform", day))]  # nothing partial
    return lines[0], uri


@pytest.mark.parametrize(("case", "rel", "data", "field", "value"), RAW, ids=[r[0] for r in RAW])
def test_bad_raw_object(
    stack: Any, corpus: Any, caplog: pytest.LogCaptureFixture, case: str, rel: str, data: bytes, field: str, value: str
) -> None:
    day = date(2024, 1, 1 + RAW.index(next(r for r in RAW if r[0] == case)))
    run_id = f"rel-{case}"
    folder = layout.run_folder("extract", day, run_id, 0, "0badf00d").path
    objs = [(PAGE, json.dumps(GOOD_PAGE).encode()), (rel, data)] if rel != PAGE else [(rel, data)]
    files = []
    for part, body in objs:
        corpus.blob(folder + part).upload_from_string(body)
        files.append(FileEntry(folder + part, sha256_hex(body), len(body)))
    line, _ = _check_transform_case(stack, corpus, caplog, day, _extract_manifest(day, files, run_id).to_bytes())
    assert field in line and value in line, line
    rows = failed_rows(stack, run_id=run_id)
    assert [(r["stage"], r["status"]) for r in rows] == [("transform", "failed")] and rows[0]["error"] in line
    record(
        "input",
        case,
        f"raw object `{rel}`: {_raw_what(case)}",
        f"transform acknowledged (HTTP 200), wrote nothing, pipeline_runs `failed`; one error: `{norm(line)}`",
    )


def _raw_what(case: str) -> str:
    return {
        "raw-empty": "empty (0 bytes)",
        "raw-truncated": "JSON cut in the middle",
        "raw-not-json": "an HTML error page",
        "raw-items-wrong-type": '`"items": "none"`',
        "raw-added-at-not-a-time": '`"added_at": "yesterday"`',
        "raw-chart-entry-missing-track-id": "a chart entry without `track_id`",
        "raw-artist-missing-id": "an artist without `id`",
        "raw-feature-out-of-range": "danceability 7.5",
        "raw-feature-nan": "energy `NaN`",
    }[case]


def test_manifest_checksum_mismatch(stack: Any, corpus: Any, caplog: pytest.LogCaptureFixture) -> None:
    day, run_id = date(2024, 2, 1), "rel-manifest-checksum"
    folder = layout.run_folder("extract", day, run_id, 0, "0badf00d").path
    body = json.dumps(GOOD_PAGE).encode()
    corpus.blob(folder + PAGE).upload_from_string(body)
    wrong = hashlib.sha256(b"what the manifest was written for").hexdigest()
    manifest = _extract_manifest(day, [FileEntry(folder + PAGE, wrong, len(body))], run_id)
    line, _ = _check_transform_case(stack, corpus, caplog, day, manifest.to_bytes())
    assert PAGE in line and "'sha256'" in line and wrong in line and sha256_hex(body) in line
    rows = failed_rows(stack, run_id=run_id)
    assert [(r["stage"], r["status"]) for r in rows] == [("transform", "failed")]
    record(
        "input",
        "manifest-checksum-mismatch",
        "an extract manifest whose file checksum does not match the object (manifest still current)",
        f"transform acknowledged (HTTP 200), wrote nothing, pipeline_runs `failed`; one error: `{norm(line)}`",
    )


MANIFESTS = [
    ("manifest-not-json", b"this is not a manifest", "not JSON"),
    ("manifest-missing-run-id", None, "'run_id' = None"),
    ("manifest-files-wrong-type", None, "'files' = 'all of them'"),
]


@pytest.mark.parametrize(("case", "data", "expected"), MANIFESTS, ids=[m[0] for m in MANIFESTS])
def test_bad_manifest(
    stack: Any, corpus: Any, caplog: pytest.LogCaptureFixture, case: str, data: bytes | None, expected: str
) -> None:
    day = date(2024, 3, 1 + [m[0] for m in MANIFESTS].index(case))
    body = json.loads(_extract_manifest(day, [], "rel-x").to_bytes())
    if case == "manifest-missing-run-id":
        del body["run_id"]
    if case == "manifest-files-wrong-type":
        body["files"] = "all of them"
    line, uri = _check_transform_case(stack, corpus, caplog, day, data or json.dumps(body).encode())
    assert uri in line and expected in line, line
    rows = failed_rows(stack, trigger=uri)
    assert [(r["stage"], r["status"]) for r in rows] == [("transform", "failed")] and rows[0]["error"] in line
    record(
        "input",
        case,
        {
            "manifest-not-json": "an extract manifest that is not JSON",
            "manifest-missing-run-id": "an extract manifest without `run_id`",
            "manifest-files-wrong-type": 'an extract manifest with `"files": "all of them"`',
        }[case],
        f"transform acknowledged (HTTP 200), wrote nothing, pipeline_runs `failed` (run id `unknown`, "
        f"trigger the manifest); one error: `{norm(line)}`",
    )


# -- chart files, through ingest ----------------------------------------------------------------------


def _kaggle(mutate: Any = None, rows: int | None = None) -> bytes:
    table = list(csv.reader(io.StringIO((FIXTURES / "kaggle-top-songs-iso.csv").read_text(encoding="utf-8"))))
    if mutate:
        mutate(table)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(table)
    return out.getvalue().encode("utf-8")


def _set(row: int, column: str, value: str) -> Any:
    def apply(table: list[list[str]]) -> None:
        table[row][table[0].index(column)] = value

    return apply


def _drop_column(column: str) -> Any:
    def apply(table: list[list[str]]) -> None:
        i = table[0].index(column)
        for r in table:
            del r[i]

    return apply


def _duplicate_row(row: int) -> Any:
    return lambda table: table.insert(row + 1, list(table[row]))


SPOTIFY_CHART = (FIXTURES / "regional-global-weekly-2026-11-19.csv").read_bytes()
CSVS = [
    ("csv-missing-columns", "kaggle.csv", _kaggle(_drop_column("daily_rank")), ["missing column(s) 'daily_rank'"]),
    ("csv-utf16", "kaggle.csv", _kaggle().decode().encode("utf-16"), ["byte 0", "UTF-8"]),
    (
        "csv-latin1",
        "kaggle.csv",
        _kaggle(_set(2, "name", "Beyoncé Demo")).decode().encode("latin-1"),
        ["not UTF-8"],
    ),
    ("csv-duplicate-row", "kaggle.csv", _kaggle(_duplicate_row(3)), ["line 5", "rank 3 twice", "also line 4"]),
    ("csv-nan-feature", "kaggle.csv", _kaggle(_set(2, "danceability", "NaN")), ["line 3", "'danceability'", "'NaN'"]),
    ("csv-inf-feature", "kaggle.csv", _kaggle(_set(4, "energy", "inf")), ["line 5", "'energy'", "'inf'"]),
    (
        "csv-out-of-range-feature",
        "kaggle.csv",
        _kaggle(_set(1, "valence", "1.7")),
        ["line 2", "'valence'", "'1.7'", "out of range"],
    ),
    (
        "csv-rank-not-a-number",
        "kaggle.csv",
        _kaggle(_set(6, "daily_rank", "first")),
        ["line 7", "'daily_rank'", "'first'"],
    ),
    ("csv-nul-byte", "kaggle.csv", _kaggle().replace(b"\n", b"\n\x00", 3), ["line 2", "NUL"]),
    (
        "csv-date-in-name-not-a-day",
        "regional-global-weekly-2026-02-30.csv",
        SPOTIFY_CHART,
        ["'2026-02-30'", "not a calendar date"],
    ),
    ("csv-header-only", "kaggle.csv", _kaggle(lambda t: t.__delitem__(slice(1, None))), ["holds no rows"]),
]


def _ingest(corpus: Any, name: str, data: bytes) -> tuple[int, str, str]:
    blob = corpus.blob(name)
    blob.upload_from_string(data, content_type="text/csv")
    gen = int(blob.generation)
    event = storage_event(name, gen, f"{name}#{gen}")
    run_id = "gcs-" + hashlib.sha256(f"{name}#{gen}".encode()).hexdigest()[:16]
    return post("extract", event), run_id, f"gs://{BUCKET}/{name}#{gen}"


@pytest.mark.parametrize(("case", "filename", "data", "expected"), CSVS, ids=[c[0] for c in CSVS])
def test_bad_chart_file(
    stack: Any,
    corpus: Any,
    caplog: pytest.LogCaptureFixture,
    case: str,
    filename: str,
    data: bytes,
    expected: list[str],
) -> None:
    name = f"inbox/{case}/{filename}"
    before = {n for n in objects(corpus) if n.startswith("extract/")}
    caplog.clear()
    status, run_id, _ = _ingest(corpus, name, data)
    assert status == 200
    lines = errors(caplog)
    assert len(lines) == 1, lines
    assert name in lines[0] and all(e in lines[0] for e in expected), lines[0]
    assert {n for n in objects(corpus) if n.startswith("extract/")} == before  # nothing partial
    rows = failed_rows(stack, run_id=run_id)
    assert [(r["stage"], r["status"]) for r in rows] == [("extract", "failed")] and rows[0]["error"] in lines[0]
    record(
        "input",
        case,
        f"chart file dropped in inbox/: {_csv_what(case)}",
        f"ingest acknowledged (HTTP 200), wrote nothing, pipeline_runs `failed`; one error: `{norm(lines[0])}`",
    )


def _csv_what(case: str) -> str:
    return {
        "csv-missing-columns": "Kaggle format without the `daily_rank` column",
        "csv-utf16": "saved as UTF-16",
        "csv-latin1": "saved as Latin-1 (a name with `é`)",
        "csv-duplicate-row": "a row repeated",
        "csv-nan-feature": "`NaN` danceability",
        "csv-inf-feature": "`inf` energy",
        "csv-out-of-range-feature": "valence 1.7",
        "csv-rank-not-a-number": "`daily_rank` = `first`",
        "csv-nul-byte": "NUL bytes",
        "csv-date-in-name-not-a-day": "a charts.spotify.com file named for 2026-02-30",
        "csv-header-only": "a header and no rows",
    }[case]


def test_chart_file_of_100k_rows_is_handled(stack: Any, corpus: Any, caplog: pytest.LogCaptureFixture) -> None:
    """100,000 rows (2 dates x 250 markets x 200 ranks): parsed and extracted within the time, one
    snapshot per date; the documented limit (MAX_ROWS, MAX_FILE_BYTES) refuses bigger files."""
    from spotify_pipeline.sources.charts_csv import MAX_FILE_BYTES, MAX_ROWS

    table = list(csv.reader(io.StringIO((FIXTURES / "kaggle-top-songs-iso.csv").read_text(encoding="utf-8"))))
    header, body = table[0], table[1:]
    col = {c: header.index(c) for c in ("country", "snapshot_date", "daily_rank")}
    markets = [a + b for a in "ABCDEFGHIJ" for b in "ABCDEFGHIJKLMNOPQRSTUVWXY"]  # 250 codes
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for day in ("2024-06-06", "2024-06-13"):
        for market in markets:
            for rank in range(1, 201):
                row = list(body[(rank - 1) % len(body)])
                row[col["country"]], row[col["snapshot_date"]], row[col["daily_rank"]] = market, day, str(rank)
                writer.writerow(row)
    data = out.getvalue().encode()
    started = time.monotonic()
    status, run_id, _ = _ingest(corpus, "inbox/big/kaggle-100k.csv", data)
    seconds = time.monotonic() - started
    assert status == 200 and not errors(caplog)
    assert seconds < 120, seconds
    rows = failed_rows(stack, run_id=run_id)
    assert sorted((r["stage"], r["status"]) for r in rows) == [("extract", "succeeded")] * 2
    for day in (date(2024, 6, 6), date(2024, 6, 13)):
        m = Manifest.from_bytes(corpus.blob(layout.manifest_name("extract", day)).download_as_bytes(), "m")
        assert sum(m.summary["entries_per_market"].values()) == 50_000
    # One row more than the limit, or more bytes: refused at once, naming the limit.
    from spotify_pipeline.errors import DataError
    from spotify_pipeline.sources.charts_csv import parse_chart_csv

    with pytest.raises(DataError, match=f"more than the {MAX_FILE_BYTES // 2**20} MB a run takes"):
        parse_chart_csv(b" " * (MAX_FILE_BYTES + 1), "inbox/huge.csv")
    record(
        "input",
        "csv-100k-rows",
        "a Kaggle chart file of 100,000 rows (21 MB; 2 dates x 250 markets x 200 ranks) dropped in inbox/",
        f"extracted within the 120 s bound as 2 snapshots of 50,000 entries each; files over {MAX_ROWS:,} rows "
        f"or {MAX_FILE_BYTES // 2**20} MB are refused with an error naming the limit",
    )


# -- object names ---------------------------------------------------------------------------------------

ODD_NAMES = [
    ("name-newline-after-manifest", "transform", "extract/snapshot_date=2024-04-01/_manifest.json\n", None),
    ("name-dot-dot", "transform", "extract/snapshot_date=2024-04-01/../_manifest.json", None),
    ("name-unicode-manifest-lookalike", "transform", "extract/snapshot_date=2024-04-01/_manifest.json\u200b", None),
    ("name-inbox-control-character", "extract", "inbox/chart\r\n.csv", "not a Cloud Storage object name"),
]


@pytest.mark.parametrize(("case", "target", "name", "expected"), ODD_NAMES, ids=[o[0] for o in ODD_NAMES])
def test_odd_object_names(
    stack: Any, corpus: Any, caplog: pytest.LogCaptureFixture, case: str, target: str, name: str, expected: str | None
) -> None:
    event = storage_event(name, "7", f"rel-{case}")
    before, decided = objects(corpus), outcomes(corpus)
    caplog.clear()
    assert post(target, event) == 200
    lines = errors(caplog)
    assert objects(corpus) == before
    new = [(o.outcome, o.week) for n, o in outcomes(corpus).items() if n not in decided]
    assert new == ([] if expected is None else [("failed", REQUEST)])
    if expected is None:
        assert lines == []
        observed = "ignored by name, without being read (HTTP 200, no log line, nothing written)"
    else:
        assert len(lines) == 1 and expected in lines[0] and repr(name)[1:-1] in lines[0], lines
        observed = (
            "acknowledged (HTTP 200), no data written to the bucket, a failed extract row in pipeline_runs "
            f"and the run's one outcome (`failed`) with the reason; one error: `{norm(lines[0])}`"
        )
    record("input", case, f"storage event for the object {json.dumps(name)} to `{target}`", observed)


def test_chart_file_with_an_odd_name_runs(stack: Any, corpus: Any, caplog: pytest.LogCaptureFixture) -> None:
    name = "inbox/Top 50 — ünïcødé #1 (copy) & 100%.csv"
    status, run_id, _ = _ingest(corpus, name, _kaggle())
    assert status == 200 and not errors(caplog)
    rows = failed_rows(stack, run_id=run_id)
    assert rows and all((r["stage"], r["status"]) == ("extract", "succeeded") for r in rows)
    record(
        "input",
        "name-inbox-unicode-hash-percent",
        f"a valid chart file dropped as {json.dumps(name, ensure_ascii=False)}",
        f"extracted normally ({len(rows)} snapshots): odd characters, `#` and `%` in a name are fine",
    )


def test_a_right_to_left_override_in_a_name_is_kept_raw_and_dropped_from_the_tables(
    stack: Any, corpus: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """U+202E in a chart file's track name: extract keeps it in the raw object; transform's tracks
    table holds the name without it (what the dashboard and exports show)."""
    import pyarrow.parquet as pq

    day, spoof = date(2025, 3, 6), "\u202eSpoofed Track (synthetic) exe.mp3"

    def one_week_with_a_spoofed_name(table: list[list[str]]) -> None:
        col = {c: table[0].index(c) for c in ("snapshot_date", "name", "spotify_id")}
        table[1:] = [r for r in table[1:] if r[col["snapshot_date"]] == "2026-11-19"]  # one date: its own week
        for r in table[1:]:
            r[col["snapshot_date"]] = day.isoformat()
        table[1][col["name"]] = spoof
        table[1][col["spotify_id"]] = "RLOspoofRLOspoofRLOspo"  # unknown to Spotify: the file's name is used

    status, run_id, _ = _ingest(corpus, "inbox/rlo/kaggle.csv", _kaggle(one_week_with_a_spoofed_name))
    assert status == 200 and not errors(caplog)
    extract = Manifest.from_bytes(corpus.blob(layout.manifest_name("extract", day)).download_as_bytes(), "m")
    raw = b"".join(corpus.blob(f.name).download_as_bytes() for f in extract.files if "/charts/" in f.name)
    assert json.dumps(spoof)[1:-1].encode() in raw or spoof.encode() in raw  # kept as received
    caplog.clear()
    name = layout.manifest_name("extract", day)
    gen = corpus.get_blob(name).generation
    event = storage_event(name, gen, f"{name}#{gen}")
    assert post("transform", event) == 200 and not errors(caplog)
    made = Manifest.from_bytes(corpus.blob(layout.manifest_name("transform", day)).download_as_bytes(), "m")
    tracks = pq.read_table(io.BytesIO(corpus.blob(made.file("tracks").name).download_as_bytes())).to_pylist()
    names = [t["track_name"] for t in tracks]
    assert spoof.removeprefix("\u202e") in names and not [n for n in names if n and "\u202e" in n]
    assert [r["status"] for r in failed_rows(stack, run_id=run_id)] == ["succeeded", "succeeded"]
    record(
        "input",
        "name-right-to-left-override",
        "a chart file dropped in inbox/ whose track name starts with U+202E (RIGHT-TO-LEFT OVERRIDE)",
        "extracted and transformed normally; the raw chart object keeps the name as received, the tracks "
        "table holds it without the control (bidi controls are dropped from every display name)",
    )
