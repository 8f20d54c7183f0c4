"""Official Google clients, configured exactly as in production.

The standard emulator variables (``STORAGE_EMULATOR_HOST``, ``BIGQUERY_EMULATOR_HOST``,
``PUBSUB_EMULATOR_HOST``) are the only switch between the cloud and the local stack.
The storage and Pub/Sub clients read theirs themselves; BigQuery needs its endpoint and
anonymous credentials passed in, which is done here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import google.cloud.pubsub_v1 as pubsub_v1
    import google.cloud.storage as storage
    from google.cloud import bigquery


def storage_client(project: str, env: Mapping[str, str]) -> storage.Client:
    import google.cloud.storage as storage

    host = env.get("STORAGE_EMULATOR_HOST", "").strip()
    if host:
        from google.auth.credentials import AnonymousCredentials

        # Passed explicitly too, so a mapping other than os.environ (the CLI's target) is honoured.
        return storage.Client(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": host},
        )
    return storage.Client(project=project)


def bigquery_client(project: str, location: str, env: Mapping[str, str]) -> bigquery.Client:
    from google.cloud import bigquery

    host = env.get("BIGQUERY_EMULATOR_HOST", "").strip()
    if host:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        endpoint = host if host.startswith("http") else f"http://{host}"
        return bigquery.Client(
            project=project,
            location=location,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    return bigquery.Client(project=project, location=location)


def publisher_client(env: Mapping[str, str]) -> pubsub_v1.PublisherClient:
    import google.cloud.pubsub_v1 as pubsub_v1

    host = env.get("PUBSUB_EMULATOR_HOST", "").strip()
    if host:
        # An explicit insecure channel, so the emulator named in ``env`` is used even when the
        # process environment names another one (the CLI and tests drive several stacks).
        import grpc
        from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

        return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host)))
    return pubsub_v1.PublisherClient()


def subscriber_client(env: Mapping[str, str]) -> pubsub_v1.SubscriberClient:
    import google.cloud.pubsub_v1 as pubsub_v1

    host = env.get("PUBSUB_EMULATOR_HOST", "").strip()
    if host:
        import grpc
        from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

        return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host)))
    return pubsub_v1.SubscriberClient()
