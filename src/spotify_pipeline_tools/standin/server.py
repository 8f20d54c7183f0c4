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

RESTRICTIONS = frozenset(
    {
        "playlists",  # every playlist 404s
        "editorial_playlists",  # Spotify-owned playlists 404 (apps created after Nov 2024); users' playlists work
        "bulk_tracks",
        "bulk_artists",
        "audio_features",
        "popularity",  # popularity, followers, genres, available_markets removed from answers (Feb 2026)
        "legacy_playlist_tracks",  # /playlists/{id}/tracks gone (Feb 2026: /items)
        "legacy_track_field",  # playlist rows carry the track under `item` only
    }
)
# Each tier of app, as Spotify treats it in 2026 (see docs/data-sources.md).
MODES: dict[str, frozenset[str]] = {
    "extended": frozenset(),
    "dev-2024": frozenset({"editorial_playlists", "audio_features"}),
    "dev-2026": frozenset(
        {
            "editorial_playlists",
            "audio_features",
            "bulk_tracks",
            "bulk_artists",
            "popularity",
            "legacy_playlist_tracks",
            "legacy_track_field",
        }
    ),
}
ROUTES = frozenset(
    {
        "token",
        "playlist",
        "playlist_items",
        "tracks",
        "track",
        "artists",
        "artist",
        "audio_features",
        "audio_feature",
        "reccobeats_audio_features",
    }
)
RECCOBEATS_MAX_IDS = 40
TOKEN_TTL_S = 3600
_ID = re.compile(r"^[0-9A-Za-z]{22}$")
# Fields Spotify stopped returning to development-mode apps (Feb 2026).
_DEV_MODE_HIDDEN = frozenset({"popularity", "followers", "genres", "available_markets"})
_FAULT_MESSAGES = {429: "API rate limit exceeded", 500: "Server error", 502: "Bad gateway", 503: "Service unavailable"}
_FAULT_KINDS = ("status", "slow", "malformed")
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
        self.faults: dict[str, deque[tuple[str, int, int, float]]] = {}  # route -> (kind, status, retry_after, delay)
        self.restricted: frozenset[str] = frozenset()


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
    state.restricted = frozenset(restricted)

    def restricted_now() -> frozenset[str]:
        with state.lock:
            return state.restricted

    def ok(payload: Any) -> Response:
        rules = restricted_now()
        if "legacy_track_field" in rules and isinstance(payload, dict) and isinstance(payload.get("items"), list):
            payload = {**payload, "items": [{k: v for k, v in r.items() if k != "track"} for r in payload["items"]]}
        return jsonify(_redact(payload) if "popularity" in rules else payload)

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
            kind, status, retry_after, delay = fault
            if kind == "slow":
                time.sleep(delay)  # then answer normally: a slow, not a failed, request
            elif kind == "malformed":
                return Response('{"items": [', status=200, mimetype="application/json")
            else:
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
        playlist = catalogue.find_playlist(pid)
        rules = restricted_now()
        # Since Nov 2024 Spotify-owned editorial playlists are invisible to new apps.
        editorial = pid in catalogue.playlists
        if playlist is None or "playlists" in rules or (editorial and "editorial_playlists" in rules):
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
        if kind == "tracks" and "legacy_playlist_tracks" in restricted_now():
            return api_error(404, "Service not found")
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
        if "bulk_tracks" in restricted_now():
            return api_error(403, "Forbidden")
        return bulk(catalogue.tracks, "tracks", 50)

    @app.get("/v1/tracks/<tid>", endpoint="track")
    def track(tid: str) -> Response:
        return single(catalogue.tracks, tid)

    @app.get("/v1/artists", endpoint="artists")
    @app.get("/v1/artists/", endpoint="artists")
    def artists() -> Response:
        if "bulk_artists" in restricted_now():
            return api_error(403, "Forbidden")
        return bulk(catalogue.artists, "artists", 50)

    @app.get("/v1/artists/<aid>", endpoint="artist")
    def artist(aid: str) -> Response:
        return single(catalogue.artists, aid)

    # Since Nov 2024 the API answers new apps' audio-features calls with a message-less 403.
    @app.get("/v1/audio-features", endpoint="audio_features")
    @app.get("/v1/audio-features/", endpoint="audio_features")
    def audio_features() -> Response:
        if "audio_features" in restricted_now():
            return api_error(403)
        return bulk(catalogue.audio_features, "audio_features", 100)

    @app.get("/v1/audio-features/<tid>", endpoint="audio_feature")
    def audio_feature(tid: str) -> Response:
        if "audio_features" in restricted_now():
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
        """Queue faults for a route: ``{"route", "status": 429|500|502|503, "retry_after"}``,
        ``{"route", "kind": "slow", "delay": seconds}`` or ``{"route", "kind": "malformed"}``; ``count``."""
        spec = request.get_json(silent=True) or {}
        route, kind = spec.get("route"), spec.get("kind", "status")
        status, count, retry_after, delay = (
            spec.get("status"),
            spec.get("count", 1),
            spec.get("retry_after", 1),
            spec.get("delay", 1),
        )
        if route not in ROUTES or kind not in _FAULT_KINDS or (kind == "status" and status not in _FAULT_MESSAGES):
            allowed = (
                f"route must be one of {sorted(ROUTES)}, kind one of {list(_FAULT_KINDS)}, "
                f"status one of {sorted(_FAULT_MESSAGES)}"
            )
            return api_error(400, allowed)
        if not isinstance(count, int) or count < 1 or not isinstance(retry_after, int) or retry_after < 0:
            return api_error(400, "count must be a positive integer, retry_after a non-negative integer")
        if not isinstance(delay, int | float) or not 0 <= delay <= 60:
            return api_error(400, "delay must be a number of seconds between 0 and 60")
        fault = (str(kind), int(status or 0), retry_after, float(delay))
        with state.lock:
            state.faults.setdefault(route, deque()).extend([fault] * count)
            pending = {r: len(q) for r, q in state.faults.items() if q}
        return jsonify({"ok": True, "pending": pending})

    @app.route("/_standin/mode", methods=["GET", "POST"], endpoint="standin_mode")
    def mode() -> Response:
        """Switch the tier of app being mimicked: ``{"mode": "extended"|"dev-2024"|"dev-2026"}``
        or ``{"restrict": [...]}``; also clears pending faults. GET shows the current rules."""
        if request.method == "POST":
            spec = request.get_json(silent=True) or {}
            if "mode" in spec:
                if spec["mode"] not in MODES:
                    return api_error(400, f"mode must be one of {sorted(MODES)}")
                rules = MODES[spec["mode"]]
            else:
                raw = spec.get("restrict", [])
                if not isinstance(raw, list) or not set(raw) <= RESTRICTIONS:
                    return api_error(400, f"restrict must be a list among {sorted(RESTRICTIONS)}")
                rules = frozenset(raw)
            with state.lock:
                state.restricted = rules
                state.faults.clear()
        current = restricted_now()
        name = next((m for m, r in MODES.items() if r == current), None)
        return jsonify({"mode": name, "restricted": sorted(current)})

    @app.get("/reccobeats/v1/audio-features", endpoint="reccobeats_audio_features")
    def reccobeats_audio_features() -> Response:
        """ReccoBeats stand-in: no key; unknown ids silently omitted; matched back by ``href``."""
        ids = [i.strip() for i in request.args.get("ids", "").split(",") if i.strip()]
        if not ids:
            resp = jsonify({"error": "ids is required"})
            resp.status_code = 400
            return resp
        if len(ids) > RECCOBEATS_MAX_IDS:
            resp = jsonify({"error": f"at most {RECCOBEATS_MAX_IDS} ids per request"})
            resp.status_code = 400
            return resp
        return jsonify({"content": [catalogue.reccobeats[i] for i in ids if i in catalogue.reccobeats]})

    return app
