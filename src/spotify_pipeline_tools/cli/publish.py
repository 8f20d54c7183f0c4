"""Publishing a run request as Cloud Scheduler would: ``run``, ``trigger`` and ``backfill`` share it.

The request is checked against the settings the functions run with (the local functions' own, or
this environment's for a deployed project) and published to the ticks topic; a local stack without
Pub/Sub gets the CloudEvent posted to its extract function directly.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from spotify_pipeline.config import Settings
from spotify_pipeline_tools.cli.errors import BAD_INPUT, CliError
from spotify_pipeline_tools.cli.target import Target


def publish_tick(env: Mapping[str, str], state: Any, message: dict[str, Any]) -> str:
    """Publish a run request as Cloud Scheduler would; without Pub/Sub, post the CloudEvent to extract."""
    data = json.dumps(message).encode()
    if state is None or state.pubsub:
        from spotify_pipeline.clients import publisher_client

        publisher = publisher_client(env)
        topic = publisher.topic_path(
            env["GOOGLE_CLOUD_PROJECT"], env.get("PIPELINE_TICKS_TOPIC", "spotify-pipeline-ticks")
        )
        return str(publisher.publish(topic, data).result(timeout=30))
    import requests
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent

    message_id = str(int(time.time() * 1000))
    event = CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": f"//pubsub.googleapis.com/projects/{env['GOOGLE_CLOUD_PROJECT']}/topics/ticks",
            "id": message_id,
        },
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": message_id,
                "publishTime": datetime.now(UTC).isoformat(),
            },
            "subscription": "direct",
        },
    )
    headers, body = to_binary(event)
    requests.post(state.url("extract") + "/", headers=headers, data=body, timeout=600)
    return message_id


def _function_settings(env: Mapping[str, str], state: Any, environ: Mapping[str, str]) -> Settings:
    """The settings extract runs with, to validate a request as it will: the local functions' (what
    `stack up` gave them), else this environment's (a deployed function's, configured alike)."""
    if state is None:
        return Settings.from_env(env)
    from spotify_pipeline_tools.stack.settings import function_settings

    here = function_settings(state, environ)
    differ = sorted(k for k in {*here, *state.settings} if here.get(k) != state.settings.get(k))
    if differ:
        print(
            f"note: this shell's {', '.join(differ)} differ from the local functions' settings (checked against "
            "theirs); `spotify-pipeline stack up` restarts them with this shell's",
            file=sys.stderr,
        )
    return Settings.from_env(state.function_env())


class Published(NamedTuple):
    settings: Settings  # the functions' settings the request was checked against
    payload: dict[str, Any]
    request: Any  # events.RunRequest
    expected_loads: int
    message_id: str


def _refuse_used_run_id(client: Any, settings: Settings, run_id: str) -> None:
    """A run id given by hand that ``pipeline_runs`` already holds would mix two runs' records (and
    the follower would read the old run's outcome): refused before publishing."""
    from google.cloud import bigquery

    from spotify_pipeline_tools.bq_query import run_query

    sql = f"SELECT COUNT(*) AS n FROM `{settings.project}.{settings.dataset}.pipeline_runs` WHERE run_id = @r"
    params = [bigquery.ScalarQueryParameter("r", "STRING", run_id)]
    used = int(run_query(client, sql, f"the check that run id {run_id} is new", params=params).rows[0]["n"])
    if used:
        raise CliError(
            f"run id {run_id} is already recorded ({used} pipeline_runs rows)",
            "choose another --run-id, or leave it out for a fresh one",
            code=BAD_INPUT,
        )


def publish_request(target: Target, request_flags: Mapping[str, Any], kind: str, client: Any = None) -> Published:
    """Assemble, validate (extract's own rules) and publish the request of ``run`` or ``trigger``; a
    refused request raises before anything is published (the CLI's error policy reports it)."""
    from spotify_pipeline.runlog import new_run_id
    from spotify_pipeline_tools.cli.request import prepare_request

    given_run_id: str | None = request_flags.get("run_id")
    if given_run_id is not None and not given_run_id.strip():
        raise CliError("--run-id is empty", "give a run id, or leave --run-id out for a fresh one", BAD_INPUT)
    env, state = target.env, target.state
    settings = _function_settings(env, state, target.environ or {})
    if given_run_id and client is not None:
        _refuse_used_run_id(client, settings, given_run_id)
    run_id = given_run_id or new_run_id(kind, datetime.now(UTC))
    payload, request, expected_loads = prepare_request(request_flags, settings, env, run_id)
    return Published(settings, payload, request, expected_loads, publish_tick(env, state, payload))
