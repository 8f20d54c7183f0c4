"""Fixtures of the offline infra/ checks; paths and helpers live in infra_support.py."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra_support import INFRA, REPO, edit


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A copy of what infra/ reads: infra/*.tf, the schema file and the functions' main.py.

    Returns the copy's root; its infra/ is what Terraform and the checks see.
    """
    root = tmp_path / "repo"
    shutil.copytree(
        INFRA,
        root / "infra",
        ignore=shutil.ignore_patterns("checks", ".terraform", "*.tfstate*", "terraform.tfvars"),
    )
    schemas = root / "src" / "spotify_pipeline" / "schemas"
    schemas.mkdir(parents=True)
    shutil.copy2(REPO / "src" / "spotify_pipeline" / "schemas" / "tables.json", schemas / "tables.json")
    for main in (REPO / "functions").glob("*/main.py"):
        target = root / "functions" / main.parent.name / "main.py"
        target.parent.mkdir(parents=True)
        shutil.copy2(main, target)
    return root


@pytest.fixture
def break_copy(scratch: Path) -> Callable[[str, str, str], Path]:
    """``break_copy("infra/storage.tf", old, new)`` edits the scratch copy and returns its root."""

    def apply(relative: str, old: str, new: str) -> Path:
        edit(scratch / relative, old, new)
        return scratch

    return apply
