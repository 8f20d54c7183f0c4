"""Cloud Function `load`: every dataset of the snapshot into BigQuery, replacing its partition.

Triggered by every `google.cloud.storage.object.v1.finalized` event of the data bucket (Eventarc
cannot filter by prefix); acts only on `recommend/snapshot_date=.../_manifest.json` and ignores every
other object by name, without reading it.
"""

import functions_framework
from cloudevents.http import CloudEvent

from spotify_pipeline.handlers import handle_object


@functions_framework.cloud_event
def load(cloud_event: CloudEvent) -> None:
    handle_object("load", cloud_event)
