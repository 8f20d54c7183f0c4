"""Spotify Web API access through spotipy, with the bounded retries of :mod:`.sources.http`.

spotipy's built-in urllib3 retries honour ``Retry-After`` for up to hours, which can outlast any
function timeout, so they are switched off (``retries=0, status_retries=0`` and a plain
``requests.Session``) and every call goes through :class:`~spotify_pipeline.sources.http.RetryPolicy`.
Tokens live in memory only (``MemoryCacheHandler``: no ``.cache`` file).

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
from collections.abc import Iterator
from typing import Any

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


class SpotifyApi:
    def __init__(self, settings: Settings, *, policy: RetryPolicy | None = None) -> None:
        if not settings.spotify_client_id or not settings.spotify_client_secret:
            raise SourceUnavailable(
                "Spotify credentials missing: set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET "
                "(in the cloud: add versions to the two Secret Manager secrets, see README)"
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
        # A plain Session has no urllib3 Retry adapter: every status reaches _get with its headers.
        self._sp = spotipy.Spotify(
            auth_manager=auth,
            requests_session=requests.Session(),
            retries=0,
            status_retries=0,
            requests_timeout=settings.spotify_timeout_seconds,
        )
        self._sp.prefix = settings.spotify_api_base
        self.policy = policy or RetryPolicy(
            retry_after_cap=settings.retry_after_cap_seconds, budget=settings.retry_budget_seconds
        )
        self.requests_sent = 0
        self.unavailable: dict[str, str] = {}  # endpoint -> what was detected, once per run

    # -- transport ----------------------------------------------------------------------------

    def _once(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        self.requests_sent += 1
        try:
            body = self._sp._get(path, **params)
        except SpotifyOauthError as exc:
            raise PermanentError(
                f"Spotify refused the client credentials ({exc}); check SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET"
            ) from None
        except spotipy.SpotifyException as exc:
            headers = exc.headers or {}
            raise HttpError(
                int(exc.http_status),
                path,
                str(exc.msg).rsplit("\n", 1)[-1].strip() or None,
                parse_retry_after(headers.get("Retry-After")),
            ) from None
        if not isinstance(body, dict):
            raise MalformedResponse(f"GET {path} gave {type(body).__name__}, not a JSON object")
        return body

    def _get(self, what: str, path: str, **params: Any) -> dict[str, Any]:
        return self.policy.call(what, lambda: self._once(path, params), service="Spotify")

    # -- playlists ----------------------------------------------------------------------------

    def playlist_pages(self, playlist_id: str, market: str) -> Iterator[dict[str, Any]]:
        """Every page of a playlist's ``/items``, following ``next`` until the end."""
        try:
            page = self._get(
                f"playlist {playlist_id} ({market})",
                f"playlists/{playlist_id}/items",
                limit=PAGE_SIZE,
                offset=0,
                additional_types="track",
            )
        except HttpError as exc:
            if exc.status in RESTRICTED:
                raise SourceUnavailable(restricted_playlist_message(playlist_id, market, exc.status)) from None
            raise
        yield page
        while page.get("next"):
            page = self._get(f"playlist {playlist_id} ({market}) next page", str(page["next"]))
            yield page

    # -- metadata: bulk where the app has it, one by one where it does not ---------------------

    def _bulk_or_single(self, kind: str, ids: list[str], per_call: int) -> Iterator[Batch]:
        endpoint = f"GET /{kind}?ids="
        start = 0
        while start < len(ids) and endpoint not in self.unavailable:
            batch = ids[start : start + per_call]
            try:
                body = self._get(f"{kind} batch {start // per_call}", f"{kind}/", ids=",".join(batch))
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
                    items.append(self._get(f"{kind[:-1]} {oid}", f"{kind}/{oid}"))
                except HttpError as exc:
                    if exc.status not in (400, 404):
                        raise
                    items.append(None)  # unknown id: no metadata, never a crash
            yield chunk, {kind: items}

    def tracks(self, ids: list[str]) -> Iterator[Batch]:
        return self._bulk_or_single("tracks", ids, TRACKS_PER_CALL)

    def artists(self, ids: list[str]) -> Iterator[Batch]:
        return self._bulk_or_single("artists", ids, ARTISTS_PER_CALL)

    # -- audio features -----------------------------------------------------------------------

    def audio_features(self, ids: list[str]) -> Iterator[Batch]:
        for start in range(0, len(ids), FEATURES_PER_CALL):
            batch = ids[start : start + FEATURES_PER_CALL]
            try:
                body = self._get(
                    f"audio-features batch {start // FEATURES_PER_CALL}", "audio-features/", ids=",".join(batch)
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
