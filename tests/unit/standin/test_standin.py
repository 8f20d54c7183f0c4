"""Spotify stand-in: catalogue invariants and API behaviour as seen through spotipy."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyClientCredentials, SpotifyOauthError
from werkzeug.serving import make_server

from spotify_pipeline_tools.standin import build_demo_catalogue, create_app
from spotify_pipeline_tools.standin.catalogue import BR_PLAYLIST_ID, GLOBAL_PLAYLIST_ID, KR_PLAYLIST_ID, Catalogue

CLIENT_ID = "standin-client-id"
# Generated per test session, like the stack's: no credential-shaped literal in the tests.
CLIENT_SECRET = secrets.token_urlsafe(24)
UNKNOWN_ID = "0" * 22
FEATURE_KEYS = (
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "duration_ms",
    "time_signature",
)

# The audio-features endpoint is deprecated upstream; spotipy warns on every call.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@contextmanager
def serve(restricted: frozenset[str] = frozenset()) -> Iterator[str]:
    app = create_app(build_demo_catalogue(), CLIENT_ID, CLIENT_SECRET, restricted=restricted)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def client(base: str, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> spotipy.Spotify:
    """A spotipy client wired the way production points it at the stand-in."""

    class StandinCredentials(SpotifyClientCredentials):  # type: ignore[misc]
        OAUTH_TOKEN_URL = base + "/api/token"

    auth = StandinCredentials(client_id=client_id, client_secret=client_secret, cache_handler=MemoryCacheHandler())
    sp = spotipy.Spotify(auth_manager=auth, retries=0, status_retries=0)
    sp.prefix = base + "/v1/"
    return sp


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return build_demo_catalogue()


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture()
def sp(base: str) -> spotipy.Spotify:
    return client(base)


def stats(base: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(base + "/_standin/stats", timeout=5).json()
    return body


def token(base: str) -> str:
    resp = requests.post(
        base + "/api/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5
    )
    resp.raise_for_status()
    access: str = resp.json()["access_token"]
    return access


def raises_status(status: int, call: Callable[[], object]) -> spotipy.SpotifyException:
    with pytest.raises(spotipy.SpotifyException) as info:
        call()
    assert info.value.http_status == status
    return info.value


# --- catalogue -----------------------------------------------------------------------------------------


def test_catalogue_invariants(catalogue: Catalogue) -> None:
    assert {p.id: (p.name, p.market) for p in catalogue.playlists.values()} == {
        GLOBAL_PLAYLIST_ID: ("Top 50 - Global", "GLOBAL"),
        BR_PLAYLIST_ID: ("Top 50 - Brazil", "BR"),
        KR_PLAYLIST_ID: ("Top 50 - South Korea", "KR"),
    }
    charts = Counter(t for p in catalogue.playlists.values() for t in p.track_ids)
    assert all(len(p.track_ids) == len(set(p.track_ids)) == 50 for p in catalogue.playlists.values())
    assert len(charts) == len(catalogue.tracks) == 143
    assert 3 in charts.values() and sum(n - 1 for n in charts.values()) == 7
    assert all("SYNTHETIC DEMO DATA" in p.description for p in catalogue.playlists.values())

    tracks = list(catalogue.tracks.values())
    assert tracks[0]["name"] == "Demo Track 001 (synthetic)"
    assert {len(t["artists"]) for t in tracks} == {1, 2, 3}
    assert all(t["artists"][0]["id"] in catalogue.artists for t in tracks)
    assert all(a["name"].startswith("Synthetic Artist ") for a in catalogue.artists.values())
    genre_counts = [len(a["genres"]) for a in catalogue.artists.values()]
    assert genre_counts.count(0) >= 3 and max(genre_counts) <= 4

    features = catalogue.audio_features
    assert set(features) == set(catalogue.tracks)
    assert sum(f is None for f in features.values()) == 1
    vectors = Counter(tuple(dict(f)[k] for k in FEATURE_KEYS) for f in features.values() if f is not None)
    assert max(vectors.values()) >= 2  # exact ties exist
    for f in features.values():
        if f is None:
            continue
        units = (f["danceability"], f["energy"], f["valence"], f["acousticness"], f["liveness"])
        assert all(0 <= u <= 1 for u in units)
        assert -20 <= f["loudness"] <= -1 and 60 <= f["tempo"] <= 200 and 0 <= f["key"] <= 11
        assert 3 <= f["time_signature"] <= 5 and 120_000 <= f["duration_ms"] <= 300_000
        assert catalogue.tracks[f["id"]]["duration_ms"] == f["duration_ms"]


def test_catalogue_is_deterministic(catalogue: Catalogue) -> None:
    assert build_demo_catalogue() == catalogue == build_demo_catalogue(2023)
    assert build_demo_catalogue(seed=7) != catalogue


# --- API through spotipy ----------------------------------------------------------------------------


def test_pagination_collects_chart_in_order(sp: spotipy.Spotify, catalogue: Catalogue, base: str) -> None:
    page = sp.playlist_items(GLOBAL_PLAYLIST_ID, limit=20)
    pages, rows = 1, list(page["items"])
    assert page["total"] == 50 and page["previous"] is None and page["next"].startswith(base + "/v1/")
    while page["next"]:
        page = sp.next(page)
        pages += 1
        rows += page["items"]
    assert pages == 3 and page["offset"] == 40 and page["previous"].endswith("offset=20&limit=20")
    assert [r["item"]["id"] for r in rows] == list(catalogue.playlists[GLOBAL_PLAYLIST_ID].track_ids)
    assert all(r["track"] == r["item"] and r["added_at"].endswith("Z") for r in rows)
    # spotipy 2.26 only calls /items; the legacy /tracks path (max limit 100) must still answer.
    legacy = sp._get(f"playlists/{GLOBAL_PLAYLIST_ID}/tracks", limit=100)
    assert [r["track"]["id"] for r in legacy["items"]] == [r["item"]["id"] for r in rows]


def test_playlist_object(sp: spotipy.Spotify) -> None:
    playlist = sp.playlist(KR_PLAYLIST_ID)
    assert playlist["name"] == "Top 50 - South Korea" and "SYNTHETIC DEMO DATA" in playlist["description"]
    assert playlist["tracks"]["total"] == playlist["items"]["total"] == 50
    assert len(playlist["tracks"]["items"]) == 50 and playlist["tracks"]["next"] is None


def test_bulk_lookups(sp: spotipy.Spotify, catalogue: Catalogue) -> None:
    ids = list(catalogue.tracks)[:50]
    tracks = sp.tracks(ids)["tracks"]
    assert [t["id"] for t in tracks] == ids
    assert tracks[0]["uri"] == f"spotify:track:{ids[0]}" and tracks[0]["type"] == "track"
    assert set(tracks[0]["album"]) >= {"id", "name", "release_date", "release_date_precision", "artists"}
    assert sp.tracks([ids[0], UNKNOWN_ID])["tracks"][1] is None
    assert sp.track(ids[1]) == catalogue.tracks[ids[1]]

    artist_ids = list(catalogue.artists)[:50]
    artists = sp.artists(artist_ids)["artists"]
    assert [a["id"] for a in artists] == artist_ids
    assert set(artists[0]) >= {"genres", "popularity", "followers"}

    featureless = next(t for t, f in catalogue.audio_features.items() if f is None)
    all_ids = [*list(catalogue.tracks)[:99], featureless]
    features = sp.audio_features(all_ids)
    assert len(features) == 100 and features[-1] is None
    assert features[0]["id"] == all_ids[0] and features[0]["type"] == "audio_features"
    raises_status(404, lambda: sp._get(f"audio-features/{featureless}"))


def test_api_errors(sp: spotipy.Spotify, base: str, catalogue: Catalogue) -> None:
    err = raises_status(404, lambda: sp.playlist_items(UNKNOWN_ID))
    assert "Resource not found" in str(err)
    raises_status(404, lambda: sp.track(UNKNOWN_ID))
    raises_status(400, lambda: sp.playlist_items(GLOBAL_PLAYLIST_ID, limit=51))
    raises_status(400, lambda: sp._get("tracks/abc"))
    assert "Too many ids" in str(raises_status(400, lambda: sp.tracks(list(catalogue.tracks)[:51])))

    resp = requests.get(f"{base}/v1/tracks/{UNKNOWN_ID}", timeout=5)
    assert resp.status_code == 401
    assert resp.json() == {"error": {"status": 401, "message": "No token provided"}}
    resp = requests.get(f"{base}/v1/tracks/{UNKNOWN_ID}", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert resp.json()["error"]["message"] == "Invalid access token"


def test_bad_credentials(base: str) -> None:
    with pytest.raises(SpotifyOauthError) as info:
        client(base, client_secret="wrong").playlist(GLOBAL_PLAYLIST_ID)
    assert info.value.error == "invalid_client" and info.value.error_description == "Invalid client"


@pytest.mark.parametrize(
    ("restricted", "call", "status", "body"),
    [
        (
            "playlists",
            lambda sp, ids: sp.playlist_items(GLOBAL_PLAYLIST_ID),
            404,
            {"error": {"status": 404, "message": "Resource not found"}},
        ),
        ("bulk_tracks", lambda sp, ids: sp.tracks(ids), 403, {"error": {"status": 403, "message": "Forbidden"}}),
        (
            "bulk_artists",
            lambda sp, ids: sp.artists(["0" * 22]),
            403,
            {"error": {"status": 403, "message": "Forbidden"}},
        ),
        ("audio_features", lambda sp, ids: sp.audio_features(ids), 403, {"error": {"status": 403}}),
    ],
)
def test_restricted_modes(
    restricted: str,
    call: Callable[[spotipy.Spotify, list[str]], object],
    status: int,
    body: dict[str, Any],
    catalogue: Catalogue,
) -> None:
    ids = list(catalogue.tracks)[:3]
    with serve(frozenset({restricted})) as url:
        sp = client(url)
        err = raises_status(status, lambda: call(sp, ids))
        assert err.msg.endswith(f"\n {body['error'].get('message')}")
        path = {
            "playlists": f"playlists/{GLOBAL_PLAYLIST_ID}/items",
            "bulk_tracks": "tracks?ids=" + ids[0],
            "bulk_artists": "artists?ids=" + ids[0],
            "audio_features": "audio-features?ids=" + ids[0],
        }
        resp = requests.get(
            f"{url}/v1/{path[restricted]}", timeout=5, headers={"Authorization": f"Bearer {token(url)}"}
        )
        assert (resp.status_code, resp.json()) == (status, body)
        if restricted == "bulk_tracks":  # single lookups still work in development mode
            assert sp.track(ids[0])["id"] == ids[0]


def test_restricted_popularity_strips_fields(catalogue: Catalogue) -> None:
    with serve(frozenset({"popularity"})) as url:
        sp = client(url)
        artist = sp.artist(next(iter(catalogue.artists)))
        assert not {"popularity", "followers", "genres"} & set(artist)
        row = sp.playlist_items(BR_PLAYLIST_ID, limit=1)["items"][0]
        assert "popularity" not in row["item"] and "popularity" not in row["track"]
        assert "popularity" in catalogue.tracks[row["item"]["id"]]  # catalogue itself untouched


def test_request_counter_counts_exactly(base: str) -> None:
    requests.post(base + "/_standin/reset", timeout=5).raise_for_status()
    assert stats(base) == {"total": 0, "by_route": {}}
    sp = client(base)  # fresh token cache: one token request
    page = sp.playlist_items(BR_PLAYLIST_ID, limit=20)
    while page["next"]:
        page = sp.next(page)
    sp.tracks([page["items"][0]["item"]["id"]])
    raises_status(404, lambda: sp.artist(UNKNOWN_ID))  # errors are counted too
    expected = {"token": 1, "playlist_items": 3, "tracks": 1, "artist": 1}
    assert stats(base) == {"total": 6, "by_route": expected}
    assert requests.get(base + "/_standin/health", timeout=5).json() == {"ok": True}
    assert stats(base)["total"] == 6  # /_standin routes are not counted


def test_injected_faults(base: str, sp: spotipy.Spotify, catalogue: Catalogue) -> None:
    tid = next(iter(catalogue.tracks))
    spec: dict[str, Any] = {"route": "track", "status": 429, "count": 2, "retry_after": 7}
    assert requests.post(base + "/_standin/faults", json=spec, timeout=5).json()["pending"] == {"track": 2}
    requests.post(base + "/_standin/faults", json={**spec, "status": 503, "count": 1}, timeout=5)
    headers = {"Authorization": f"Bearer {token(base)}"}
    resp = requests.get(f"{base}/v1/tracks/{tid}", headers=headers, timeout=5)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert resp.json() == {"error": {"status": 429, "message": "API rate limit exceeded"}}
    raises_status(429, lambda: sp.track(tid))  # spotipy with retries=0 surfaces the 429 itself
    assert requests.get(f"{base}/v1/tracks/{tid}", headers=headers, timeout=5).status_code == 503
    assert sp.track(tid)["id"] == tid
    bad = requests.post(base + "/_standin/faults", json={"route": "nope", "status": 429}, timeout=5)
    assert bad.status_code == 400
