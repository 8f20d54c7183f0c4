"""Shared fixtures. The local stack is started once per session, in a temporary folder, with the
same code ``make demo`` uses; tests that need it take the ``stack`` fixture."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from spotify_pipeline.stack import local

    root = tmp_path_factory.mktemp("stack")
    saved = dict(os.environ)
    state = local.up(root, REPO, quiet=True, environ={})  # default settings, whatever this shell sets
    os.environ.update(state.env())  # the Google clients in the tests read the emulator variables
    try:
        yield state
    finally:
        local.down(root, quiet=True)
        os.environ.clear()
        os.environ.update(saved)
