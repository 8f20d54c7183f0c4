"""Deterministic, clearly labelled synthetic catalogue served by the Spotify stand-in."""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypedDict

GLOBAL_PLAYLIST_ID = "37i9dQZEVXbNG2KDcFcKOF"
BR_PLAYLIST_ID = "37i9dQZEVXbMXbN3EUUhlg"
KR_PLAYLIST_ID = "37i9dQZEVXbNxXF4SkHj9F"
PLAYLISTS: dict[str, tuple[str, str]] = {  # market -> (playlist id, name)
    "GLOBAL": (GLOBAL_PLAYLIST_ID, "Top 50 - Global"),
    "BR": (BR_PLAYLIST_ID, "Top 50 - Brazil"),
    "KR": (KR_PLAYLIST_ID, "Top 50 - South Korea"),
}
CHART_ADDED_AT = "2023-11-03T00:00:00Z"
# A user's own mirrors of the three charts (what an app without extended quota can still read).
USER_PLAYLISTS: dict[str, tuple[str, str]] = {
    "GLOBAL": ("DemoUserMirrorGLOBAL00", "Weekly mirror - Global (demo user)"),
    "BR": ("DemoUserMirrorBR000000", "Weekly mirror - Brazil (demo user)"),
    "KR": ("DemoUserMirrorKR000000", "Weekly mirror - South Korea (demo user)"),
}
RECCOBEATS_FEATURES = (
    "acousticness",
    "danceability",
    "energy",
    "instrumentalness",
    "key",
    "liveness",
    "loudness",
    "mode",
    "speechiness",
    "tempo",
    "valence",
)

_BASE62 = string.digits + string.ascii_letters
_WEB = "https://open.spotify.com"
_API = "https://api.spotify.com/v1"
_GENRES: dict[str, tuple[str, ...]] = {
    "GLOBAL": (
        "pop",
        "dance pop",
        "hip hop",
        "rap",
        "reggaeton",
        "latin pop",
        "r&b",
        "uk pop",
        "afrobeats",
        "trap latino",
        "edm",
        "indie pop",
    ),
    "BR": (
        "funk carioca",
        "sertanejo",
        "sertanejo universitario",
        "pagode",
        "mpb",
        "piseiro",
        "brazilian hip hop",
        "funk paulista",
    ),
    "KR": ("k-pop", "k-pop boy group", "k-pop girl group", "k-rap", "korean r&b", "k-indie"),
}
_ARTISTS_PER_MARKET = {"GLOBAL": 24, "BR": 18, "KR": 18}
# Cross-market hits (collaborations, one artist per market). 150 chart rows over 143 distinct
# tracks leaves 7 repeated rows: one track in all three charts (2 repeats) + five in two charts.
_SHARED: tuple[tuple[str, ...], ...] = (
    ("GLOBAL", "BR", "KR"),
    ("GLOBAL", "BR"),
    ("GLOBAL", "BR"),
    ("GLOBAL", "KR"),
    ("GLOBAL", "KR"),
    ("BR", "KR"),
)


class ExternalUrls(TypedDict):
    spotify: str


class Image(TypedDict):
    url: str
    height: int | None
    width: int | None


class SimplifiedArtist(TypedDict):
    external_urls: ExternalUrls
    href: str
    id: str
    name: str
    type: str
    uri: str


class Followers(TypedDict):
    href: str | None
    total: int


class Artist(SimplifiedArtist):
    followers: Followers
    genres: list[str]
    images: list[Image]
    popularity: int


class Album(TypedDict):
    album_type: str
    artists: list[SimplifiedArtist]
    external_urls: ExternalUrls
    href: str
    id: str
    images: list[Image]
    name: str
    release_date: str
    release_date_precision: str
    total_tracks: int
    type: str
    uri: str


class ExternalIds(TypedDict):
    isrc: str


class Track(TypedDict):
    album: Album
    artists: list[SimplifiedArtist]
    duration_ms: int
    explicit: bool
    external_ids: ExternalIds
    external_urls: ExternalUrls
    href: str
    id: str
    is_local: bool
    name: str
    popularity: int
    preview_url: str | None
    track_number: int
    type: str
    uri: str


class AudioFeatures(TypedDict):
    danceability: float
    energy: float
    key: int
    loudness: float
    mode: int
    speechiness: float
    acousticness: float
    instrumentalness: float
    liveness: float
    valence: float
    tempo: float
    type: str
    id: str
    uri: str
    track_href: str
    analysis_url: str
    duration_ms: int
    time_signature: int


class User(TypedDict):
    display_name: str
    external_urls: ExternalUrls
    href: str
    id: str
    type: str
    uri: str


class PlaylistItem(TypedDict):
    added_at: str
    added_by: User
    is_local: bool
    item: Track  # Feb-2026 name of the field
    track: Track  # legacy name, still present on older rows


@dataclass(frozen=True)
class Playlist:
    id: str
    name: str
    description: str
    market: str
    track_ids: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    playlists: dict[str, Playlist]  # Spotify-owned editorial playlists
    tracks: dict[str, Track]
    artists: dict[str, Artist]
    audio_features: dict[str, AudioFeatures | None]
    user_playlists: dict[str, Playlist] = field(default_factory=dict)  # owned by a user, readable by any app
    reccobeats: dict[str, dict[str, Any]] = field(default_factory=dict)  # track id -> ReccoBeats item

    def find_playlist(self, playlist_id: str) -> Playlist | None:
        return self.playlists.get(playlist_id) or self.user_playlists.get(playlist_id)

    def playlist_items(self, playlist_id: str) -> list[PlaylistItem]:
        """Playlist rows in chart order, shaped like the API's playlist track objects."""
        owner = _user("spotify", "Spotify") if playlist_id in self.playlists else _user("demo-user", "Demo User")
        playlist = self.find_playlist(playlist_id)
        assert playlist is not None
        return [
            {
                "added_at": CHART_ADDED_AT,
                "added_by": owner,
                "is_local": False,
                "item": self.tracks[tid],
                "track": self.tracks[tid],
            }
            for tid in playlist.track_ids
        ]


def _user(uid: str, name: str) -> User:
    return {
        "display_name": name,
        "external_urls": {"spotify": f"{_WEB}/user/{uid}"},
        "href": f"{_API}/users/{uid}",
        "id": uid,
        "type": "user",
        "uri": f"spotify:user:{uid}",
    }


def _simplified(kind: str, oid: str, name: str) -> SimplifiedArtist:
    return {
        "external_urls": {"spotify": f"{_WEB}/{kind}/{oid}"},
        "href": f"{_API}/{kind}s/{oid}",
        "id": oid,
        "name": name,
        "type": kind,
        "uri": f"spotify:{kind}:{oid}",
    }


def _features(rng: random.Random, tid: str) -> AudioFeatures:
    def unit(lo: float, hi: float) -> float:
        return round(rng.uniform(lo, hi), 3)

    # Chart pop is rarely instrumental: most tracks sit near zero, a few are not.
    instrumental = unit(0.0, 0.01) if rng.random() < 0.85 else unit(0.0, 0.9)
    return {
        "danceability": unit(0.3, 0.95),
        "energy": unit(0.2, 0.97),
        "key": rng.randint(0, 11),
        "loudness": unit(-20.0, -1.0),
        "mode": rng.randint(0, 1),
        "speechiness": unit(0.02, 0.45),
        "acousticness": unit(0.0, 0.9),
        "instrumentalness": instrumental,
        "liveness": unit(0.03, 0.6),
        "valence": unit(0.05, 0.97),
        "tempo": unit(60.0, 200.0),
        "type": "audio_features",
        "id": tid,
        "uri": f"spotify:track:{tid}",
        "track_href": f"{_API}/tracks/{tid}",
        "analysis_url": f"{_API}/audio-analysis/{tid}",
        "duration_ms": rng.randint(120_000, 300_000),
        "time_signature": rng.choice((4, 4, 4, 4, 3, 5)),
    }


def build_demo_catalogue(seed: int = 2023) -> Catalogue:
    """Build the synthetic demo catalogue; the same seed always gives an equal catalogue."""
    rng = random.Random(seed)
    used: set[str] = set()

    def new_id() -> str:
        while True:
            candidate = "".join(rng.choice(_BASE62) for _ in range(22))
            if candidate not in used:
                used.add(candidate)
                return candidate

    artists: dict[str, Artist] = {}
    pools: dict[str, list[str]] = {}
    for market, count in _ARTISTS_PER_MARKET.items():
        pools[market] = []
        for _ in range(count):
            aid = new_id()
            artists[aid] = {
                **_simplified("artist", aid, f"Synthetic Artist {len(artists) + 1:02d}"),
                "followers": {"href": None, "total": rng.randint(1_000, 60_000_000)},
                "genres": rng.sample(_GENRES[market], rng.randint(1, 4)),
                "images": [],
                "popularity": rng.randint(30, 95),
            }
            pools[market].append(aid)
    # Real artist objects often carry no genres; the pipeline must cope with that.
    for aid in rng.sample(list(artists), 4):
        artists[aid]["genres"] = []

    plan = list(_SHARED) + [(m,) for m, n in (("GLOBAL", 45), ("BR", 46), ("KR", 46)) for _ in range(n)]
    rng.shuffle(plan)
    # Primary artists rotate through a shuffled pool so every artist appears on some track.
    rotation = {m: rng.sample(pool, len(pool)) for m, pool in pools.items()}
    cursor = dict.fromkeys(pools, 0)
    credits: list[tuple[str, list[str], tuple[str, ...]]] = []
    for markets in plan:
        if len(markets) > 1:
            names = [rng.choice(pools[m]) for m in markets]
        else:
            m = markets[0]
            names = [rotation[m][cursor[m] % len(rotation[m])]]
            cursor[m] += 1
            roll = rng.random()
            extra = 2 if roll < 0.06 else 1 if roll < 0.25 else 0
            others = [a for a in pools[m] + pools["GLOBAL"] if a != names[0]]
            names += rng.sample(others, extra)
        credits.append((new_id(), names, markets))

    features: dict[str, AudioFeatures | None] = {tid: _features(rng, tid) for tid, _, _ in credits}
    featureless = rng.choice([tid for tid, _, markets in credits if len(markets) == 1])
    # Three pairs of tracks share an exact feature vector: ties the recommender must break stably.
    tied = rng.sample([tid for tid, _, _ in credits if tid != featureless], 6)
    for src, dst in zip(tied[::2], tied[1::2], strict=True):
        src_vec = features[src]
        assert src_vec is not None
        features[dst] = {
            **src_vec,
            "id": dst,
            "uri": f"spotify:track:{dst}",
            "track_href": f"{_API}/tracks/{dst}",
            "analysis_url": f"{_API}/audio-analysis/{dst}",
        }

    tracks: dict[str, Track] = {}
    for number, (tid, names, _) in enumerate(credits, start=1):
        vec = features[tid]
        assert vec is not None
        refs = [_simplified("artist", a, artists[a]["name"]) for a in names]
        album_id = new_id()
        single = rng.random() < 0.6
        total = 1 if single else rng.randint(8, 16)
        released = date(2021, 1, 1) + timedelta(days=rng.randint(0, 1000))
        tracks[tid] = {
            "album": {
                "album_type": "single" if single else "album",
                "artists": refs,
                "external_urls": {"spotify": f"{_WEB}/album/{album_id}"},
                "href": f"{_API}/albums/{album_id}",
                "id": album_id,
                "images": [],
                "name": f"Demo Album {number:03d} (synthetic)",
                "release_date": released.isoformat(),
                "release_date_precision": "day",
                "total_tracks": total,
                "type": "album",
                "uri": f"spotify:album:{album_id}",
            },
            "artists": refs,
            "duration_ms": vec["duration_ms"],
            "explicit": rng.random() < 0.3,
            "external_ids": {"isrc": f"QZSYN23{number:05d}"},
            "external_urls": {"spotify": f"{_WEB}/track/{tid}"},
            "href": f"{_API}/tracks/{tid}",
            "id": tid,
            "is_local": False,
            "name": f"Demo Track {number:03d} (synthetic)",
            "popularity": rng.randint(40, 100),
            "preview_url": None,
            "track_number": 1 if single else rng.randint(1, total),
            "type": "track",
            "uri": f"spotify:track:{tid}",
        }
    # Mirrors the real API, which returns null for tracks it has no analysis for.
    features[featureless] = None

    playlists: dict[str, Playlist] = {}
    for market, (pid, name) in PLAYLISTS.items():
        chart = [tid for tid, _, markets in credits if market in markets]
        rng.shuffle(chart)
        description = f"SYNTHETIC DEMO DATA - not real Spotify charts; stand-in for the weekly {name}."
        playlists[pid] = Playlist(pid, name, description, market, tuple(chart))
    # Everything below uses its own generator, so the catalogue above never changes with it.
    user_playlists = {
        pid: Playlist(pid, name, "SYNTHETIC DEMO DATA - a user's mirror of the chart.", market, editorial.track_ids)
        for (market, (pid, name)), editorial in zip(USER_PLAYLISTS.items(), playlists.values(), strict=True)
    }
    return Catalogue(
        playlists=playlists,
        tracks=tracks,
        artists=artists,
        audio_features=features,
        user_playlists=user_playlists,
        reccobeats=_reccobeats(features, random.Random(seed + 1)),
    )


def _reccobeats(features: dict[str, AudioFeatures | None], rng: random.Random) -> dict[str, dict[str, Any]]:
    """ReccoBeats' view: close to, not equal to, Spotify's values; three tracks unknown to it."""
    known = sorted(tid for tid, f in features.items() if f is not None)
    unknown = set(rng.sample(known, 2))
    out: dict[str, dict[str, Any]] = {}
    for tid in known:
        vec = features[tid]
        if tid in unknown or vec is None:
            continue
        item: dict[str, Any] = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"reccobeats:{tid}")),
            "href": f"{_WEB}/track/{tid}",
        }
        for name in RECCOBEATS_FEATURES:
            value = vec[name]  # type: ignore[literal-required]
            if isinstance(value, float):
                jitter = rng.uniform(-0.02, 0.02) * (20.0 if name in ("loudness", "tempo") else 1.0)
                value = round(value + jitter, 3)
                if name not in ("loudness", "tempo"):
                    value = min(1.0, max(0.0, value))
            item[name] = value
        out[tid] = item
    return out
