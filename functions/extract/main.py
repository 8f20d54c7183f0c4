"""Cloud Function `extract`: triggered by a run request published to the ticks topic.

The message is JSON, every field optional (see README, "Event contract"). Invalid messages are
logged with the field at fault and acknowledged; Spotify failures that cannot heal are recorded
in ``pipeline_runs`` and acknowledged; transient failures raise, so Pub/Sub redelivers.
"""

import functions_framework
from cloudevents.http import CloudEvent

from spotify_pipeline.entrypoints import handle_tick


@functions_framework.cloud_event
def extract(cloud_event: CloudEvent) -> None:
    handle_tick(cloud_event)
