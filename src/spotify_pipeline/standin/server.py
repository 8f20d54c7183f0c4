"""Flask stand-in for the subset of the Spotify Web API (and accounts service) the pipeline uses."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider

from .catalogue import Catalogue, Playlist

RESTRICTIONS = frozenset({"playlists", "bulk_tracks", "bulk_artists", "audio_features", "popularity"})
ROUTES = frozenset(
    {"token", "playlist", "playlist_items", "tracks", "track", "artists", "artist", "audio_features", "audio_feature"}
)
TOKEN_TTL_S = 3600
_ID = re.compile(r"^[0-9A-Za-z]{22}$")
# Fields Spotify stopped returning to development-mode apps (Feb 2026).
_DEV_MODE_HIDDEN = frozenset({"popularity", "followers", "genres", "available_markets"})
_FAULT_MESSAGES = {429: "API rate limit exceeded", 500: "Server error", 502: "Bad gateway", 503: "Service unavailable"}
_ITEMS_MAX_LIMIT, _TRACKS_MAX_LIMIT = 50, 100


class _OrderedJSON(DefaultJSONProvider):
    sort_keys = False  # keep the API's field order, which makes diffs against real responses readable


def api_error(status: int, message: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
    """Web API error body; `message` None gives the bare `{"error": {"status": N}}` form."""
    body: dict[str, object] = {"status": status}
    if message is not None:
        body["message"] = message
    resp = jsonify({"error": body})
    resp.status_code = status
    resp.headers.update(headers or {})
    return resp


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items() if k not in _DEV_MODE_HIDDEN}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


class _State:
    """Tokens, request counters and pending faults, shared by werkzeug's request threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.counts: Counter[str] = Counter()
        self.faults: dict[str, deque[tuple[int, int]]] = {}  # route -> (status, retry_after) in order


def create_app(
    catalogue: Catalogue, client_id: str, client_secret: str, *, restricted: frozenset[str] = frozenset()
) -> Flask:
    """Build the stand-in app; `restricted` simulates a 2026 development-mode app."""
    unknown = restricted - RESTRICTIONS
    if unknown:
        raise ValueError(f"unknown restrictions: {sorted(unknown)}")
    app = Flask(__name__)
    app.json = _OrderedJSON(app)
    state = _State()

    def ok(payload: Any) -> Response:
        return jsonify(_redact(payload) if "popularity" in restricted else payload)

    @app.before_request
    def gate() -> Response | None:
        route = request.endpoint or "unmatched"
        if route.startswith("standin_"):
            return None
        with state.lock:
            state.counts[route] += 1
            queue = state.faults.get(route)
            fault = queue.popleft() if queue else None
        if fault is not None:
            status, retry_after = fault
            headers = {"Retry-After": str(retry_after)} if status == 429 else None
            return api_error(status, _FAULT_MESSAGES.get(status, "Server error"), headers)
        if not request.path.startswith("/v1/"):
            return None
        auth = request.headers.get("Authorization", "")
        if not auth:
            return api_error(401, "No token provided")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        with state.lock:
            expiry = state.tokens.get(token)
        if expiry is None:
            return api_error(401, "Invalid access token")
        if expiry < time.monotonic():
            return api_error(401, "The access token expired")
        return None

    @app.errorhandler(404)
    def not_found(_: Exception) -> Response:
        return api_error(404, "Service not found")  # what the real API says for unknown paths

    @app.errorhandler(405)
    def bad_method(_: Exception) -> Response:
        return api_error(405, "Method not allowed")

    def oauth_error(error: str, description: str) -> Response:
        # The accounts service uses the flat OAuth 2.0 error shape, not the Web API's nested one.
        resp = jsonify({"error": error, "error_description": description})
        resp.status_code = 400
        return resp

    @app.post("/api/token", endpoint="token")
    def token() -> Response:
        # The accounts service accepts credentials as HTTP Basic auth or as form fields.
        basic = request.authorization
        cid = basic.username if basic and basic.type == "basic" else request.form.get("client_id")
        secret = basic.password if basic and basic.type == "basic" else request.form.get("client_secret")
        if request.form.get("grant_type") != "client_credentials":
            return oauth_error("unsupported_grant_type", "grant_type parameter is missing")
        given, expected = f"{cid}:{secret}".encode(), f"{client_id}:{client_secret}".encode()
        if cid is None or secret is None or not secrets.compare_digest(given, expected):
            return oauth_error("invalid_client", "Invalid client")
        access = "BQ" + secrets.token_urlsafe(48)
        with state.lock:
            state.tokens[access] = time.monotonic() + TOKEN_TTL_S
        return jsonify({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL_S})

    def find_playlist(pid: str) -> Playlist | Response:
        if not _ID.match(pid):
            return api_error(400, "Invalid base62 id")
        playlist = catalogue.playlists.get(pid)
        # Since Nov 2024 Spotify-owned editorial playlists are invisible to new apps.
        if playlist is None or "playlists" in restricted:
            return api_error(404, "Resource not found")
        return playlist

    def paging(playlist: Playlist, kind: str, limit: int, offset: int) -> dict[str, Any]:
        rows = catalogue.playlist_items(playlist.id)
        total = len(rows)
        base = f"{request.host_url.rstrip('/')}/v1/playlists/{playlist.id}/{kind}"

        def url(at: int) -> str:
            return f"{base}?offset={at}&limit={limit}"

        return {
            "href": url(offset),
            "items": rows[offset : offset + limit],
            "limit": limit,
            "next": url(offset + limit) if offset + limit < total else None,
            "offset": offset,
            "previous": url(max(0, offset - limit)) if offset > 0 else None,
            "total": total,
        }

    @app.get("/v1/playlists/<pid>", endpoint="playlist")
    def playlist(pid: str) -> Response:
        found = find_playlist(pid)
        if isinstance(found, Response):
            return found
        owner = catalogue.playlist_items(pid)[0]["added_by"] if found.track_ids else None
        return ok(
            {
                "collaborative": False,
                "description": found.description,
                "external_urls": {"spotify": f"https://open.spotify.com/playlist/{pid}"},
                "followers": {"href": None, "total": 0},
                "href": f"https://api.spotify.com/v1/playlists/{pid}",
                "id": pid,
                "images": [],
                "name": found.name,
                "owner": owner,
                "primary_color": None,
                "public": True,
                "snapshot_id": f"synthetic-{pid}",
                # The embedded first page is 100 rows for `tracks`; Feb 2026 renamed it to `items`.
                "tracks": paging(found, "tracks", _TRACKS_MAX_LIMIT, 0),
                "items": paging(found, "items", _ITEMS_MAX_LIMIT, 0),
                "type": "playlist",
                "uri": f"spotify:playlist:{pid}",
            }
        )

    @app.get("/v1/playlists/<pid>/items", endpoint="playlist_items")
    @app.get("/v1/playlists/<pid>/tracks", endpoint="playlist_items")
    def playlist_items(pid: str) -> Response:
        found = find_playlist(pid)
        if isinstance(found, Response):
            return found
        kind = request.path.rsplit("/", 1)[1]
        max_limit = _ITEMS_MAX_LIMIT if kind == "items" else _TRACKS_MAX_LIMIT
        try:
            limit = int(request.args.get("limit", "20"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= max_limit:
            return api_error(400, "Invalid limit")
        try:
            offset = int(request.args.get("offset", "0"))
        except ValueError:
            offset = -1
        if offset < 0:
            return api_error(400, "Invalid offset")
        return ok(paging(found, kind, limit, offset))

    def single(table: Mapping[str, Any], oid: str) -> Response:
        if not _ID.match(oid):
            return api_error(400, "invalid id")
        found = table.get(oid)
        return ok(found) if found is not None else api_error(404, "Resource not found")

    def bulk(table: Mapping[str, Any], key: str, max_ids: int) -> Response:
        ids = [i for i in request.args.get("ids", "").split(",") if i]
        if len(ids) > max_ids:
            return api_error(400, "Too many ids requested")
        if not ids or not all(_ID.match(i) for i in ids):
            return api_error(400, "invalid id")
        return ok({key: [table.get(i) for i in ids]})

    # spotipy requests `tracks/?ids=...` (trailing slash), hence both spellings of each bulk route.
    @app.get("/v1/tracks", endpoint="tracks")
    @app.get("/v1/tracks/", endpoint="tracks")
    def tracks() -> Response:
        if "bulk_tracks" in restricted:
            return api_error(403, "Forbidden")
        return bulk(catalogue.tracks, "tracks", 50)

    @app.get("/v1/tracks/<tid>", endpoint="track")
    def track(tid: str) -> Response:
        return single(catalogue.tracks, tid)

    @app.get("/v1/artists", endpoint="artists")
    @app.get("/v1/artists/", endpoint="artists")
    def artists() -> Response:
        if "bulk_artists" in restricted:
            return api_error(403, "Forbidden")
        return bulk(catalogue.artists, "artists", 50)

    @app.get("/v1/artists/<aid>", endpoint="artist")
    def artist(aid: str) -> Response:
        return single(catalogue.artists, aid)

    # Since Nov 2024 the API answers new apps' audio-features calls with a message-less 403.
    @app.get("/v1/audio-features", endpoint="audio_features")
    @app.get("/v1/audio-features/", endpoint="audio_features")
    def audio_features() -> Response:
        if "audio_features" in restricted:
            return api_error(403)
        return bulk(catalogue.audio_features, "audio_features", 100)

    @app.get("/v1/audio-features/<tid>", endpoint="audio_feature")
    def audio_feature(tid: str) -> Response:
        if "audio_features" in restricted:
            return api_error(403)
        return single(catalogue.audio_features, tid)

    @app.get("/_standin/health", endpoint="standin_health")
    def health() -> Response:
        return jsonify({"ok": True})

    @app.get("/_standin/stats", endpoint="standin_stats")
    def stats() -> Response:
        with state.lock:
            return jsonify({"total": sum(state.counts.values()), "by_route": dict(state.counts)})

    @app.post("/_standin/reset", endpoint="standin_reset")
    def reset() -> Response:
        with state.lock:
            state.counts.clear()
        return jsonify({"ok": True})

    @app.post("/_standin/faults", endpoint="standin_faults")
    def faults() -> Response:
        spec = request.get_json(silent=True) or {}
        route, status = spec.get("route"), spec.get("status")
        count, retry_after = spec.get("count", 1), spec.get("retry_after", 1)
        if route not in ROUTES or status not in _FAULT_MESSAGES:
            allowed = f"route must be one of {sorted(ROUTES)}, status one of {sorted(_FAULT_MESSAGES)}"
            return api_error(400, allowed)
        if not isinstance(count, int) or count < 1 or not isinstance(retry_after, int) or retry_after < 0:
            return api_error(400, "count must be a positive integer, retry_after a non-negative integer")
        with state.lock:
            state.faults.setdefault(route, deque()).extend([(status, retry_after)] * count)
            pending = {r: len(q) for r, q in state.faults.items() if q}
        return jsonify({"ok": True, "pending": pending})

    return app
