"""Fixtures: one headless Chromium per session, and dashboards rendered from the local stack's warehouse.
A missing browser is a failure, never a skip: CI installs it (.ci/run)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from browser.chrome import Page, missing, new_driver

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def chromium_driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    lacking = missing()
    if lacking:
        pytest.fail(
            f"the browser tests need {', '.join(lacking)}: "
            "apt-get install -y chromium chromium-driver; pip install selenium (make setup)"
        )
    driver = new_driver(tmp_path_factory.mktemp("chromium-profile"))  # a fresh profile
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium_driver: Any) -> Any:
    chromium_driver.get_log("browser")  # each test sees only its own console messages
    chromium_driver.set_window_size(1400, 1000)
    return chromium_driver


@pytest.fixture(scope="session")
def demo_page(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Page:
    """`spotify-pipeline dashboard --out DIR --snapshot-date 2026-11-23` on two weeks of pipeline output."""
    from browser.crafted import ensure_pipeline_weeks

    from spotify_pipeline_tools.cli import dashboard as cli_dashboard

    weeks = ensure_pipeline_weeks(stack)
    out = tmp_path_factory.mktemp("dashboard")
    code = cli_dashboard.main(
        ["--stack-dir", str(stack.root), "dashboard", "--out", str(out), "--snapshot-date", weeks[-1].isoformat()]
    )
    assert code == 0
    return Page(path=out / "index.html", weeks=weeks, week=weeks[-1])


@pytest.fixture(scope="session")
def crafted_warehouse(stack: Any) -> Iterator[str]:
    """The hand-made warehouse of crafted.py (every kind of week-over-week movement): its dataset."""
    from browser.crafted import crafted_dataset
    from helpers import bq

    with crafted_dataset(bq(stack)) as dataset:
        yield dataset


def render_crafted(stack: Any, dataset: str, out: Path, snapshot_date: date | None = None) -> Path:
    from helpers import bq

    from spotify_pipeline_tools.dashboard import build_payload, read_warehouse, write_dashboard

    rows = read_warehouse(
        bq(stack), "local-project", dataset, snapshot_date=snapshot_date, where="the local BigQuery emulator"
    )
    return write_dashboard(build_payload(rows, generated_at=datetime.now(UTC)), out)


@pytest.fixture(scope="session")
def crafted_page(stack: Any, crafted_warehouse: str, tmp_path_factory: pytest.TempPathFactory) -> Page:
    """The crafted warehouse rendered as the command does by default: its latest week first."""
    from browser.crafted import W3, WEEKS

    path = render_crafted(stack, crafted_warehouse, tmp_path_factory.mktemp("crafted"))
    return Page(path=path, weeks=WEEKS, week=W3, dataset=crafted_warehouse)


@pytest.fixture(scope="session")
def crafted_earlier_page(stack: Any, crafted_warehouse: str, tmp_path_factory: pytest.TempPathFactory) -> Page:
    """``--snapshot-date W2`` on the crafted warehouse: later weeks (DE_WEEK, W3) are stored but not on the page."""
    from browser.crafted import W1, W2

    path = render_crafted(stack, crafted_warehouse, tmp_path_factory.mktemp("crafted-w2"), snapshot_date=W2)
    return Page(path=path, weeks=(W1, W2), week=W2, dataset=crafted_warehouse)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
