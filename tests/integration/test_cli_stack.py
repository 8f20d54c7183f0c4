"""The local stack as a user drives it, through the real `spotify-pipeline` command (a subprocess):
settings reach the functions, refused runs end at once, status/down/demo behave like a tool kept
open, run ids survive emulator restarts, and a chart file dropped into inbox/ runs.

One stack of its own (its functions get settings the session's stack must not have), in order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from helpers import query

from spotify_pipeline_tools.stack import local

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "tests" / "fixtures" / "charts"
WEEK = "2026-11-23"
MX = "MX=DemoUserMirrorBR000000"  # a user playlist the stand-in serves, for a market not in the defaults


def cli(root: Path, *argv: str, timeout: float = 180, **settings: str) -> subprocess.CompletedProcess[str]:
    """`spotify-pipeline --stack-dir ROOT ARGV` with exactly ``settings`` as the pipeline variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "GOOGLE_")) and "EMULATOR" not in k}
    return subprocess.run(
        [sys.executable, "-m", "spotify_pipeline_tools.cli.main", "--stack-dir", str(root), *argv],
        env={**env, **settings},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cli-stack")
    out = cli(path, "stack", "up", PIPELINE_PLAYLISTS=MX)
    assert out.returncode == 0, out.stderr
    assert f"setting              PIPELINE_PLAYLISTS={MX}" in out.stdout  # the settings in force, printed
    try:
        yield path
    finally:
        cli(path, "stack", "down")


def state(root: Path) -> local.StackState:
    loaded = local.StackState.load(root)
    assert loaded is not None
    return loaded


def in_warehouse(root: Path, sql: str, **params: object) -> list[dict[str, object]]:
    return query(state(root), sql, **params)


def test_settings_reach_the_local_functions(root: Path) -> None:
    out = cli(root, "run", "--markets", "GLOBAL,MX", "--snapshot-date", WEEK, PIPELINE_PLAYLISTS=MX)
    assert out.returncode == 0, out.stderr
    mx = in_warehouse(
        root, "SELECT COUNT(*) AS n FROM chart_entries WHERE snapshot_date = @d AND market = 'MX'", d=date(2026, 11, 23)
    )
    assert mx[0]["n"] == 50  # the MX playlist, read by extract with the setting `stack up` passed on


def test_changed_settings_restart_the_functions(root: Path) -> None:
    pids = {fn: state(root).pids[fn] for fn in local.FUNCTIONS}
    out = cli(root, "stack", "up", PIPELINE_PLAYLISTS=MX, PIPELINE_CLUSTERS="4")
    assert out.returncode == 0, out.stderr
    assert "settings changed (PIPELINE_CLUSTERS): restarted the functions" in out.stdout
    assert all(state(root).pids[fn] != pid for fn, pid in pids.items())
    run = cli(root, "run", "--markets", "GLOBAL", "--snapshot-date", WEEK, PIPELINE_PLAYLISTS=MX, PIPELINE_CLUSTERS="4")
    assert run.returncode == 0, run.stderr
    assert "clusters=4," in run.stdout  # recommend ran with the new setting
    same = cli(root, "stack", "up", PIPELINE_PLAYLISTS=MX, PIPELINE_CLUSTERS="4")
    assert "stack already up (" in same.stdout and "restarted" not in same.stdout


def test_a_refused_run_ends_at_once_with_the_reason(root: Path) -> None:
    # The functions run without the MX playlist this shell (and so the CLI's check) has: as with a
    # deployed function configured differently, only extract can refuse the request.
    local.restart_process(state(root), "extract", extra_env={"PIPELINE_PLAYLISTS": ""})
    try:
        for command in (["run"], ["trigger", "--wait"]):
            began = time.monotonic()
            out = cli(root, *command, "--markets", "GLOBAL,MX", "--snapshot-date", WEEK, PIPELINE_PLAYLISTS=MX)
            seconds = time.monotonic() - began
            assert out.returncode == 1 and seconds < 20, (seconds, out.stdout, out.stderr)
            reason = "field 'markets' = 'MX': no chart playlist configured for this market"
            assert "failed at extract" in out.stderr and reason in out.stderr
            run_id = re.search(r'"run_id": "([^"]+)"|published run (\S+)', out.stdout)
            assert run_id is not None
            rows = in_warehouse(
                root, "SELECT status, error FROM pipeline_runs WHERE run_id = @r", r=run_id[1] or run_id[2]
            )
            assert [r["status"] for r in rows] == ["failed"] and reason in str(rows[0]["error"])
    finally:
        local.restart_process(state(root), "extract")


def test_backfill_stops_at_the_first_failed_week(root: Path) -> None:
    # A gate threshold set for the functions by `stack up` fails the week: backfill says so at once.
    tight = {"PIPELINE_PLAYLISTS": MX, "PIPELINE_GATE_MAX_ENTRIES_PER_MARKET": "5"}
    assert cli(root, "stack", "up", **tight).returncode == 0
    try:
        began = time.monotonic()
        out = cli(root, "backfill", "--charts-csv", str(CHARTS / "regional-global-weekly-2026-11-19.csv"), **tight)
        assert out.returncode == 1 and time.monotonic() - began < 60, out.stdout + out.stderr
        assert "entries_per_market" in out.stderr and "0 of 1 week(s) loaded" in out.stdout
    finally:
        assert cli(root, "stack", "up", PIPELINE_PLAYLISTS=MX).returncode == 0


def test_inbox_put_starts_a_run_for_the_file(root: Path) -> None:
    out = cli(root, "inbox", "put", str(CHARTS / "kaggle-top-songs-iso.csv"), "--wait")
    assert out.returncode == 0, out.stderr
    put = re.search(r"put gs://spotify-pipeline-local/(inbox/kaggle-top-songs-iso.csv)#\d+: run (gcs-\w+)", out.stdout)
    assert put is not None and "complete. Rows loaded per table" in out.stdout
    stages = in_warehouse(root, "SELECT stage, status, `trigger` FROM pipeline_runs WHERE run_id = @r", r=put[2])
    assert {(r["stage"], r["status"]) for r in stages} == {
        (s, "succeeded") for s in ("extract", "transform", "recommend", "load")
    }
    assert any(put[1] in str(r["trigger"]) for r in stages)  # started by the bucket event, not a tick
    bad = cli(root, "inbox", "put", str(CHARTS / "make_charts.py"))
    assert bad.returncode == 2 and "inbox/make_charts.py" in bad.stderr and ".csv" in bad.stderr


def test_demo_leaves_running_a_stack_it_did_not_start(root: Path) -> None:
    pids = dict(state(root).pids)
    out = cli(root, "demo", "--snapshot-date", WEEK, PIPELINE_PLAYLISTS=MX)
    assert out.returncode == 0, out.stderr
    assert "using the running stack" in out.stdout and "stopping the stack" not in out.stdout
    assert state(root).pids == pids and state(root).running()


def test_down_is_quick_status_says_down_and_run_ids_survive_a_restart(root: Path) -> None:
    assert cli(root, "stack", "status").returncode == 0
    before = cli(root, "run", "--markets", "GLOBAL", "--snapshot-date", WEEK, PIPELINE_PLAYLISTS=MX)
    assert before.returncode == 0, before.stderr
    began = time.monotonic()
    assert cli(root, "stack", "down").returncode == 0
    down_seconds = time.monotonic() - began
    assert down_seconds < 5.0 + 1.0, down_seconds  # 5 s, plus this subprocess's own start
    status = cli(root, "stack", "status")
    assert status.returncode == 1 and status.stdout.startswith("down")
    assert cli(root, "stack", "up", PIPELINE_PLAYLISTS=MX).returncode == 0  # a fresh Pub/Sub emulator
    after = cli(root, "run", "--markets", "GLOBAL", "--snapshot-date", WEEK, PIPELINE_PLAYLISTS=MX)
    assert after.returncode == 0, after.stderr
    published = [re.search(r"published run (\S+) .*message (\d+)\)", o.stdout) for o in (before, after)]
    assert all(published)
    ids = [m[1] for m in published]  # type: ignore[index]
    # The fresh emulator numbered this message 1 again, like the module's first run: ids from message
    # ids would now collide (and each id below would hold two runs' rows).
    assert published[1][2] == "1" and ids[0] != ids[1]  # type: ignore[index]
    for run_id in ids:  # each run kept its own rows: nothing of one was taken for the other's
        rows = in_warehouse(
            root, "SELECT stage FROM pipeline_runs WHERE run_id = @r AND status = 'succeeded'", r=run_id
        )
        assert sorted(r["stage"] for r in rows) == ["extract", "load", "recommend", "transform"]
