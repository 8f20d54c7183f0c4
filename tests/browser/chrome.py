"""Headless Chromium (Debian's chromium and chromedriver) through selenium, for the dashboard tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


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


def new_driver(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


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
