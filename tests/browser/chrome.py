"""Headless Chromium (Debian's chromium and chromedriver) through selenium, for the dashboard tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from spotify_pipeline_tools.dashboard.browser import CHROMEDRIVER, CHROMIUM, new_driver

__all__ = ["CHROMEDRIVER", "CHROMIUM", "new_driver"]


@dataclass
class Page:
    path: Path
    weeks: tuple[date, ...]
    week: date  # shown first
    dataset: str = "spotify_charts"


def missing() -> list[str]:
    """What the browser tests need and this machine lacks (they fail, never skip, on it)."""
    out = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        out.append("selenium (pip)")
    return out


def wait_ready(driver: Any, timeout: float = 20.0) -> None:
    """Until the page says it is interactive (everything drawn, tables filled, controls wired)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script("return document.body && document.body.dataset.ready === 'true'"):
            return
        time.sleep(0.05)
    raise AssertionError(f"dashboard not ready within {timeout:.0f} s; console: {driver.get_log('browser')}")


def open_page(driver: Any, page: Path, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Load the page, wait until it is interactive; return the console messages of the load."""
    driver.get(page.resolve().as_uri())
    wait_ready(driver, timeout)
    logs: list[dict[str, Any]] = driver.get_log("browser")
    return logs
