"""Paths, tools and helpers of the offline infra/ checks (fixtures are in conftest.py).

A missing tool FAILS these tests (never skips them): run `bash infra/checks/setup.sh`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CHECKS = INFRA / "checks"
CHECKOV = REPO / ".venv-infra" / "bin" / "checkov"
SETUP_HINT = "run `bash infra/checks/setup.sh` (after `make setup`)"

if str(CHECKS) not in sys.path:
    sys.path.insert(0, str(CHECKS))


def require_terraform() -> str:
    path = shutil.which("terraform")
    if path is None:
        pytest.fail("terraform is not on PATH; the offline checks need it for `terraform fmt -check`")
    return path


def require_checkov() -> Path:
    if not CHECKOV.is_file():
        pytest.fail(f"checkov is not installed at {CHECKOV}: {SETUP_HINT}")
    return CHECKOV


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace ``old`` (which must be there) in ``path``: how a test breaks a scratch copy."""
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}: update the test"
    path.write_text(text.replace(old, new, count))
