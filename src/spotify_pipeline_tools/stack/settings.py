"""Which pipeline settings the local functions get from the caller of ``stack up``, and how they are shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spotify_pipeline_tools.stack.state import StackState


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


# The Eventarc stand-in's own settings (never the functions'), with Eventarc's values as defaults:
# retries back off exponentially from 10 s to 600 s until the event is 24 h old. Taken from the
# environment of the `stack up` that starts the stand-in and kept in state.json, so the stand-in
# restarted alone keeps them; tests set small values to stay short.
EVENTARC_DEFAULTS = {
    "EVENTARC_STANDIN_MIN_BACKOFF_SECONDS": 10.0,
    "EVENTARC_STANDIN_MAX_BACKOFF_SECONDS": 600.0,
    "EVENTARC_STANDIN_MAX_EVENT_AGE_SECONDS": 86400.0,
}


def eventarc_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The Eventarc stand-in's settings set in ``environ``, each checked to be a number >= 0."""
    out = {}
    for name in EVENTARC_DEFAULTS:
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        try:
            ok = float(raw) >= 0
        except ValueError:
            ok = False
        if not ok:
            raise RuntimeError(f"{name}={raw!r}: expected a number of seconds >= 0")
        out[name] = raw
    return out
