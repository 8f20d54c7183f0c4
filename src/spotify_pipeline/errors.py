"""Error kinds, by what the function should do with them.

* :class:`PermanentError` (and :class:`~spotify_pipeline.events.InvalidEvent`): retrying cannot
  help. The function logs it, records it in ``pipeline_runs`` and acknowledges the event.
* anything else (network, 5xx after bounded retries): raised, so the event is redelivered
  until it succeeds or grows older than ``PIPELINE_MAX_EVENT_AGE_SECONDS``.
"""

from __future__ import annotations


class PermanentError(Exception):
    """Bad input or an unusable source: report it, write nothing partial, do not retry."""


class SourceUnavailable(PermanentError):
    """An endpoint this app may not use (403/404 on a restricted endpoint), or a source that is
    not configured. The message names the endpoint and the setting that fixes it."""


class RateLimited(PermanentError):
    """A 429 whose ``Retry-After`` exceeds the cap (or the run's retry budget): the run fails
    now with a clear error instead of sleeping past the function's timeout."""


class DataError(PermanentError):
    """Upstream data breaks the contract (missing field, bad value)."""
