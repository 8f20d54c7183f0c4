"""`spotify-pipeline stack up` on the session's stack with a process dead: a recorded port another
program took is one clear error line, and nothing else is touched; freed, the process comes back on it."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from faults_support import crash, stack_up, stack_up_command

pytestmark = pytest.mark.emulators


def test_a_taken_port_is_one_line_then_the_process_comes_back_on_it(stack: Any) -> None:
    before = dict(stack.pids)
    port = stack.ports["ingest"]
    crash(stack, "ingest")
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        out = stack_up_command(stack)
    finally:
        squatter.close()
    assert out.returncode == 1
    assert [line for line in out.stderr.splitlines() if not line.startswith("target: ")] == [
        f"error: cannot restart ingest on port {port} (recorded in {stack.root}/state.json): another process "
        "listens there; stop it, or `spotify-pipeline stack down` then `stack up` to start on new ports"
    ]
    assert stack_up(stack) == ["ingest"]
    assert stack.ports["ingest"] == port
    assert {k: v for k, v in stack.pids.items() if k != "ingest"} == {k: v for k, v in before.items() if k != "ingest"}
