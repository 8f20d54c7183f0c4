"""ReccoBeats audio features: free, no key, Spotify track ids in, features out.

``GET {base}audio-features?ids=<ids, comma separated>`` answers
``{"content": [{"id": <their uuid>, "href": "https://open.spotify.com/track/<spotify id>", ...}]}``.
Results are matched back to Spotify ids by ``href`` (their ``id`` is their own); unknown tracks
are silently omitted, so a track missing from the answer simply has no features from this
provider. At most :data:`IDS_PER_CALL` ids a call. Values are close to Spotify's, not equal:
each track records which provider gave its features.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from typing import Any

import requests

from spotify_pipeline.errors import SourceUnavailable
from spotify_pipeline.sources.http import HttpError, MalformedResponse, RetryPolicy, parse_retry_after

IDS_PER_CALL = 40
_HREF_ID = re.compile(r"/track/([0-9A-Za-z]{22})(?:[/?#]|$)")

Batch = tuple[list[str], dict[str, Any]]


def spotify_id_of(href: object) -> str | None:
    """The Spotify track id in a ReccoBeats ``href`` (``https://open.spotify.com/track/<id>``)."""
    if not isinstance(href, str):
        return None
    match = _HREF_ID.search(href)
    return match.group(1) if match else None


def match_by_href(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Spotify id -> feature object, for every item of one answer whose ``href`` names a track."""
    out: dict[str, dict[str, Any]] = {}
    for item in body.get("content") or []:
        if isinstance(item, dict):
            tid = spotify_id_of(item.get("href"))
            if tid is not None:
                out.setdefault(tid, item)
    return out


class ReccoBeatsApi:
    def __init__(self, base_url: str, timeout: float, policy: RetryPolicy) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.policy = policy
        self.session = requests.Session()  # no urllib3 Retry adapter: the policy decides
        self.requests_sent = 0

    def _once(self, ids: list[str]) -> dict[str, Any]:
        self.requests_sent += 1
        url = self.base_url + "audio-features"
        resp = self.session.get(url, params={"ids": ",".join(ids)}, timeout=self.timeout)
        if resp.status_code >= 400:
            message: str | None = resp.text[:200] or None
            raise HttpError(resp.status_code, url, message, parse_retry_after(resp.headers.get("Retry-After")))
        try:
            body = resp.json()
        except ValueError:
            raise MalformedResponse(f"GET {url} answered {resp.status_code} with a body that is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("content", []), list):
            raise MalformedResponse(f"GET {url}: expected an object with a `content` list")
        return body

    def audio_features(self, ids: list[str]) -> Iterator[Batch]:
        for start in range(0, len(ids), IDS_PER_CALL):
            batch = ids[start : start + IDS_PER_CALL]
            try:
                body = self.policy.call(
                    f"reccobeats audio-features batch {start // IDS_PER_CALL}",
                    partial(self._once, batch),
                    service="ReccoBeats",
                )
            except HttpError as exc:
                if exc.status in (401, 403, 404):
                    raise SourceUnavailable(
                        f"feature provider `reccobeats`: {exc}. Check RECCOBEATS_API_BASE "
                        f"(now {self.base_url}) or choose another provider (PIPELINE_FEATURE_PROVIDERS)"
                    ) from None
                raise
            yield batch, body
