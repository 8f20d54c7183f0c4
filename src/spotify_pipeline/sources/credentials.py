"""The Spotify app credentials, resolved when a run first needs Spotify.

Precedence, per credential: ``SPOTIFY_CLIENT_ID`` / ``SPOTIFY_CLIENT_SECRET`` from the environment
(the local stack, a developer) win; otherwise the latest version of the Secret Manager secret
named by ``SPOTIFY_CLIENT_ID_SECRET_ID`` / ``SPOTIFY_CLIENT_SECRET_SECRET_ID`` (what Terraform
sets) in the settings' project. Each secret is read once per instance and kept in memory, never
logged; a rotated credential is picked up by the next instance.

So the credentials are no deploy-time dependency: a deployment without secret versions starts, a
run that never calls Spotify (chart files with their own features) never reads them, and a run
that does while a secret has no version fails with one line naming the ``gcloud`` command to run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from spotify_pipeline.config import Settings
from spotify_pipeline.errors import SourceUnavailable


class SecretVersionReader(Protocol):
    """What is used of ``google.cloud.secretmanager.SecretManagerServiceClient``."""

    def access_secret_version(self, *, request: dict[str, str]) -> Any: ...


def secret_manager_client() -> SecretVersionReader:
    from google.cloud import secretmanager

    client: SecretVersionReader = secretmanager.SecretManagerServiceClient()
    return client


class LatestSecrets:
    """Latest secret versions, read once each through a client built on first use."""

    def __init__(self, client_factory: Callable[[], SecretVersionReader] = secret_manager_client) -> None:
        self._client_factory = client_factory
        self._client: SecretVersionReader | None = None
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()

    def read(self, project: str, secret_id: str) -> str:
        from google.api_core import exceptions

        name = f"projects/{project}/secrets/{secret_id}/versions/latest"
        with self._lock:
            if name in self._values:
                return self._values[name]
            if self._client is None:
                self._client = self._client_factory()
            add_version = (
                f"read -rsp 'value: ' v && printf %s \"$v\" | gcloud secrets versions add {secret_id} "
                f"--project={project} --data-file=- && unset v"
            )
            try:
                response = self._client.access_secret_version(request={"name": name})
            except exceptions.NotFound:
                raise SourceUnavailable(
                    f"Spotify credentials: secret {secret_id} of project {project} has no version (or does not "
                    f"exist); add one: {add_version}"
                ) from None
            except exceptions.FailedPrecondition:
                raise SourceUnavailable(
                    f"Spotify credentials: the latest version of secret {secret_id} of project {project} is "
                    f"disabled or destroyed; add a new one: {add_version}"
                ) from None
            except exceptions.PermissionDenied:
                raise SourceUnavailable(
                    f"Spotify credentials: this function's service account may not read secret {secret_id} of "
                    f"project {project}; it needs roles/secretmanager.secretAccessor on it (infra/iam.tf)"
                ) from None
            value = bytes(response.payload.data).decode("utf-8").strip()
            if not value:
                raise SourceUnavailable(
                    f"Spotify credentials: the latest version of secret {secret_id} of project {project} is "
                    f"empty; add a new one: {add_version}"
                )
            self._values[name] = value
            return value


# One per process: a function instance reads each secret at most once.
INSTANCE_SECRETS = LatestSecrets()


def with_spotify_credentials(settings: Settings, secrets: LatestSecrets | None = None) -> Settings:
    """``settings`` with each empty Spotify credential filled from its secret (``INSTANCE_SECRETS``
    unless given), when one is named.

    A credential with neither a value nor a secret stays empty: SpotifyApi then says what to set.
    """
    secrets = secrets or INSTANCE_SECRETS
    client_id = settings.spotify_client_id
    client_secret = settings.spotify_client_secret
    if not client_id and settings.spotify_client_id_secret_id:
        client_id = secrets.read(settings.project, settings.spotify_client_id_secret_id)
    if not client_secret and settings.spotify_client_secret_secret_id:
        client_secret = secrets.read(settings.project, settings.spotify_client_secret_secret_id)
    if (client_id, client_secret) == (settings.spotify_client_id, settings.spotify_client_secret):
        return settings
    return replace(settings, spotify_client_id=client_id, spotify_client_secret=client_secret)
