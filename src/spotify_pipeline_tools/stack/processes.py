"""Start and stop the stack's processes by PID, each in its own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def spawn(name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str], cwd: Path | None = None) -> int:
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,  # own group: stop kills children too
        )
    return proc.pid


def alive(pid: int) -> bool:
    if pid <= 0:  # not a process: os.kill would signal a whole process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    # So does anyone's zombie: a process killed after its starter exited belongs to init, which may
    # reap it late (or never, in some containers); `stack up` must see it as dead at once.
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until every process is gone or ``timeout`` passes; return those still alive."""
    left = list(pids)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def stop_all(pids: Iterable[int], grace: float = 3.0) -> list[int]:
    """SIGTERM every process group at once, wait up to ``grace`` seconds for all of them, then SIGKILL
    the stragglers (and wait for those briefly). Returns the pids that had to be killed.

    All at once, so stopping N processes takes as long as the slowest one, not the sum."""
    pids = [p for p in pids if alive(p)]
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    stragglers = _wait_gone(pids, grace)
    for pid in stragglers:
        _signal_group(pid, signal.SIGKILL)
    _wait_gone(stragglers, 1.0)
    return stragglers


def stop(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
    stop_all([pid], timeout)


def kill(pid: int, timeout: float = 5.0) -> None:
    """SIGKILL the process group at once (a crash: no handler runs), and wait until it is gone."""
    _signal_group(pid, signal.SIGKILL)
    _wait_gone([pid], timeout)


def wait_for_port(port: int, pid: int, name: str, log_dir: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if not alive(pid):
            tail = (log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited before listening on port {port}; its log ends:\n{tail}")
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout:.0f} s; see {log_dir / (name + '.log')}")
