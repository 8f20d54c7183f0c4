"""Cloud Function `extract` (and `ingest`, the same source): starts a weekly run.

* `extract`: triggered by a run request published to the ticks topic. The message is JSON, every
  field optional (see README, "Event contract"; docs/data-sources.md for chart sources and feature
  providers).
* `ingest`: a second deployment of this source, triggered by every
  `google.cloud.storage.object.v1.finalized` event of the data bucket (Eventarc cannot filter by
  prefix); acts only on `inbox/<anything>.csv` (a chart file starts a run for that file) and ignores
  every other object by name, without reading it.

Both entry points accept both event types. Invalid messages are logged with the field at fault and
acknowledged; failures that cannot heal are recorded in `pipeline_runs` and acknowledged; transient
failures raise, so the event is redelivered.
"""

import functions_framework
from cloudevents.http import CloudEvent

from spotify_pipeline.handlers import handle_extract_event


@functions_framework.cloud_event
def extract(cloud_event: CloudEvent) -> None:
    handle_extract_event(cloud_event)


@functions_framework.cloud_event
def ingest(cloud_event: CloudEvent) -> None:
    handle_extract_event(cloud_event)
