"""Shared fixtures. The local stack is started once per session, in a temporary folder, with the
same code ``make demo`` uses; tests that need it take the ``stack`` fixture."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Eventarc's retry backoff (10 s to 600 s) shortened, for every stack the tests start (also through
# the CLI, which inherits this environment): a redelivery after a fault takes seconds, not minutes.
TEST_EVENTARC_SETTINGS = {"EVENTARC_STANDIN_MIN_BACKOFF_SECONDS": "0.5", "EVENTARC_STANDIN_MAX_BACKOFF_SECONDS": "4"}
for _name, _value in TEST_EVENTARC_SETTINGS.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from spotify_pipeline_tools.stack import local

    root = tmp_path_factory.mktemp("stack")
    saved = dict(os.environ)
    # Default pipeline settings, whatever this shell sets; short Eventarc retries.
    state = local.up(root, REPO, quiet=True, environ={**TEST_EVENTARC_SETTINGS})
    os.environ.update(state.env())  # the Google clients in the tests read the emulator variables
    try:
        yield state
    finally:
        local.down(root, quiet=True)
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _time_recorded_cases() -> None:
    """The cases a test records into docs/reliability.md are timed from its start (after the
    session's shared fixtures, such as the stack and the clean reference run, are ready)."""
    from reliability_log import begin

    begin()
