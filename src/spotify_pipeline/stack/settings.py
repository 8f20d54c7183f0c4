"""Which pipeline settings the local functions get from the caller of ``stack up``, and how they are shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spotify_pipeline.stack.local import StackState


def function_settings(state: StackState, environ: Mapping[str, str]) -> dict[str, str]:
    """The settings of ``environ`` the local functions get, as a deployed function gets its
    environment: every variable of the configuration table except those the stack sets itself
    (project, bucket, dataset, topic, API endpoints, the stand-in's credentials, emulator hosts).
    So no secret is ever among them: the only secret, the stand-in's client secret, is the stack's."""
    from spotify_pipeline.config import ENVIRONMENT_VARIABLES

    own = state.env()
    return {k: environ[k] for k in ENVIRONMENT_VARIABLES if k in environ and k not in own and environ[k].strip()}


def describe_settings(settings: Mapping[str, str]) -> str:
    if not settings:
        return "  settings             defaults (no pipeline variable set in this environment)"
    return "\n".join(f"  setting              {k}={v}" for k, v in sorted(settings.items()))


def checked(settings: dict[str, str]) -> dict[str, str]:
    """Refuse settings the functions would refuse (ConfigError names the variable), before starting them."""
    from spotify_pipeline.config import Settings

    Settings.from_env(settings)
    return settings
