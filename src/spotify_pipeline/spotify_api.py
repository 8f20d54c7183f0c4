"""Spotify Web API access through spotipy's public methods, with the bounded retries of :mod:`.sources.http`.

spotipy retries through a urllib3 ``Retry`` that it mounts only on a session it builds itself, and
that ``Retry`` sleeps whatever ``Retry-After`` asks (up to 6 h, past any function timeout). So
spotipy gets a plain ``requests.Session`` (every status reaches us with its headers) and each call
goes through :class:`~spotify_pipeline.sources.http.RetryPolicy`. The API base is spotipy's public
``prefix`` setting, the token endpoint its ``OAUTH_TOKEN_URL``; tokens live in memory only
(``MemoryCacheHandler``: no ``.cache`` file).

What a 2026 app may use differs by tier (see docs/data-sources.md); this client detects each
restriction once per run and never asks a restricted endpoint twice:

* editorial playlists (404 to apps created after Nov 2024) -> :class:`SourceUnavailable` at once,
  naming the alternatives;
* ``GET /tracks?ids=`` and ``GET /artists?ids=`` (removed for development-mode apps in Feb 2026,
  403/404) -> one request per item, for the rest of the run;
* ``GET /audio-features`` (403 since Nov 2024) -> :class:`SourceUnavailable`; the feature-provider
  chain moves on to the next provider;
* fields removed in 2026 (``popularity``, ``followers``, ``genres``) simply come back absent and
  become nulls downstream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyClientCredentials, SpotifyOauthError

from spotify_pipeline.config import DEFAULT_PLAYLISTS, Settings
from spotify_pipeline.errors import PermanentError, SourceUnavailable
from spotify_pipeline.sources.http import HttpError, MalformedResponse, RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

ARTISTS_PER_CALL = 50
TRACKS_PER_CALL = 50
FEATURES_PER_CALL = 100
PAGE_SIZE = 50
RESTRICTED = (403, 404)

Batch = tuple[list[str], dict[str, Any]]  # (ids asked for, response body as received)


def restricted_playlist_message(playlist_id: str, market: str, status: int) -> str:
    editorial = playlist_id in DEFAULT_PLAYLISTS.values()
    what = "Spotify's editorial Top 50 playlist" if editorial else "playlist"
    return (
        f"market {market}: Spotify answered {status} for {what} {playlist_id}. Apps created after 27 Nov 2024 "
        "without extended quota cannot read Spotify-owned editorial playlists (every Top 50). Fix: use chart "
        "source `charts-csv` (drop the weekly chart CSV into the bucket's inbox/, or `spotify-pipeline run "
        "--charts-csv FILE`), or point `spotify-playlist` at a playlist this app can read (message field "
        "`playlists` or PIPELINE_PLAYLISTS, e.g. your own mirror of the chart), or use an app with extended quota"
    )


def http_error(exc: spotipy.SpotifyException, prefix: str) -> HttpError:
    """What the retry policy needs from spotipy's error, whose message is ``"<url>:\\n <Spotify's message>"``;
    the error names the path under the API base (``playlists/<id>/items``), not the query."""
    url, _, message = str(exc.msg).rpartition(":\n")
    path = urlsplit(url.removeprefix(prefix)).path
    headers = exc.headers or {}
    return HttpError(int(exc.http_status), path, message.strip() or None, parse_retry_after(headers.get("Retry-After")))


class SpotifyApi:
    def __init__(self, settings: Settings, *, policy: RetryPolicy | None = None) -> None:
        if not settings.spotify_client_id or not settings.spotify_client_secret:
            raise SourceUnavailable(
                "Spotify credentials missing: set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET "
                "(in the cloud: add versions to the two Secret Manager secrets, see docs/deploy.md)"
            )
        token_url = settings.spotify_token_url

        class _Credentials(SpotifyClientCredentials):  # type: ignore[misc]
            OAUTH_TOKEN_URL = token_url  # spotipy reads the token endpoint from this class attribute

        auth = _Credentials(
            client_id=settings.spotify_client_id,
            client_secret=settings.spotify_client_secret,
            cache_handler=MemoryCacheHandler(),
            requests_timeout=settings.spotify_timeout_seconds,
        )
        self._sp = spotipy.Spotify(
            auth_manager=auth,
            requests_session=requests.Session(),  # no Retry adapter: RetryPolicy decides
            requests_timeout=settings.spotify_timeout_seconds,
        )
        self._sp.prefix = settings.spotify_api_base  # the stand-in locally, the real API in the cloud
        self.policy = policy or RetryPolicy(
            retry_after_cap=settings.retry_after_cap_seconds, budget=settings.retry_budget_seconds
        )
        self.requests_sent = 0
        self.unavailable: dict[str, str] = {}  # endpoint -> what was detected, once per run

    # -- transport ----------------------------------------------------------------------------

    def _once(self, call: Callable[[], Any]) -> dict[str, Any]:
        self.requests_sent += 1
        try:
            body = call()
        except SpotifyOauthError as exc:
            raise PermanentError(
                f"Spotify refused the client credentials ({exc}); check SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET"
            ) from None
        except spotipy.SpotifyException as exc:
            raise http_error(exc, self._sp.prefix) from None
        if not isinstance(body, dict):  # spotipy answers None for a body that is not JSON
            raise MalformedResponse(f"Spotify gave {type(body).__name__}, not a JSON object")
        return body

    def _get(self, what: str, call: Callable[[], Any]) -> dict[str, Any]:
        return self.policy.call(what, partial(self._once, call), service="Spotify")

    # -- playlists ----------------------------------------------------------------------------

    def playlist_pages(self, playlist_id: str, market: str) -> Iterator[dict[str, Any]]:
        """Every page of a playlist's ``/items``, following ``next`` until the end."""
        try:
            page = self._get(
                f"playlist {playlist_id} ({market})",
                partial(self._sp.playlist_items, playlist_id, limit=PAGE_SIZE, additional_types=("track",)),
            )
        except HttpError as exc:
            if exc.status in RESTRICTED:
                raise SourceUnavailable(restricted_playlist_message(playlist_id, market, exc.status)) from None
            raise
        yield page
        while page.get("next"):
            page = self._get(f"playlist {playlist_id} ({market}) next page", partial(self._sp.next, page))
            yield page

    # -- metadata: bulk where the app has it, one by one where it does not ---------------------

    def _bulk_or_single(
        self, kind: str, ids: list[str], per_call: int, bulk: Callable[[list[str]], Any], single: Callable[[str], Any]
    ) -> Iterator[Batch]:
        endpoint = f"GET /{kind}?ids="
        start = 0
        while start < len(ids) and endpoint not in self.unavailable:
            batch = ids[start : start + per_call]
            try:
                body = self._get(f"{kind} batch {start // per_call}", partial(bulk, batch))
            except HttpError as exc:
                if exc.status not in RESTRICTED:
                    raise
                self.unavailable[endpoint] = (
                    f"{endpoint} answered {exc.status}: development-mode apps lost the bulk endpoints in Feb 2026; "
                    f"falling back to one request per {kind[:-1]} for the rest of the run"
                )
                log.warning(self.unavailable[endpoint])
                break
            yield batch, body
            start += per_call
        # Single-item answers are gathered into the bulk shape, nulls for ids Spotify does not know.
        for chunk_start in range(start, len(ids), per_call):
            chunk = ids[chunk_start : chunk_start + per_call]
            items: list[dict[str, Any] | None] = []
            for oid in chunk:
                try:
                    items.append(self._get(f"{kind[:-1]} {oid}", partial(single, oid)))
                except HttpError as exc:
                    if exc.status not in (400, 404):
                        raise
                    items.append(None)  # unknown id: no metadata, never a crash
            yield chunk, {kind: items}

    def tracks(self, ids: list[str]) -> Iterator[Batch]:
        return self._bulk_or_single("tracks", ids, TRACKS_PER_CALL, self._sp.tracks, self._sp.track)

    def artists(self, ids: list[str]) -> Iterator[Batch]:
        return self._bulk_or_single("artists", ids, ARTISTS_PER_CALL, self._sp.artists, self._sp.artist)

    # -- audio features -----------------------------------------------------------------------

    def _audio_features_body(self, ids: list[str]) -> Any:
        """The body as received: spotipy unwraps ``{"audio_features": [...]}`` to its list."""
        try:
            items = self._sp.audio_features(ids)
        except TypeError:  # spotipy looks inside the body, which is None when it was not JSON
            return None
        return {"audio_features": items} if isinstance(items, list) else items

    def audio_features(self, ids: list[str]) -> Iterator[Batch]:
        for start in range(0, len(ids), FEATURES_PER_CALL):
            batch = ids[start : start + FEATURES_PER_CALL]
            try:
                body = self._get(
                    f"audio-features batch {start // FEATURES_PER_CALL}", partial(self._audio_features_body, batch)
                )
            except HttpError as exc:
                if exc.status in RESTRICTED:
                    raise SourceUnavailable(
                        f"feature provider `spotify`: GET /audio-features answered {exc.status}. Apps without "
                        "extended quota lost this endpoint on 27 Nov 2024. Fix: use the `reccobeats` provider "
                        "(PIPELINE_FEATURE_PROVIDERS=reccobeats, or message field feature_providers), or a chart "
                        "file that carries features (provider `dataset`)"
                    ) from None
                raise
            yield batch, body
