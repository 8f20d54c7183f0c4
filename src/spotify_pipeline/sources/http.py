"""One bounded retry policy for every HTTP source (Spotify Web API, ReccoBeats).

* 429: wait ``Retry-After`` (or the backoff delay when absent) if it is within the cap, else fail
  the run at once with :class:`~spotify_pipeline.errors.RateLimited` naming the wait asked for;
* 5xx, connection errors, timeouts and malformed (non-JSON) answers: exponential backoff,
  ``max_attempts`` tries in all, then the last error is raised (the event is redelivered);
* every other status is the caller's to interpret (403/404 on a restricted endpoint, say);
* all waits of one run share a budget, so no run can sleep past its function's timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import requests

from spotify_pipeline.errors import DataError, RateLimited

log = logging.getLogger(__name__)
T = TypeVar("T")


class HttpError(Exception):
    """A non-2xx answer, with what the retry policy and the caller need to decide."""

    def __init__(self, status: int, url: str, message: str | None, retry_after: float | None = None) -> None:
        self.status, self.url, self.message, self.retry_after = status, url, message, retry_after
        super().__init__(f"HTTP {status} from {url}" + (f": {message}" if message else ""))


class MalformedResponse(Exception):
    """A 2xx answer whose body is not the JSON object the endpoint documents."""


def parse_retry_after(raw: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); None when absent or unusable."""
    if raw is None:
        return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    return max(0.0, value)


@dataclass
class RetryPolicy:
    """Bounded retries for one run; ``waited`` is shared by every call made through it."""

    retry_after_cap: float = 60.0
    budget: float = 180.0
    max_attempts: int = 4
    backoff_base: float = 1.0
    backoff_max: float = 16.0
    sleep: Callable[[float], None] = time.sleep
    waited: float = field(default=0.0, init=False)

    def _wait(self, what: str, seconds: float, reason: str) -> None:
        if self.waited + seconds > self.budget:
            raise RateLimited(
                f"{what}: {reason}; waiting {seconds:.0f} s more would exceed this run's retry budget of "
                f"{self.budget:.0f} s (PIPELINE_RETRY_BUDGET_SECONDS, already waited {self.waited:.0f} s). "
                "Nothing was written; run again later"
            )
        log.warning("%s: %s; waiting %.1f s", what, reason, seconds)
        self.waited += seconds
        self.sleep(seconds)

    def call(self, what: str, fn: Callable[[], T], *, service: str = "the API") -> T:
        delay = self.backoff_base
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                return fn()
            except HttpError as exc:
                if exc.status == 429:
                    wait = exc.retry_after if exc.retry_after is not None else delay
                    if wait > self.retry_after_cap:  # checked before any sleep, even on the last attempt
                        raise RateLimited(
                            f"{what}: {service} rate limit (HTTP 429) asks to wait {wait:.0f} s (Retry-After), more "
                            f"than the {self.retry_after_cap:.0f} s this run may wait "
                            "(PIPELINE_RETRY_AFTER_CAP_SECONDS). Nothing was written; run again later"
                        ) from None
                    if last:
                        raise RateLimited(
                            f"{what}: {service} still answers 429 (rate limit) after {attempt} attempts. "
                            "Nothing was written; run again later"
                        ) from None
                elif exc.status < 500 or last:
                    raise
                else:
                    wait = delay
                reason = f"HTTP {exc.status}"
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise
                wait, reason = delay, type(exc).__name__
            except MalformedResponse as exc:
                if last:
                    raise DataError(
                        f"{what}: {service} answered {attempt} times with a body that is not the expected JSON "
                        f"({exc}); check the API base URL setting"
                    ) from None
                wait, reason = delay, "malformed answer"
            self._wait(what, wait, f"{reason} (attempt {attempt})")
            delay = min(delay * 2, self.backoff_max)
        raise AssertionError("unreachable")
