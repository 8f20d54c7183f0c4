"""Fixtures for the chart-source and feature-provider tests: the Spotify/ReccoBeats stand-in in a
thread (no emulators), reset to ``extended`` mode for every test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from unit.sources.harness import CLIENT_ID, CLIENT_SECRET, Harness, Standin
from werkzeug.serving import make_server

from spotify_pipeline_tools.standin import build_demo_catalogue, create_app
from spotify_pipeline_tools.standin.catalogue import Catalogue


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return build_demo_catalogue()


@pytest.fixture(scope="module")
def _server(catalogue: Catalogue) -> Iterator[str]:
    app = create_app(catalogue, CLIENT_ID, CLIENT_SECRET)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture()
def standin(_server: str) -> Iterator[Standin]:
    """The stand-in in ``extended`` mode with zeroed counters; each test may switch modes."""
    s = Standin(_server)
    s.mode("extended")
    s.reset()
    yield s
    s.mode("extended")


@pytest.fixture()
def harness(standin: Standin) -> Callable[..., Harness]:
    def make(**settings: Any) -> Harness:
        return Harness(standin, standin.settings(**settings))

    return make
