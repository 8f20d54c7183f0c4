"""The raw Spotify/chart records a run stored, checked field by field: typed access to each raw
object extract wrote (API answers, chart-file rows, cache entries), for :mod:`.transform`."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pandas as pd

from spotify_pipeline.errors import DataError
from spotify_pipeline.features import INPUT_RANGES, INT_FEATURES
from spotify_pipeline.safe_text import strip_bidi
from spotify_pipeline.sources.charts_csv import INT64_MAX, MAX_RANK


def _timestamp(value: object) -> datetime | None:
    """An ISO 8601 timestamp (UTC when it names no offset); None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if pd.isna(stamp):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    when: datetime = stamp.to_pydatetime()
    return when


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class _Raw:
    """Typed access to one raw object (API answer or chart rows as extract stored them), with
    errors naming the object, the field and the value: a malformed answer is a permanent
    :class:`DataError`, never a crash deeper down. Returns cleaned copies holding only the fields
    the tables use."""

    def __init__(self, name: str) -> None:
        self.name = name

    def bad(self, path: str, value: object, reason: str) -> DataError:
        return DataError(f"{self.name}: field {path!r} = {_show(value)}: {reason}")

    def obj(self, value: object, path: str, *, optional: bool = False) -> dict[str, Any]:
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise self.bad(path, value, "expected a JSON object")
        return value

    def items(self, value: object, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.bad(path, value, "expected a list")
        return value

    def text(self, value: object, path: str, *, optional: bool = True) -> str:
        if value is None and optional:
            return ""
        if not isinstance(value, str) or (not optional and not value):
            raise self.bad(path, value, "expected a string" if optional else "expected a non-empty string")
        return value

    def display(self, value: object, path: str) -> str:
        """Text shown to people (a track, album, artist or genre name): without bidi controls."""
        return strip_bidi(self.text(value, path))

    def integer(self, value: object, path: str, low: int = -INT64_MAX, high: int = INT64_MAX) -> int | None:
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.bad(path, value, f"expected an integer from {low} to {high}")
        return value

    def boolean(self, value: object, path: str) -> bool | None:
        if value is not None and not isinstance(value, bool):
            raise self.bad(path, value, "expected true or false")
        return value

    def time(self, value: object, path: str) -> datetime | None:
        if value is None or value == "":
            return None
        when = _timestamp(value) if isinstance(value, str) else None
        if when is None:
            raise self.bad(path, value, "expected an ISO 8601 timestamp")
        return when

    def features(self, value: object, path: str) -> dict[str, Any]:
        feat = self.obj(value, path)
        out: dict[str, Any] = {}
        for col, (low, high) in INPUT_RANGES.items():
            v = feat.get(col)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not low <= v <= high:
                raise self.bad(f"{path}.{col}", v, f"expected a number from {low:g} to {high:g}")
            if col in INT_FEATURES and v != int(v):
                raise self.bad(f"{path}.{col}", v, "expected a whole number")
            out[col] = v
        return out

    def track(self, value: object, path: str) -> dict[str, Any]:
        t = self.obj(value, path)
        credits = []
        for i, a in enumerate(self.items(t.get("artists"), f"{path}.artists")):
            a = self.obj(a, f"{path}.artists[{i}]")
            if a.get("id") is not None:
                credits.append(
                    {
                        "id": self.text(a.get("id"), f"{path}.artists[{i}].id", optional=False),
                        "name": self.display(a.get("name"), f"{path}.artists[{i}].name") or None,
                    }
                )
        album = self.obj(t.get("album"), f"{path}.album", optional=True)
        return {
            "id": self.text(t.get("id"), f"{path}.id", optional=False),
            "name": self.display(t.get("name"), f"{path}.name") or None,
            "artists": credits,
            "album": {
                "id": self.text(album.get("id"), f"{path}.album.id") or None,
                "name": self.display(album.get("name"), f"{path}.album.name") or None,
                "release_date": self.text(album.get("release_date"), f"{path}.album.release_date") or None,
            },
            "duration_ms": self.integer(t.get("duration_ms"), f"{path}.duration_ms", 0),
            "explicit": self.boolean(t.get("explicit"), f"{path}.explicit"),
            "popularity": self.integer(t.get("popularity"), f"{path}.popularity", 0, 100),
            "external_ids": {
                "isrc": self.text(
                    self.obj(t.get("external_ids"), f"{path}.external_ids", optional=True).get("isrc"),
                    f"{path}.external_ids.isrc",
                )
                or None
            },
            "external_urls": {
                "spotify": self.text(
                    self.obj(t.get("external_urls"), f"{path}.external_urls", optional=True).get("spotify"),
                    f"{path}.external_urls.spotify",
                )
                or None
            },
        }

    def artist(self, value: object, path: str) -> dict[str, Any]:
        a = self.obj(value, path)
        genres = [
            self.display(g, f"{path}.genres[{i}]") for i, g in enumerate(self.items(a.get("genres"), f"{path}.genres"))
        ]
        followers = self.obj(a.get("followers"), f"{path}.followers", optional=True)
        return {
            "id": self.text(a.get("id"), f"{path}.id", optional=False),
            "name": self.display(a.get("name"), f"{path}.name") or None,
            "popularity": self.integer(a.get("popularity"), f"{path}.popularity", 0, 100),
            "followers": {"total": self.integer(followers.get("total"), f"{path}.followers.total", 0)},
            "genres": [g for g in genres if g],
        }

    def chart_entry(self, value: object, path: str) -> dict[str, Any]:
        line = self.obj(value, path)
        names = self.items(line.get("artist_names"), f"{path}.artist_names")
        extra = self.obj(line.get("extra"), f"{path}.extra", optional=True)
        features = line.get("features")
        return {
            "rank": self.integer(line.get("rank"), f"{path}.rank", 1, MAX_RANK) or self._missing(path, "rank"),
            "track_id": self.text(line.get("track_id"), f"{path}.track_id", optional=False),
            "track_name": self.display(line.get("track_name"), f"{path}.track_name") or None,
            "artist_names": [self.display(n, f"{path}.artist_names[{i}]") for i, n in enumerate(names)],
            "features": self.features(features, f"{path}.features") if features is not None else None,
            "extra": {
                "album_name": self.display(extra.get("album_name"), f"{path}.extra.album_name") or None,
                "album_release_date": self.text(extra.get("album_release_date"), f"{path}.extra.album_release_date")
                or None,
                "duration_ms": self.integer(extra.get("duration_ms"), f"{path}.extra.duration_ms", 0),
                "explicit": self.boolean(extra.get("explicit"), f"{path}.extra.explicit"),
                "popularity": self.integer(extra.get("popularity"), f"{path}.extra.popularity", 0, 100),
            },
        }

    def cached(self, kind: str, value: object, path: str) -> dict[str, Any]:
        entry = self.obj(value, path)
        fetched = entry.get("fetched_at")
        self.time(fetched, f"{path}.fetched_at")
        item = entry.get("value")
        if item is not None:
            if kind == "tracks":
                item = self.track(item, f"{path}.value")
            elif kind == "artists":
                item = self.artist(item, f"{path}.value")
            elif kind.startswith("features-"):
                item = self.features(item, f"{path}.value") or None
        return {"fetched_at": fetched, "value": item}

    def _missing(self, path: str, name: str) -> int:
        raise self.bad(f"{path}.{name}", None, "required")
