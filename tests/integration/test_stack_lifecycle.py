"""Further stacks, with and without the Pub/Sub emulator (the fallback path), from up to down."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from helpers import run_pipeline

from spotify_pipeline_tools.stack import local, processes

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("use_pubsub", [True, False], ids=["pubsub-emulator", "fallback"])
def test_stack_runs_the_pipeline_then_stops_every_process(tmp_path: Path, use_pubsub: bool) -> None:
    root = tmp_path / "stack"
    state = local.up(root, REPO, use_pubsub=use_pubsub, quiet=True)
    try:
        assert state.pubsub == use_pubsub and ("pubsub" in state.pids) == use_pubsub
        run_pipeline(state, date(2026, 11, 23), "fallback-run", timeout=120)
        pids = dict(state.pids)
    finally:
        local.down(root, quiet=True)
    assert [name for name, pid in pids.items() if processes.alive(pid)] == []
    assert local.StackState.load(root).pids == {}

    # query works on the persisted warehouse with the stack down, and leaves nothing running.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "spotify_pipeline_tools.cli.main",
            "--stack-dir",
            str(root),
            "query",
            "SELECT COUNT(*) AS n FROM recommendations",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.splitlines() == ["n", str(142 * 141)]
    assert local.StackState.load(root).pids == {}
    leftover = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout.split()
    assert leftover == []
