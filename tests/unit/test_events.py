"""Run requests (Pub/Sub) and storage events: defaults, validation, error messages."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from spotify_pipeline.config import DEFAULT_PLAYLISTS, Settings
from spotify_pipeline.events import (
    MAX_RUN_REQUEST_BYTES,
    InvalidEvent,
    RunRequest,
    decode_pubsub_payload,
    parse_run_request,
    parse_storage_event,
)

TODAY = date(2026, 11, 23)
DEFAULT_RUN_ID = "ps-0123456789abcdef"
OTHER_PLAYLIST = "0123456789abcdefABCDEF"  # 22 base62 characters


def parse(payload: dict[str, Any], settings: Settings | None = None) -> RunRequest:
    return parse_run_request(payload, settings or Settings(), default_run_id=DEFAULT_RUN_ID, today=TODAY)


def pubsub(data: object) -> dict[str, Any]:
    """A messagePublished CloudEvent's data with ``message.data`` set to ``data``."""
    return {"message": {"data": data, "messageId": "1234"}, "subscription": "projects/p/subscriptions/s"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


# --- parse_run_request: defaults ------------------------------------------------------------


def test_empty_request_takes_every_default() -> None:
    req = parse({})
    assert req.snapshot_date == TODAY
    assert req.markets == ("GLOBAL", "BR", "KR")
    assert req.run_id == DEFAULT_RUN_ID
    assert dict(req.playlists) == DEFAULT_PLAYLISTS
    assert req.chart_source == "spotify-playlist"
    assert req.feature_providers == ("spotify",)


def test_today_defaults_to_the_utc_date_when_not_injected() -> None:
    before = datetime.now(UTC).date()
    req = parse_run_request({}, Settings(), default_run_id=DEFAULT_RUN_ID)
    assert before <= req.snapshot_date <= datetime.now(UTC).date()


def test_markets_default_comes_from_settings() -> None:
    settings = Settings.from_env({"PIPELINE_MARKETS": "kr"})
    req = parse({}, settings)
    assert req.markets == ("KR",)
    assert dict(req.playlists) == {"KR": DEFAULT_PLAYLISTS["KR"]}


def test_message_fields_override_settings() -> None:
    settings = Settings.from_env({"PIPELINE_MARKETS": "KR", "PIPELINE_PLAYLISTS": f"BR={OTHER_PLAYLIST}"})
    req = parse({"markets": ["br", "GLOBAL"], "snapshot_date": "2026-02-28", "run_id": "manual_1"}, settings)
    assert req.markets == ("BR", "GLOBAL")
    assert req.snapshot_date == date(2026, 2, 28)
    assert req.run_id == "manual_1"
    assert dict(req.playlists) == {"BR": OTHER_PLAYLIST, "GLOBAL": DEFAULT_PLAYLISTS["GLOBAL"]}


def test_message_playlist_overrides_env_playlist() -> None:
    settings = Settings.from_env({"PIPELINE_PLAYLISTS": f"GLOBAL={'A' * 22}"})
    req = parse({"markets": ["GLOBAL"], "playlists": {"global": OTHER_PLAYLIST}}, settings)
    assert dict(req.playlists) == {"GLOBAL": OTHER_PLAYLIST}


def test_markets_as_comma_separated_string_are_normalised() -> None:
    assert parse({"markets": "global, br,BR"}).markets == ("GLOBAL", "BR")


def test_null_fields_mean_default() -> None:
    req = parse({"snapshot_date": None, "markets": None, "run_id": None, "playlists": None})
    assert (req.snapshot_date, req.markets, req.run_id) == (TODAY, ("GLOBAL", "BR", "KR"), DEFAULT_RUN_ID)


def test_request_round_trips_through_its_message() -> None:
    req = parse({"markets": ["KR", "GLOBAL"], "snapshot_date": "2026-01-05", "run_id": "r-1"})
    message = json.loads(json.dumps(req.to_message()))  # what travels over Pub/Sub
    assert parse(message) == req


# --- parse_run_request: every invalid field names the field and the value ------------------


@pytest.mark.parametrize(
    ("payload", "field", "value_text"),
    [
        ({"snapshot_date": "not-a-date"}, "snapshot_date", "not-a-date"),
        ({"snapshot_date": "2026-13-01"}, "snapshot_date", "2026-13-01"),
        ({"snapshot_date": "2026-02-30"}, "snapshot_date", "2026-02-30"),
        ({"snapshot_date": 20261123}, "snapshot_date", "20261123"),
        ({"snapshot_date": "20261123"}, "snapshot_date", "20261123"),  # ISO basic format is not YYYY-MM-DD
        ({"snapshot_date": "2026-11-23\n"}, "snapshot_date", "2026-11-23"),
        ({"snapshot_date": "2026-11-23T00:00:00"}, "snapshot_date", "2026-11-23T00:00:00"),
        ({"markets": "XX1"}, "markets", "XX1"),
        ({"markets": []}, "markets", "[]"),
        ({"markets": [3]}, "markets", "[3]"),
        ({"markets": {"GLOBAL": True}}, "markets", "GLOBAL"),
        ({"markets": ["US"]}, "markets", "US"),  # no playlist configured for US
        ({"run_id": "my run"}, "run_id", "my run"),
        ({"run_id": "x" * 65}, "run_id", "x" * 65),
        ({"run_id": 42}, "run_id", "42"),
        ({"snapshot": "2026-11-23"}, "snapshot", "2026-11-23"),
        ({"playlists": {"GLOBAL": "not-a-playlist"}}, "playlists.GLOBAL", "not-a-playlist"),
        ({"playlists": ["GLOBAL"]}, "playlists", "GLOBAL"),
        ({"playlists": {"XX1": OTHER_PLAYLIST}}, "playlists", "XX1"),
        ({"chart_source": "nope"}, "chart_source", "nope"),
        ({"feature_providers": ["nope"]}, "feature_providers", "nope"),
        ({"feature_providers": "spotify"}, "feature_providers", "spotify"),
    ],
)
def test_invalid_field_is_named_with_its_value(payload: dict[str, Any], field: str, value_text: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse(payload)
    exc = info.value
    assert exc.field == field
    message = str(exc)
    assert f"'{field}'" in message, message
    assert value_text in message, message
    assert message.startswith("run request")


def test_playlist_for_an_unrequested_market_is_not_needed() -> None:
    req = parse({"markets": ["KR"], "playlists": {"KR": OTHER_PLAYLIST}})
    assert dict(req.playlists) == {"KR": OTHER_PLAYLIST}


def test_where_names_the_message() -> None:
    with pytest.raises(InvalidEvent, match=r"^Pub/Sub message 77: field 'chart_source'"):
        parse_run_request(
            {"chart_source": "x"}, Settings(), default_run_id="d", today=TODAY, where="Pub/Sub message 77"
        )


def test_iso_week_date_is_not_accepted_as_snapshot_date() -> None:
    """Python 3.11's date.fromisoformat also takes ISO week dates; "2026-W47-1" is 10 characters
    long but is not YYYY-MM-DD and must be rejected, not read as 2026-11-16."""
    with pytest.raises(InvalidEvent) as info:
        parse({"snapshot_date": "2026-W47-1"})
    assert info.value.field == "snapshot_date"


# --- decode_pubsub_payload ------------------------------------------------------------------


def test_decode_base64_json_object() -> None:
    message = {"snapshot_date": "2026-11-23", "markets": ["BR"], "run_id": "é-ok"}
    assert decode_pubsub_payload(pubsub(b64(json.dumps(message, ensure_ascii=False))), "m") == message


@pytest.mark.parametrize("data", ["", None, b64(""), b64("  \n")])
def test_empty_data_is_an_empty_request(data: object) -> None:
    assert decode_pubsub_payload(pubsub(data), "m") == {}


def test_missing_data_key_is_an_empty_request() -> None:
    assert decode_pubsub_payload({"message": {"messageId": "1"}}, "m") == {}


@pytest.mark.parametrize(
    ("data", "reason", "shown"),
    [
        (b64("snapshot_date=2026-11-23"), "not JSON", "snapshot_date=2026-11-23"),
        (b64('["GLOBAL"]'), "expected a JSON object", '["GLOBAL"]'),
        (b64("null"), "expected a JSON object", "null"),
        (b64("42"), "expected a JSON object", "42"),
        ("%%%not-base64%%%", "not base64", "%%%not-base64%%%"),
        ("aGVsbG8", "not base64", "aGVsbG8"),  # wrong padding
        (base64.b64encode(b"\xff\xfe").decode(), "not base64-encoded UTF-8", "//4="),
    ],
)
def test_undecodable_data_is_invalid_event(data: str, reason: str, shown: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_pubsub_payload(pubsub(data), "Pub/Sub message 9")
    assert info.value.field == "message.data"
    message = str(info.value)
    assert message.startswith("Pub/Sub message 9") and reason in message and shown in message, message


@pytest.mark.parametrize("data", [None, {}, {"subscription": "s"}, {"message": "text"}])
def test_not_a_pubsub_event(data: dict[str, Any] | None) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_pubsub_payload(data, "m")
    assert info.value.field == "message"


@pytest.mark.parametrize("data", ["évènement", 12345, ["a"]], ids=["non-ascii-text", "int", "list"])
def test_malformed_data_is_invalid_event_not_a_crash(data: object) -> None:
    """BUG: base64.b64decode raises ValueError (non-ASCII str) or TypeError (non-str) which
    decode_pubsub_payload does not catch; handle_tick only acknowledges InvalidEvent, so such a
    message is retried until PIPELINE_MAX_EVENT_AGE_SECONDS instead of being rejected once."""
    with pytest.raises(InvalidEvent) as info:
        decode_pubsub_payload(pubsub(data), "m")
    assert info.value.field == "message.data"


def test_a_run_request_over_the_limit_is_refused_unread_with_its_size_and_the_limit() -> None:
    at_limit = json.dumps({"run_id": "x" * 10}).encode()
    at_limit = at_limit[:-1] + b" " * (MAX_RUN_REQUEST_BYTES - len(at_limit)) + b"}"
    assert len(at_limit) == MAX_RUN_REQUEST_BYTES == 65536
    assert decode_pubsub_payload(pubsub(base64.b64encode(at_limit).decode()), "m") == {"run_id": "x" * 10}
    over = b"{" + b" " * (9 * 2**20) + b"[}"  # 9 MB and not even JSON: refused for its size, not parsed
    with pytest.raises(InvalidEvent) as info:
        decode_pubsub_payload(pubsub(base64.b64encode(over).decode()), "Pub/Sub message 9")
    assert str(info.value) == (
        f"Pub/Sub message 9: field 'message.data' = '{len(over):,} bytes': "
        "a run request is at most 65,536 bytes (64 KiB); refused unread"
    )


# --- charts_csv: which objects a run may read ------------------------------------------------


@pytest.mark.parametrize(
    "name", ["inbox/chart.csv", "uploads/run-1/chart.csv#123", "gs://spotify-pipeline-local/inbox/a b/ü..x.csv"]
)
def test_a_chart_file_under_inbox_or_uploads_is_accepted(name: str) -> None:
    assert parse({"charts_csv": name}).charts_csv is not None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cache/tracks.json", "a chart file must be an object under inbox/ or uploads/ of the data bucket"),
        ("recommend/snapshot_date=2026-11-23/_manifest.json", "under inbox/ or uploads/"),
        ("inboxes/chart.csv", "under inbox/ or uploads/"),
        ("inbox/../recommend/snapshot_date=2026-11-23/_manifest.json", "a '.' or '..' segment"),
        ("uploads/./x/../../cache/tracks.json", "a '.' or '..' segment"),
        ("inbox/chart\x85.csv", "control character U+0085"),
        ("inbox/\u202evsc.exe", "control character U+202E"),
        ("inbox/chart\r\n.csv", "not a Cloud Storage object name"),
    ],
)
def test_any_other_chart_file_name_is_refused_naming_field_and_value(name: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse({"charts_csv": name})
    assert str(info.value).startswith(f"run request: field 'charts_csv' = {name!r}: ")
    assert reason in str(info.value)


# --- parse_storage_event --------------------------------------------------------------------


def test_storage_event_happy_path() -> None:
    obj = parse_storage_event(
        {
            "bucket": "data-bucket",
            "name": "extract/snapshot_date=2026-11-23/_manifest.json",
            "generation": "1763884800123456",
            "contentType": "application/json",
        },
        "2026-11-23T06:00:01.5Z",
    )
    assert obj.bucket == "data-bucket"
    assert obj.name == "extract/snapshot_date=2026-11-23/_manifest.json"
    assert obj.generation == 1763884800123456
    assert obj.event_time == datetime(2026, 11, 23, 6, 0, 1, 500000, tzinfo=UTC)
    assert obj.uri == "gs://data-bucket/extract/snapshot_date=2026-11-23/_manifest.json#1763884800123456"


@pytest.mark.parametrize("event_time", [None, "", "yesterday"])
def test_storage_event_without_usable_time(event_time: str | None) -> None:
    assert parse_storage_event({"bucket": "b", "name": "n", "generation": 1}, event_time).event_time is None


@pytest.mark.parametrize(
    ("data", "field", "value_text"),
    [
        ({"name": "x.json", "generation": "1"}, "bucket", "None"),
        ({"bucket": "", "name": "x.json", "generation": "1"}, "bucket", "''"),
        ({"bucket": "b", "generation": "1"}, "name", "None"),
        ({"bucket": "b", "name": 5, "generation": "1"}, "name", "5"),
        ({"bucket": "b", "name": "x.json"}, "generation", "None"),
        ({"bucket": "b", "name": "x.json", "generation": "abc"}, "generation", "abc"),
        ({"bucket": "b", "name": "x.json", "generation": "1.5"}, "generation", "1.5"),
    ],
)
def test_storage_event_invalid_field(data: dict[str, Any], field: str, value_text: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_storage_event(data, None)
    assert info.value.field == field
    assert f"'{field}'" in str(info.value) and value_text in str(info.value)


def test_storage_event_generation_error_names_the_object() -> None:
    with pytest.raises(InvalidEvent, match=r"^gs://b/x\.json: field 'generation'"):
        parse_storage_event({"bucket": "b", "name": "x.json", "generation": "g"}, None)


def test_no_data_is_invalid_event() -> None:
    with pytest.raises(InvalidEvent):
        parse_storage_event(None, None)


# --- handle_tick: a malformed message is acknowledged (returns), never retried (raises) -----


@pytest.mark.parametrize(
    "data",
    [
        {"message": {"data": b64("not json"), "messageId": "1"}},  # control: rejected today
        {"message": {"data": "évènement", "messageId": "1"}},
        {"message": {"data": 12345, "messageId": "1"}},
        {"message": "text"},
    ],
    ids=["not-json", "non-ascii-data", "int-data", "message-not-an-object"],
)
def test_handle_tick_acknowledges_malformed_messages(data: dict[str, Any]) -> None:
    """BUG (all but the control): handlers.handle_tick evaluates ``(message or {}).get(...)``
    before validation (AttributeError when ``message`` is not an object) and only catches
    InvalidEvent around decode_pubsub_payload (ValueError/TypeError escape), so the function
    fails and Pub/Sub redelivers the message until PIPELINE_MAX_EVENT_AGE_SECONDS."""
    from cloudevents.http import CloudEvent

    from spotify_pipeline.handlers import handle_tick
    from spotify_pipeline.runtime import Runtime

    attributes = {
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/p/topics/ticks",
        "id": "42",
    }
    # Rejection happens before any client is built, so an empty environment is enough.
    assert handle_tick(CloudEvent(attributes, data), Runtime(env={})) is None


def test_a_default_run_id_differs_for_the_same_message_id_published_again() -> None:
    """A fresh Pub/Sub emulator numbers messages from 1 again; the publish time keeps run ids apart,
    while a redelivery (same id, same publish time) keeps its run id."""
    from spotify_pipeline.handlers import tick_run_id

    first = tick_run_id("64", "2026-11-30T05:00:00Z")
    assert tick_run_id("64", "2026-11-30T05:00:00Z") == first
    assert tick_run_id("64", "2026-11-30T06:00:00Z") != first
