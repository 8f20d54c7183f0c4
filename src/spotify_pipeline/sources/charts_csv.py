"""Chart files: the charts.spotify.com weekly/daily CSV and the Kaggle "Top Spotify Songs in 73
Countries" CSV, detected by their header, parsed into :class:`ChartEntry` rows.

Standard library only (``csv``): extract must not need pandas.

* charts.spotify.com: ``regional-<market>-weekly-<YYYY-MM-DD>.csv`` (``global`` or a lower-case
  ISO-2 code; ``daily`` files too), UTF-8 with a BOM, header ``rank,uri,artist_names,track_name,
  source,peak_rank,previous_rank,weeks_on_chart,streams``. Market and date live only in the
  file name; a renamed file needs them from the run request (one market, a snapshot date).
* Kaggle: one row per chart entry, ``spotify_id, name, artists, daily_rank, ..., country,
  snapshot_date, popularity, is_explicit, duration_ms, album_name, album_release_date,
  danceability, ...``; ``country`` empty = ``GLOBAL``; dates ``M/D/YYYY`` or ISO; audio
  features included (the ``dataset`` feature provider). A file may hold many dates: each date
  becomes its own snapshot.

Artist lists are one comma-joined string in both formats; they are split on commas, which is
wrong for the rare artist whose name holds a comma ("Tyler, The Creator"). Where Spotify
metadata is available the credits come from Spotify instead, with ids.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

from spotify_pipeline.errors import DataError
from spotify_pipeline.features import AUDIO_FEATURES, INPUT_RANGES, INT_FEATURES

Format = Literal["spotify-charts", "kaggle-top-songs"]

SPOTIFY_CHARTS_COLUMNS = ("rank", "uri", "artist_names", "track_name")
KAGGLE_COLUMNS = ("spotify_id", "name", "artists", "daily_rank", "country", "snapshot_date")
MAX_RANK = 100_000
INT64_MAX = 2**63 - 1
# The largest chart file a run takes: a full Kaggle export (~1.7 M rows, 700 MB) is refused with
# this limit named, and must be filtered first; 100 MB is ~250,000 rows.
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_ROWS = 250_000

_FILENAME = re.compile(
    r"regional-(?P<market>global|[a-z]{2})-(?P<period>weekly|daily)-(?P<date>\d{4}-\d{2}-\d{2})[^/]*\.csv$",
    re.IGNORECASE,
)
_TRACK_ID = re.compile(r"^[0-9A-Za-z]{22}$")
_TRACK_REF = re.compile(r"^(?:spotify:track:|https?://open\.spotify\.com/track/)([0-9A-Za-z]{22})(?:[?#].*)?$")
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MARKET = re.compile(r"^[A-Z]{2}$")
_INTEGER = re.compile(r"([+-]?\d{1,19})(?:\.0+)?")


@dataclass(frozen=True)
class ChartEntry:
    """One chart position, as read from a chart file (``line`` is the file's line number)."""

    snapshot_date: date
    market: str
    rank: int
    track_id: str
    line: int
    track_name: str | None = None
    artist_names: tuple[str, ...] = ()
    features: Mapping[str, float | int | None] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["snapshot_date"] = self.snapshot_date.isoformat()
        body["artist_names"] = list(self.artist_names)
        body["features"] = dict(self.features) if self.features is not None else None
        body["extra"] = dict(self.extra)
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ChartEntry:
        return cls(
            snapshot_date=date.fromisoformat(body["snapshot_date"]),
            market=str(body["market"]),
            rank=int(body["rank"]),
            track_id=str(body["track_id"]),
            line=int(body.get("line") or 0),
            track_name=body.get("track_name"),
            artist_names=tuple(body.get("artist_names") or ()),
            features=body.get("features"),
            extra=dict(body.get("extra") or {}),
        )


@dataclass(frozen=True)
class ChartFile:
    name: str
    format: Format
    entries: tuple[ChartEntry, ...]

    @property
    def dates(self) -> list[date]:
        return sorted({e.snapshot_date for e in self.entries})

    @property
    def markets(self) -> list[str]:
        return sorted({e.market for e in self.entries})

    @property
    def has_features(self) -> bool:
        return any(e.features is not None for e in self.entries)

    def select(self, markets: Iterable[str] = (), snapshot_date: date | None = None) -> list[ChartEntry]:
        wanted = set(markets)
        return [
            e
            for e in self.entries
            if (not wanted or e.market in wanted) and (snapshot_date is None or e.snapshot_date == snapshot_date)
        ]


class _Row:
    """Field access with errors that name the file, line, column and value."""

    def __init__(self, name: str, line: int, row: Mapping[str, str | None]) -> None:
        self.name, self.line, self.row = name, line, row

    def fail(self, column: str, value: object, reason: str) -> DataError:
        return DataError(f"{self.name}: line {self.line}: column {column!r} = {value!r}: {reason}")

    def text(self, column: str) -> str:
        return (self.row.get(column) or "").strip()

    def optional_text(self, column: str) -> str | None:
        return self.text(column) or None

    def integer(
        self, column: str, *, required: bool = False, minimum: int | None = None, maximum: int = INT64_MAX
    ) -> int | None:
        raw = self.text(column)
        if not raw:
            if required:
                raise self.fail(column, raw, "required, expected an integer")
            return None
        match = _INTEGER.fullmatch(raw)
        if match is None:
            raise self.fail(column, raw, "expected an integer")
        value = int(match.group(1))
        if minimum is not None and value < minimum:
            raise self.fail(column, raw, f"expected an integer >= {minimum}")
        if not -INT64_MAX <= value <= maximum:
            raise self.fail(column, raw, f"expected an integer <= {maximum}")
        return value

    def number(self, column: str) -> float | None:
        raw = self.text(column)
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise self.fail(column, raw, "expected a number") from None
        if not math.isfinite(value):
            raise self.fail(column, raw, "expected a finite number (not NaN or infinity)")
        return value

    def boolean(self, column: str) -> bool | None:
        raw = self.text(column).lower()
        if not raw:
            return None
        if raw in ("true", "1", "yes"):
            return True
        if raw in ("false", "0", "no"):
            return False
        raise self.fail(column, self.text(column), "expected True or False")

    def day(self, column: str) -> date:
        raw = self.text(column)
        us, iso = _US_DATE.match(raw), _ISO_DATE.match(raw)
        try:
            if us:
                return date(int(us.group(3)), int(us.group(1)), int(us.group(2)))
            if iso:
                return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        except ValueError:
            pass
        raise self.fail(column, raw, "expected a date as M/D/YYYY or YYYY-MM-DD")


def split_artists(raw: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in raw.split(",") if a.strip())


def parse_market(raw: str, where: _Row, column: str) -> str:
    code = raw.strip().upper()
    if not code or code == "GLOBAL":
        return "GLOBAL"
    if not _MARKET.match(code):
        raise where.fail(column, raw, "expected empty (= GLOBAL), GLOBAL or an ISO 3166-1 alpha-2 code")
    return code


def detect_format(header: Iterable[str], name: str) -> Format:
    columns = set(header)
    if set(SPOTIFY_CHARTS_COLUMNS) <= columns:
        return "spotify-charts"
    if set(KAGGLE_COLUMNS) <= columns:
        return "kaggle-top-songs"
    formats = (("a charts.spotify.com chart CSV", SPOTIFY_CHARTS_COLUMNS), ("a Kaggle chart CSV", KAGGLE_COLUMNS))
    what, needed = max(formats, key=lambda f: len(columns & set(f[1])))
    if columns & set(needed):  # close to one format: name exactly what it lacks
        missing = ", ".join(repr(c) for c in needed if c not in columns)
        raise DataError(
            f"{name}: missing column(s) {missing} of {what} (needs {', '.join(needed)}); see docs/data-sources.md"
        )
    raise DataError(
        f"{name}: header {sorted(columns)} is neither a charts.spotify.com chart CSV (needs "
        f"{', '.join(SPOTIFY_CHARTS_COLUMNS)}) nor the Kaggle 'Top Spotify Songs in 73 Countries' CSV (needs "
        f"{', '.join(KAGGLE_COLUMNS)}); see docs/data-sources.md"
    )


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: byte {exc.start} is not UTF-8 ({exc.reason}); save the chart file as UTF-8") from None


def _features(row: _Row) -> dict[str, float | int | None] | None:
    out: dict[str, float | int | None] = {}
    for column in AUDIO_FEATURES:
        value = row.number(column)
        if value is not None:
            low, high = INPUT_RANGES[column]
            if not low <= value <= high:
                raise row.fail(column, row.text(column), f"out of range: expected {low:g} to {high:g}")
            if column in INT_FEATURES and value != int(value):
                raise row.fail(column, row.text(column), "expected a whole number")
        out[column] = int(value) if value is not None and column in INT_FEATURES else value
    return out if any(v is not None for v in out.values()) else None


def _spotify_charts_entry(row: _Row, snapshot: date, market: str) -> ChartEntry:
    ref = row.text("uri")
    match = _TRACK_REF.match(ref)
    track_id = match.group(1) if match else ref
    if not _TRACK_ID.match(track_id):
        raise row.fail("uri", ref, "expected spotify:track:<22-character id>")
    extra = {
        "source_label": row.optional_text("source"),
        "peak_rank": row.integer("peak_rank"),
        "previous_rank": row.integer("previous_rank"),
        "weeks_on_chart": row.integer("weeks_on_chart"),
        "days_on_chart": row.integer("days_on_chart"),
        "streams": row.integer("streams"),
    }
    return ChartEntry(
        snapshot_date=snapshot,
        market=market,
        rank=row.integer("rank", required=True, minimum=1, maximum=MAX_RANK) or 0,
        track_id=track_id,
        line=row.line,
        track_name=row.optional_text("track_name"),
        artist_names=split_artists(row.text("artist_names")),
        extra={k: v for k, v in extra.items() if v is not None},
    )


def _kaggle_entry(row: _Row) -> ChartEntry:
    tid = row.text("spotify_id")
    if not _TRACK_ID.match(tid):
        raise row.fail("spotify_id", tid, "expected a 22-character Spotify track id")
    extra = {
        "popularity": row.integer("popularity"),
        "explicit": row.boolean("is_explicit"),
        "duration_ms": row.integer("duration_ms"),
        "album_name": row.optional_text("album_name"),
        "album_release_date": row.optional_text("album_release_date"),
        "daily_movement": row.integer("daily_movement"),
        "weekly_movement": row.integer("weekly_movement"),
    }
    return ChartEntry(
        snapshot_date=row.day("snapshot_date"),
        market=parse_market(row.text("country"), row, "country"),
        rank=row.integer("daily_rank", required=True, minimum=1, maximum=MAX_RANK) or 0,
        track_id=tid,
        line=row.line,
        track_name=row.optional_text("name"),
        artist_names=split_artists(row.text("artists")),
        features=_features(row),
        extra={k: v for k, v in extra.items() if v is not None},
    )


def parse_chart_csv(
    data: bytes, name: str, *, snapshot_date: date | None = None, market: str | None = None
) -> ChartFile:
    """Parse a chart file; ``name`` is its object or file name (charts.spotify.com files keep
    market and date there). ``snapshot_date``/``market`` stand in when a renamed
    charts.spotify.com file lost them; they are ignored for Kaggle files, which carry both."""
    if len(data) > MAX_FILE_BYTES:
        raise DataError(
            f"{name}: {len(data):,} bytes, more than the {MAX_FILE_BYTES // 2**20} MB a run takes; "
            "split the file or filter it to the markets and dates wanted (docs/data-sources.md, chart files)"
        )
    text = _decode(data, name)
    if not text.strip():
        raise DataError(f"{name}: the file is empty; expected a chart CSV with its header (docs/data-sources.md)")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{name}: line {line}: a NUL byte; not a text CSV file (save it as UTF-8 CSV)")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        fmt = detect_format(header, name)
        return _parse_rows(reader, name, fmt, snapshot_date, market)
    except csv.Error as exc:
        raise DataError(f"{name}: line {reader.line_num}: not a well-formed CSV record ({exc})") from None


def _parse_rows(
    reader: csv.DictReader[str], name: str, fmt: Format, snapshot_date: date | None, market: str | None
) -> ChartFile:

    file_market, file_date = market, snapshot_date
    if fmt == "spotify-charts":
        match = _FILENAME.search(name.rsplit("/", 1)[-1])
        if match:
            file_market = "GLOBAL" if match["market"].lower() == "global" else match["market"].upper()
            try:
                file_date = date.fromisoformat(match["date"])
            except ValueError:
                raise DataError(f"{name}: file name date {match['date']!r} is not a calendar date") from None
        if file_market is None or file_date is None:
            raise DataError(
                f"{name}: a charts.spotify.com CSV keeps its market and date only in its file name, "
                "`regional-<global|xx>-weekly-<YYYY-MM-DD>.csv`; rename the file to that pattern, or give "
                "one market and the snapshot date in the run request (--markets XX --snapshot-date D)"
            )

    entries: list[ChartEntry] = []
    seen: dict[tuple[date, str, int], int] = {}
    for row_no, raw in enumerate(reader):
        line = reader.line_num
        if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
            continue  # blank line
        row = _Row(name, line, raw)
        surplus: Any = raw.get(None)  # DictReader keeps surplus fields under None
        if surplus:
            raise row.fail("(beyond the header)", surplus, f"record {row_no + 1} has more fields than the header")
        if fmt == "spotify-charts":
            assert file_market is not None and file_date is not None
            entry = _spotify_charts_entry(row, file_date, file_market)
        else:
            entry = _kaggle_entry(row)
        key = (entry.snapshot_date, entry.market, entry.rank)
        if key in seen:
            raise DataError(
                f"{name}: line {line}: market {entry.market} on {entry.snapshot_date} has rank {entry.rank} twice "
                f"(also line {seen[key]}); one row per chart position is expected"
            )
        seen[key] = line
        entries.append(entry)
        if len(entries) > MAX_ROWS:
            raise DataError(
                f"{name}: line {line}: more than {MAX_ROWS:,} chart rows, the most one run takes; "
                "split the file or filter it to the markets and dates wanted"
            )
    if not entries:
        raise DataError(f"{name}: the chart file holds no rows")
    return ChartFile(name=name, format=fmt, entries=tuple(entries))
