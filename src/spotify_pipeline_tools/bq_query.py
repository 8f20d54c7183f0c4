"""One bounded query: every query the CLI (and the dashboard it builds) runs goes through :func:`run_query`.

A query that does not finish within its timeout is cancelled and raises :class:`QueryTimeout`
naming what the query was for and its first words, instead of hanging (BigQuery's client would
otherwise wait, and retry a failed job, for up to ten minutes).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.cloud import bigquery

QUERY_TIMEOUT_SECONDS = 120.0


class QueryTimeout(Exception):
    def __init__(self, what: str, sql: str, seconds: float) -> None:
        words = " ".join(sql.split())
        self.what = what
        super().__init__(
            f"{what} did not finish within {seconds:g} s (cancelled): "
            f"{words[:120] + ('...' if len(words) > 120 else '')}"
        )


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[dict[str, Any]]


def run_query(
    client: bigquery.Client,
    sql: str,
    what: str,
    *,
    params: Sequence[Any] = (),
    default_dataset: str | None = None,
    timeout: float = QUERY_TIMEOUT_SECONDS,
) -> QueryResult:
    """Run ``sql`` (``what``: what it is for, named if it times out), every row read within ``timeout``."""
    from concurrent.futures import TimeoutError as FutureTimeout

    from google.api_core.exceptions import RetryError
    from google.cloud import bigquery
    from requests.exceptions import Timeout

    config = bigquery.QueryJobConfig(query_parameters=list(params))
    if default_dataset:
        config.default_dataset = default_dataset
    deadline = time.monotonic() + timeout
    retry = bigquery.DEFAULT_RETRY.with_timeout(timeout)
    job = None
    try:
        job = client.query(sql, job_config=config, retry=retry, timeout=timeout, job_retry=None)
        left = max(0.1, deadline - time.monotonic())
        result = job.result(timeout=left, retry=bigquery.DEFAULT_RETRY.with_timeout(left), job_retry=None)
        rows = [dict(r.items()) for r in result]
        if time.monotonic() > deadline:
            raise FutureTimeout()
        return QueryResult([f.name for f in result.schema or []], rows)
    except (FutureTimeout, RetryError, Timeout):
        if job is not None:
            # The job may already be gone with the warehouse; the timeout is the news.
            with contextlib.suppress(Exception):
                job.cancel(timeout=5)
        raise QueryTimeout(what, sql, timeout) from None
