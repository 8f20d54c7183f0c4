"""Parsing of the two kinds of events the functions receive.

* the run request: a Pub/Sub message (JSON) published by Cloud Scheduler, an operator or
  ``spotify-pipeline run``, delivered to extract as a ``messagePublished`` CloudEvent;
* a Cloud Storage ``object.v1.finalized`` CloudEvent, delivered to ingest (a chart file in
  ``inbox/`` becomes a run request), transform, recommend and load.

Run request fields (all optional; message > environment > default):
``snapshot_date``, ``markets``, ``run_id``, ``playlists``, ``chart_source``
(``spotify-playlist`` | ``charts-csv``), ``charts_csv`` (the chart file: object name in the data
bucket or ``gs://bucket/name``, optionally ``#generation``), ``feature_providers`` (ordered list of
``dataset``, ``spotify``, ``reccobeats``), ``dataset_features`` (bool: features inside the chart
file first), ``force_gates`` (bool, default false: load the snapshot even if a data-quality gate
fails; recorded in ``pipeline_runs``, see ``spotify_pipeline.gates``), ``remove_markets`` (markets to
drop from the stored week: the only way a market leaves a week; a run never drops markets it
does not name).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any

import msgspec

from spotify_pipeline import layout
from spotify_pipeline.config import (
    ConfigError,
    Settings,
    parse_feature_providers,
    parse_markets,
    parse_playlists,
)
from spotify_pipeline.sources import CHART_SOURCES, FEATURE_PROVIDERS, ChartSource, FeatureProvider
from spotify_pipeline.validation import field_error

RUN_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PLAYLIST_ID_RE = re.compile(r"^[A-Za-z0-9]{22}$")
OBJECT_REF_RE = re.compile(r"^(?:gs://(?P<bucket>[^/]+)/)?(?P<name>.+?)(?:#(?P<generation>\d{1,19}))?$", re.DOTALL)
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# A chart file's name also holds no C1 control and no bidi control (which would disguise the name
# wherever it is shown: errors, pipeline_runs, the CLI).
CHART_NAME_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A run request is a few hundred bytes; a bigger message is refused before it is parsed (Pub/Sub
# itself takes up to 10 MB, which extract would otherwise decode and echo into errors).
MAX_RUN_REQUEST_BYTES = 64 * 1024
FUTURE_SLACK_DAYS = 7  # a weekly chart is dated by the last day of its week: up to 7 days ahead


class InvalidEvent(ValueError):
    """A permanent problem with an event: retrying cannot fix it, so it is acknowledged.

    The message always names the object, the field and the value at fault.
    """

    def __init__(self, where: str, field_name: str, value: object, reason: str) -> None:
        self.where, self.field, self.value, self.reason = where, field_name, value, reason
        super().__init__(f"{where}: field {field_name!r} = {value!r}: {reason}")


@dataclass(frozen=True)
class ObjectRef:
    """An object of the data bucket, optionally pinned to one generation."""

    name: str
    generation: int | None = None

    def __str__(self) -> str:
        return self.name + (f"#{self.generation}" if self.generation is not None else "")


class RunRequestMessage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The fields a run request message may carry and their JSON types (all optional; null is absent).
    Values are checked by :func:`parse_run_request`, which also fills the defaults."""

    snapshot_date: date | None = None
    markets: str | list[Any] | None = None  # list items are checked by parse_markets, which names them
    run_id: str | None = None
    playlists: dict[str, Any] | None = None
    chart_source: str | None = None  # an empty string means the default, so not a ChartSource here
    charts_csv: Any = None  # parse_chart_ref names what an object reference looks like
    feature_providers: Annotated[list[Any], msgspec.Meta(min_length=1)] | None = None
    dataset_features: bool | None = None
    force_gates: bool | None = None
    remove_markets: Annotated[list[Any], msgspec.Meta(min_length=1)] | None = None


RUN_REQUEST_FIELDS: tuple[str, ...] = RunRequestMessage.__struct_fields__
# What a field of the wrong JSON type is told to look like (msgspec's own words otherwise).
_EXPECTED = {
    "snapshot_date": "expected an ISO date YYYY-MM-DD, e.g. 2026-11-23",
    "markets": 'expected a list such as ["GLOBAL", "BR"]',
    "run_id": "expected 1-64 characters of A-Z a-z 0-9 _ -",
    "playlists": "expected an object of market to playlist id",
    "chart_source": f"supported: {', '.join(CHART_SOURCES)}",
    "feature_providers": f'expected a list such as ["reccobeats"] of {", ".join(FEATURE_PROVIDERS)}',
    "dataset_features": "expected true or false",
    "force_gates": "expected true or false",
    "remove_markets": 'expected a non-empty list such as ["KR"]',
}


def _message(payload: Mapping[str, Any], where: str) -> RunRequestMessage:
    try:
        return msgspec.convert(dict(payload), RunRequestMessage)
    except msgspec.ValidationError as exc:
        path, _, reason = field_error(exc, payload)
        # The message's own field: markets for markets[0]; an unknown field as spelled, dots and all.
        name = path if path in payload else re.split(r"[.\[]", path, maxsplit=1)[0]
        value = payload.get(name)
        reason = _EXPECTED.get(name, reason)
        if name not in RUN_REQUEST_FIELDS:
            reason = f"unknown field; allowed: {', '.join(RUN_REQUEST_FIELDS)}"
        elif name == "snapshot_date" and not isinstance(value, str):
            reason = "expected an ISO date string YYYY-MM-DD"
        raise InvalidEvent(where, name, value, reason) from None


@dataclass(frozen=True)
class RunRequest:
    """What one run should do. Every field of the message is optional.

    For ``charts-csv``: ``markets`` empty means every market of the file, and
    ``snapshot_date_given`` False means every date of the file (one snapshot per date).
    """

    snapshot_date: date
    markets: tuple[str, ...]
    run_id: str
    playlists: Mapping[str, str] = field(default_factory=dict)
    chart_source: ChartSource = ChartSource.SPOTIFY_PLAYLIST
    feature_providers: tuple[FeatureProvider, ...] = (FeatureProvider.SPOTIFY,)
    charts_csv: ObjectRef | None = None
    dataset_features: bool = True
    snapshot_date_given: bool = True
    force_gates: bool = False
    remove_markets: tuple[str, ...] = ()

    def provider_chain(self, chart_has_features: bool) -> tuple[FeatureProvider, ...]:
        """Providers in the order they are asked; ``dataset`` leads when the chart file carries
        features, unless the request lists it elsewhere or ``dataset_features`` is false."""
        chain = self.feature_providers
        if self.dataset_features and FeatureProvider.DATASET not in chain:
            chain = (FeatureProvider.DATASET, *chain)
        if not chart_has_features:
            chain = tuple(p for p in chain if p != FeatureProvider.DATASET)
        return chain

    def to_message(self) -> dict[str, Any]:
        return {
            "snapshot_date": self.snapshot_date.isoformat() if self.snapshot_date_given else None,
            "markets": list(self.markets) or None,
            "run_id": self.run_id,
            "playlists": dict(self.playlists),
            "chart_source": str(self.chart_source),
            "charts_csv": str(self.charts_csv) if self.charts_csv is not None else None,
            "feature_providers": [str(p) for p in self.feature_providers],
            "dataset_features": self.dataset_features,
            # Only when set, so ordinary runs' manifests are unchanged; recommend reads it (gates).
            **({"force_gates": True} if self.force_gates else {}),
            **({"remove_markets": list(self.remove_markets)} if self.remove_markets else {}),
        }


def parse_run_request(
    payload: Mapping[str, Any],
    settings: Settings,
    *,
    default_run_id: str,
    today: date | None = None,
    where: str = "run request",
) -> RunRequest:
    """Validate a run request; defaults come from ``settings`` (message > env > default)."""
    msg = _message(payload, where)
    today = today or datetime.now(UTC).date()
    snapshot = msg.snapshot_date or today
    if (snapshot - today).days > FUTURE_SLACK_DAYS:
        raise InvalidEvent(
            where, "snapshot_date", payload["snapshot_date"], f"in the future (today is {today.isoformat()} UTC)"
        )

    markets = settings.markets
    if msg.markets is not None:
        try:
            markets = parse_markets(msg.markets, f"{where}: markets")
        except ConfigError as exc:
            raise InvalidEvent(where, "markets", msg.markets, str(exc).split(": ", 2)[-1]) from None

    run_id = msg.run_id or default_run_id
    if not RUN_ID_RE.match(run_id):
        raise InvalidEvent(where, "run_id", run_id, _EXPECTED["run_id"])

    chart_source = msg.chart_source or settings.chart_source
    charts_ref: ObjectRef | None = None
    if msg.charts_csv is not None:
        charts_ref = parse_chart_ref(msg.charts_csv, settings.bucket, where)
        chart_source = msg.chart_source or ChartSource.CHARTS_CSV
    if chart_source not in CHART_SOURCES:
        raise InvalidEvent(where, "chart_source", chart_source, f"supported: {', '.join(CHART_SOURCES)}")
    source = ChartSource(chart_source)
    if source is ChartSource.CHARTS_CSV and charts_ref is None:
        raise InvalidEvent(
            where,
            "charts_csv",
            None,
            "chart source charts-csv needs the chart file: name it in the message (object in the data bucket), "
            "run `spotify-pipeline run --charts-csv FILE`, or drop the file into the bucket's inbox/",
        )
    if source is not ChartSource.CHARTS_CSV and charts_ref is not None:
        raise InvalidEvent(where, "charts_csv", str(charts_ref), "a chart file needs chart_source charts-csv")

    playlists: dict[str, str] = dict(settings.playlists)
    if msg.playlists is not None:
        try:
            playlists.update(parse_playlists(json.dumps(msg.playlists), f"{where}: playlists"))
        except ConfigError as exc:
            raise InvalidEvent(where, "playlists", msg.playlists, str(exc)) from None
    if source is ChartSource.SPOTIFY_PLAYLIST:
        for market in markets:
            pid = playlists.get(market)
            if pid is None:
                raise InvalidEvent(
                    where,
                    "markets",
                    market,
                    "no chart playlist configured for this market; "
                    "add it to the message's `playlists` or PIPELINE_PLAYLISTS",
                )
            if not PLAYLIST_ID_RE.match(pid):
                raise InvalidEvent(where, f"playlists.{market}", pid, "expected a 22-character Spotify playlist id")
    elif msg.markets is None:
        markets = ()  # a chart file: every market it holds, unless the request filters

    providers = settings.feature_providers
    if msg.feature_providers is not None:
        try:
            providers = parse_feature_providers(msg.feature_providers, f"{where}: feature_providers")
        except ConfigError:
            raise InvalidEvent(
                where, "feature_providers", msg.feature_providers, f"supported: {', '.join(FEATURE_PROVIDERS)}"
            ) from None

    remove_markets: tuple[str, ...] = ()
    if msg.remove_markets is not None:
        try:
            remove_markets = parse_markets(msg.remove_markets, f"{where}: remove_markets")
        except ConfigError as exc:
            raise InvalidEvent(where, "remove_markets", msg.remove_markets, str(exc).split(": ", 2)[-1]) from None
        if msg.snapshot_date is None:
            raise InvalidEvent(where, "snapshot_date", None, "remove_markets needs the week it removes from")
        if charts_ref is not None:
            raise InvalidEvent(
                where, "remove_markets", msg.remove_markets, "not with a chart file: remove markets in a run of its own"
            )
        if msg.markets is None:
            markets = ()  # only removing: nothing is fetched
        both = sorted(set(markets) & set(remove_markets))
        if both:
            raise InvalidEvent(where, "remove_markets", msg.remove_markets, f"{', '.join(both)} also in `markets`")

    return RunRequest(
        snapshot_date=snapshot,
        markets=markets,
        run_id=run_id,
        playlists={m: playlists[m] for m in markets} if source is ChartSource.SPOTIFY_PLAYLIST else {},
        chart_source=source,
        feature_providers=providers,
        charts_csv=charts_ref,
        dataset_features=settings.dataset_features if msg.dataset_features is None else msg.dataset_features,
        force_gates=bool(msg.force_gates),
        remove_markets=remove_markets,
        snapshot_date_given=msg.snapshot_date is not None,
    )


def parse_object_ref(value: object, bucket: str, where: str, field_name: str) -> ObjectRef:
    """``name``, ``name#generation`` or ``gs://bucket/name[#generation]``, in the data bucket."""
    match = OBJECT_REF_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidEvent(
            where, field_name, value, "expected an object name such as inbox/chart.csv or gs://BUCKET/NAME"
        )
    name = match["name"]
    if CONTROL_RE.search(name) or name in (".", "..") or len(name.encode("utf-8", "surrogatepass")) > 1024:
        raise InvalidEvent(
            where, field_name, value, "not a Cloud Storage object name (1-1024 bytes, no control characters)"
        )
    if match["bucket"] and match["bucket"] != bucket:
        raise InvalidEvent(
            where, field_name, value, f"the chart file must be in the data bucket {bucket}; copy it there first"
        )
    generation = int(match["generation"]) if match["generation"] else None
    return ObjectRef(match["name"], generation)


def parse_chart_ref(value: object, bucket: str, where: str, field_name: str = "charts_csv") -> ObjectRef:
    """The chart file a run request names: an object of the data bucket under ``inbox/`` or
    ``uploads/`` (:data:`layout.CHART_FILE_PREFIXES`), without ``.`` or ``..`` segments (Cloud
    Storage names are not paths, but an emulator may resolve them) and without control characters.
    Nothing else of the bucket (caches, stage outputs) is ever read as a chart file."""
    ref = parse_object_ref(value, bucket, where, field_name)
    if not ref.name.startswith(layout.CHART_FILE_PREFIXES):
        raise InvalidEvent(
            where,
            field_name,
            value,
            f"a chart file must be an object under {' or '.join(layout.CHART_FILE_PREFIXES)} of the data bucket "
            "(drop it into inbox/, or `spotify-pipeline run --charts-csv FILE` uploads it)",
        )
    if {".", ".."} & set(ref.name.split("/")):
        raise InvalidEvent(where, field_name, value, "a '.' or '..' segment; object names are not paths")
    bad = CHART_NAME_CONTROL_RE.search(ref.name)
    if bad:
        raise InvalidEvent(where, field_name, value, f"control character U+{ord(bad.group()):04X} in the name")
    return ref


def check_run_request_size(data: bytes, where: str) -> None:
    """Refuse a run request over :data:`MAX_RUN_REQUEST_BYTES`, naming its size and the limit."""
    if len(data) > MAX_RUN_REQUEST_BYTES:
        raise InvalidEvent(
            where,
            "message.data",
            f"{len(data):,} bytes",
            f"a run request is at most {MAX_RUN_REQUEST_BYTES:,} bytes (64 KiB); refused unread",
        )


def decode_pubsub_payload(data: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """The JSON object inside a ``messagePublished`` CloudEvent's ``message.data``."""
    message = data.get("message") if isinstance(data, Mapping) else None
    if not isinstance(message, Mapping):
        raise InvalidEvent(where, "message", message, "not a Pub/Sub messagePublished event")
    encoded = message.get("data") or ""
    not_text = InvalidEvent(where, "message.data", str(encoded)[:80], "not base64-encoded UTF-8")
    try:
        raw = base64.b64decode(encoded, validate=True) if encoded else b""
    except (binascii.Error, ValueError, TypeError):
        raise not_text from None
    check_run_request_size(raw, where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise not_text from None
    if not text.strip():
        return {}
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(where, "message.data", text[:200], f"not JSON ({exc.msg})") from None
    except RecursionError:
        raise InvalidEvent(where, "message.data", text[:200], "JSON nested too deeply") from None
    if not isinstance(payload, dict):
        raise InvalidEvent(where, "message.data", text[:200], "expected a JSON object")
    return payload


@dataclass(frozen=True)
class StorageObject:
    """The object a ``google.cloud.storage.object.v1.finalized`` event is about."""

    bucket: str
    name: str
    generation: int
    event_time: datetime | None

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}#{self.generation}"


def parse_storage_event(data: Mapping[str, Any] | None, event_time: str | None) -> StorageObject:
    where = "storage event"
    if not isinstance(data, Mapping):
        raise InvalidEvent(where, "data", data, "expected the object's metadata (a JSON object)")
    bucket, name, generation = data.get("bucket"), data.get("name"), data.get("generation")
    if not isinstance(bucket, str) or not bucket:
        raise InvalidEvent(where, "bucket", bucket, "missing")
    if not isinstance(name, str) or not name:
        raise InvalidEvent(where, "name", name, "missing")
    gen = int(generation) if isinstance(generation, str | int) and re.fullmatch(r"\d{1,19}", str(generation)) else -1
    if gen < 0 or isinstance(generation, bool):
        raise InvalidEvent(f"gs://{bucket}/{name}", "generation", generation, "not a non-negative integer")
    return StorageObject(bucket=bucket, name=name, generation=gen, event_time=parse_event_time(event_time))


def parse_event_time(value: object) -> datetime | None:
    """A CloudEvent ``time`` (RFC 3339); without an offset it is taken as UTC; None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
