"""`terraform fmt -check`: the one terraform command that works without providers."""

from __future__ import annotations

import subprocess
from pathlib import Path

from infra_support import INFRA, edit, require_terraform


def fmt_check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_terraform(), "fmt", "-check", "-recursive", "-list=true", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_infra_is_formatted() -> None:
    result = fmt_check(INFRA)
    assert result.returncode == 0, f"run `terraform fmt -recursive infra`; unformatted:\n{result.stdout}{result.stderr}"


def test_fmt_check_catches_a_misformatted_copy(scratch: Path) -> None:
    edit(scratch / "infra" / "trigger.tf", "  schedule    = var.schedule", "  schedule = var.schedule")
    result = fmt_check(scratch / "infra")
    assert result.returncode != 0
    assert "trigger.tf" in result.stdout
