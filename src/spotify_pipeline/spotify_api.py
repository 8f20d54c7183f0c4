"""Spotify Web API access through spotipy, with bounded retries of our own.

spotipy's built-in urllib3 retries honour ``Retry-After`` for up to hours, which can outlast
any function timeout, so they are switched off (``retries=0, status_retries=0``) and replaced
by :meth:`SpotifyApi._call`: 429 waits ``Retry-After`` up to a cap, 5xx and timeouts back off
exponentially, a bounded number of times. Tokens live in memory only (no ``.cache`` file).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyClientCredentials, SpotifyOauthError

from spotify_pipeline.config import Settings
from spotify_pipeline.errors import PermanentError, SourceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

ARTISTS_PER_CALL = 50
FEATURES_PER_CALL = 100
PAGE_SIZE = 50


class SpotifyApi:
    def __init__(
        self,
        settings: Settings,
        *,
        max_attempts: int = 4,
        retry_after_cap: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not settings.spotify_client_id or not settings.spotify_client_secret:
            raise PermanentError(
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
        # A plain Session has no urllib3 Retry adapter: every status reaches _call with its headers.
        self._sp = spotipy.Spotify(
            auth_manager=auth,
            requests_session=requests.Session(),
            retries=0,
            status_retries=0,
            requests_timeout=settings.spotify_timeout_seconds,
        )
        self._sp.prefix = settings.spotify_api_base
        self._max_attempts = max_attempts
        self._retry_after_cap = retry_after_cap
        self._sleep = sleep
        self.requests_sent = 0

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        delay = 1.0
        for attempt in range(1, self._max_attempts + 1):
            self.requests_sent += 1
            try:
                return fn()
            except SpotifyOauthError as exc:
                raise PermanentError(
                    f"Spotify refused the client credentials ({exc}); check SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET"
                ) from None
            except spotipy.SpotifyException as exc:
                status = exc.http_status
                if status == 429:
                    retry_after = float((exc.headers or {}).get("Retry-After", delay))
                    if retry_after > self._retry_after_cap or attempt == self._max_attempts:
                        raise PermanentError(
                            f"{what}: Spotify rate limit (429) asks to wait {retry_after:.0f} s, more than the "
                            f"{self._retry_after_cap:.0f} s this run may wait; run again later"
                        ) from None
                    log.warning("%s: 429, waiting %.1f s (attempt %d)", what, retry_after, attempt)
                    self._sleep(retry_after)
                    continue
                if status >= 500 and attempt < self._max_attempts:
                    log.warning("%s: HTTP %d, retrying in %.1f s (attempt %d)", what, status, delay, attempt)
                    self._sleep(delay)
                    delay *= 2
                    continue
                raise
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self._max_attempts:
                    raise
                log.warning("%s: %s, retrying in %.1f s", what, type(exc).__name__, delay)
                self._sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def playlist_pages(self, playlist_id: str, market: str) -> Iterator[dict[str, Any]]:
        """Every page of a playlist's items, following ``next`` until the end."""
        try:
            page: dict[str, Any] | None = self._call(
                f"playlist {playlist_id} ({market})",
                lambda: self._sp.playlist_items(playlist_id, limit=PAGE_SIZE, additional_types=("track",)),
            )
        except spotipy.SpotifyException as exc:
            if exc.http_status in (403, 404):
                raise SourceUnavailable(
                    f"market {market}: Spotify answered {exc.http_status} for playlist {playlist_id}. Apps created "
                    "after 27 Nov 2024 cannot read Spotify's editorial Top 50 playlists: give a playlist this app "
                    "can read (message field `playlists` or PIPELINE_PLAYLISTS), or use an app with extended quota"
                ) from None
            raise
        while page is not None:
            yield page
            page = self._next_page(playlist_id, page) if page.get("next") else None

    def _next_page(self, playlist_id: str, page: dict[str, Any]) -> dict[str, Any] | None:
        following: dict[str, Any] | None = self._call(f"playlist {playlist_id} next page", lambda: self._sp.next(page))
        return following

    def artists(self, ids: list[str]) -> Iterator[dict[str, Any]]:
        for start in range(0, len(ids), ARTISTS_PER_CALL):
            batch = ids[start : start + ARTISTS_PER_CALL]
            body: dict[str, Any] = self._call(
                f"artists batch {start // ARTISTS_PER_CALL}", partial(self._sp.artists, batch)
            )
            yield body

    def audio_features(self, ids: list[str]) -> Iterator[dict[str, Any]]:
        for start in range(0, len(ids), FEATURES_PER_CALL):
            batch = ids[start : start + FEATURES_PER_CALL]
            try:
                features = self._call(
                    f"audio-features batch {start // FEATURES_PER_CALL}", partial(self._sp.audio_features, batch)
                )
            except spotipy.SpotifyException as exc:
                if exc.http_status in (403, 404):
                    raise SourceUnavailable(
                        f"Spotify answered {exc.http_status} for audio-features: apps without extended quota lost "
                        "this endpoint on 27 Nov 2024; configure another feature provider"
                    ) from None
                raise
            # spotipy unwraps {"audio_features": [...]}; keep the API's shape in the raw object
            yield {"audio_features": features}
