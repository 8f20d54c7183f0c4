"""The four functions, bound to the bad-input corpus bucket (loaded by functions-framework in
tests/reliability/test_bad_inputs.py). Objects in that bucket trigger nothing by themselves: the
stack's Eventarc stand-in serves only the data bucket, so each case is delivered exactly once."""

import os

import functions_framework
from cloudevents.http import CloudEvent

from spotify_pipeline import handlers, runtime

CORPUS_BUCKET = "reliability-corpus"
RT = runtime.Runtime(env={**os.environ, "PIPELINE_BUCKET": CORPUS_BUCKET})


@functions_framework.cloud_event
def extract(cloud_event: CloudEvent) -> None:
    handlers.handle_extract_event(cloud_event, RT)


@functions_framework.cloud_event
def transform(cloud_event: CloudEvent) -> None:
    handlers.handle_object("transform", cloud_event, RT)
