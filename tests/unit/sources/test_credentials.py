"""Spotify credentials at run time (spotify_pipeline.sources.credentials).

There is no Secret Manager emulator, so these tests inject a small fake client object (the one
method the module uses, ``access_secret_version``) into ``LatestSecrets``; it raises the same
``google.api_core`` exceptions the real client raises. Everything else is the real code: the
settings from an environment, the lazy Spotify factory of ``runtime.extract_sources`` and
spotipy's client-credentials manager.
"""

from __future__ import annotations

import secrets as token
from types import SimpleNamespace
from typing import Any

import pytest
from google.api_core import exceptions

from spotify_pipeline import runtime
from spotify_pipeline.config import Settings
from spotify_pipeline.errors import SourceUnavailable
from spotify_pipeline.sources import credentials
from spotify_pipeline.sources.credentials import LatestSecrets, with_spotify_credentials
from spotify_pipeline.spotify_api import SpotifyApi

PROJECT = "demo-project"
ID_SECRET = "spotify-pipeline-spotify-client-id"
SECRET_SECRET = "spotify-pipeline-spotify-client-secret"
SECRET_ENV = {
    "GOOGLE_CLOUD_PROJECT": PROJECT,
    "SPOTIFY_CLIENT_ID_SECRET_ID": ID_SECRET,
    "SPOTIFY_CLIENT_SECRET_SECRET_ID": SECRET_SECRET,
}


class FakeSecretManager:
    """Answers access_secret_version from ``versions`` (secret id -> value, or an exception)."""

    def __init__(self, versions: dict[str, str | Exception]) -> None:
        self.versions = versions
        self.requests: list[str] = []

    def access_secret_version(self, *, request: dict[str, str]) -> Any:
        name = request["name"]
        self.requests.append(name)
        secret_id = name.split("/")[3]
        answer = self.versions.get(secret_id, exceptions.NotFound(f"Secret Version [{name}] not found."))
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(payload=SimpleNamespace(data=answer.encode()))


def counting_factory(fake: FakeSecretManager) -> tuple[LatestSecrets, list[int]]:
    built: list[int] = []

    def factory() -> FakeSecretManager:
        built.append(1)
        return fake

    return LatestSecrets(factory), built


def test_secrets_are_read_once_per_instance_from_the_latest_version() -> None:
    client_id, client_secret = token.token_hex(8), token.token_urlsafe(16)
    fake = FakeSecretManager({ID_SECRET: client_id, SECRET_SECRET: client_secret + "\n"})
    secrets, built = counting_factory(fake)
    settings = Settings.from_env(SECRET_ENV)

    first = with_spotify_credentials(settings, secrets)
    second = with_spotify_credentials(settings, secrets)

    assert (first.spotify_client_id, first.spotify_client_secret) == (client_id, client_secret)
    assert second == first
    assert fake.requests == [
        f"projects/{PROJECT}/secrets/{ID_SECRET}/versions/latest",
        f"projects/{PROJECT}/secrets/{SECRET_SECRET}/versions/latest",
    ]
    assert built == [1]
    assert client_secret not in repr(first)  # the secret never shows in logs of the settings


def test_environment_values_win_and_no_client_is_built() -> None:
    secrets, built = counting_factory(FakeSecretManager({}))
    env = {**SECRET_ENV, "SPOTIFY_CLIENT_ID": "from-env", "SPOTIFY_CLIENT_SECRET": "also-from-env"}
    settings = Settings.from_env(env)

    assert with_spotify_credentials(settings, secrets) is settings
    assert built == []


def test_each_credential_falls_back_on_its_own() -> None:
    fake = FakeSecretManager({SECRET_SECRET: "from-secret-manager"})
    secrets, _ = counting_factory(fake)
    settings = Settings.from_env({**SECRET_ENV, "SPOTIFY_CLIENT_ID": "from-env"})

    filled = with_spotify_credentials(settings, secrets)

    assert (filled.spotify_client_id, filled.spotify_client_secret) == ("from-env", "from-secret-manager")
    assert fake.requests == [f"projects/{PROJECT}/secrets/{SECRET_SECRET}/versions/latest"]


def test_a_secret_without_version_fails_with_the_command_to_run() -> None:
    secrets, _ = counting_factory(FakeSecretManager({}))

    with pytest.raises(SourceUnavailable) as caught:
        with_spotify_credentials(Settings.from_env(SECRET_ENV), secrets)

    message = str(caught.value)
    assert "\n" not in message
    assert f"secret {ID_SECRET} of project {PROJECT} has no version" in message
    assert f"gcloud secrets versions add {ID_SECRET} --project={PROJECT} --data-file=-" in message


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (exceptions.PermissionDenied("denied"), "needs roles/secretmanager.secretAccessor"),
        (exceptions.FailedPrecondition("DISABLED state"), "is disabled or destroyed; add a new one: read -rsp"),
    ],
    ids=["no access", "disabled version"],
)
def test_other_unusable_secrets_are_named(error: Exception, expected: str) -> None:
    secrets, _ = counting_factory(FakeSecretManager({ID_SECRET: error}))

    with pytest.raises(SourceUnavailable, match=expected) as caught:
        with_spotify_credentials(Settings.from_env(SECRET_ENV), secrets)
    assert ID_SECRET in str(caught.value) and "\n" not in str(caught.value)


def test_a_transient_error_is_not_cached_and_propagates() -> None:
    """Unavailable is retried by the event's redelivery, so it is raised as it is, and a later read works."""
    fake = FakeSecretManager({ID_SECRET: exceptions.ServiceUnavailable("try again"), SECRET_SECRET: "s"})
    secrets, _ = counting_factory(fake)
    settings = Settings.from_env(SECRET_ENV)

    with pytest.raises(exceptions.ServiceUnavailable):
        with_spotify_credentials(settings, secrets)
    fake.versions[ID_SECRET] = "id"
    assert with_spotify_credentials(settings, secrets).spotify_client_id == "id"


def test_without_values_or_secrets_spotify_api_says_what_to_set() -> None:
    secrets, built = counting_factory(FakeSecretManager({}))
    settings = with_spotify_credentials(Settings.from_env({"GOOGLE_CLOUD_PROJECT": PROJECT}), secrets)

    assert built == []
    with pytest.raises(SourceUnavailable, match="Spotify credentials missing"):
        SpotifyApi(settings)


def test_extract_reads_the_secrets_only_when_a_run_builds_the_spotify_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployed wiring: extract_sources builds no client until used, then fills it from Secret Manager."""
    fake = FakeSecretManager({ID_SECRET: "deployed-id", SECRET_SECRET: "deployed-secret"})
    instance, built = counting_factory(fake)
    monkeypatch.setattr(credentials, "INSTANCE_SECRETS", instance)
    rt = runtime.Runtime(env={**SECRET_ENV, "PIPELINE_CACHE": "false"})

    sources = runtime.extract_sources(rt)
    assert built == [] and fake.requests == []  # a run that never calls Spotify never reads a secret

    api = sources.spotify()
    assert isinstance(api, SpotifyApi)
    assert (api._sp.auth_manager.client_id, api._sp.auth_manager.client_secret) == ("deployed-id", "deployed-secret")
    assert len(fake.requests) == 2
