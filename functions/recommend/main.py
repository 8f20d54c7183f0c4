"""Cloud Function `recommend`: clusters and ranked neighbours from the clean datasets.

Triggered by every `google.cloud.storage.object.v1.finalized` event of the data bucket (Eventarc
cannot filter by prefix); acts only on `transform/snapshot_date=.../_manifest.json` and ignores every
other object by name, without reading it.
"""

import functions_framework
from cloudevents.http import CloudEvent

from spotify_pipeline.handlers import handle_object


@functions_framework.cloud_event
def recommend(cloud_event: CloudEvent) -> None:
    handle_object("recommend", cloud_event)
