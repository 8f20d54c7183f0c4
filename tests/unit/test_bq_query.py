"""Every query the CLI runs is bounded: a warehouse that accepts the connection and never answers
(a hung emulator, a stuck proxy) ends the query at its timeout with the query named."""

from __future__ import annotations

import socket
import time

import pytest

from spotify_pipeline.clients import bigquery_client
from spotify_pipeline_tools.bq_query import QueryTimeout, run_query
from spotify_pipeline_tools.cli.errors import FAILED, explain


def test_a_query_to_a_warehouse_that_never_answers_times_out_naming_the_query() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections are accepted by the kernel; nothing ever answers
        port = silent.getsockname()[1]
        client = bigquery_client("local-project", "US", {"BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{port}"})
        began = time.monotonic()
        with pytest.raises(QueryTimeout) as timed_out:
            run_query(client, "SELECT table_name FROM INFORMATION_SCHEMA.TABLES", "the query", timeout=2.0)
        seconds = time.monotonic() - began
    assert seconds < 10, seconds
    message = str(timed_out.value)
    assert message.startswith("the query did not finish within 2 s (cancelled): SELECT table_name FROM INFORMATION")
    explanation = explain(timed_out.value)
    assert explanation is not None and explanation.code == FAILED and "--timeout" in explanation.todo
