"""The command line's one error policy: an expected failure is one or two lines on stderr.

``error: <what happened>`` and, when there is something to do, ``  <what to do>``; a non-zero
exit (2: the input was refused, 1: anything else went wrong); no traceback unless ``--debug`` or
``SPOTIFY_PIPELINE_DEBUG=1``. A closed stdout (``... | head -1``) ends the command quietly with
141, as a shell tool killed by SIGPIPE does. An unexpected exception is a bug: its traceback is
shown.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

BAD_INPUT = 2
FAILED = 1
BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE, the status of `cmd | head` in a shell

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MAX_LINE = 400  # a server message longer than this is cut (it stays one line)


class CliError(Exception):
    """A failure the command understands: what happened, what to do, the exit status."""

    def __init__(self, what: str, todo: str = "", code: int = FAILED) -> None:
        super().__init__(what)
        self.what, self.todo, self.code = what, todo, code


@dataclass(frozen=True)
class Explanation:
    what: str
    todo: str
    code: int

    def lines(self) -> list[str]:
        """At most two lines, whatever the messages hold (server messages span several lines)."""
        lines = [f"error: {_one_line(self.what)}"]
        if self.todo:
            lines.append(f"  {_one_line(self.todo)}")
        return lines


def _one_line(text: str) -> str:
    parts: list[str] = []
    for raw in _ANSI.sub("", text).splitlines():
        line = " ".join(raw.split())
        if line and line not in parts:  # servers repeat themselves (message, then reason: message)
            parts.append(line)
    joined = " | ".join(parts)
    return joined if len(joined) <= _MAX_LINE else joined[: _MAX_LINE - 3] + "..."


def explain(exc: BaseException) -> Explanation | None:
    """What to tell the user about ``exc``; None when it is not an expected failure (a bug)."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    from spotify_pipeline.config import ConfigError
    from spotify_pipeline.errors import PermanentError
    from spotify_pipeline.events import InvalidEvent
    from spotify_pipeline_tools.bq_query import QueryTimeout

    if isinstance(exc, CliError):
        return Explanation(exc.what, exc.todo, exc.code)
    if isinstance(exc, QueryTimeout):
        return Explanation(
            str(exc),
            "check the warehouse (`spotify-pipeline stack status` locally); `query --timeout S` allows a longer query",
            FAILED,
        )
    if isinstance(exc, auth.DefaultCredentialsError):
        return Explanation(
            "no Google Cloud credentials on this machine (Application Default Credentials)",
            "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a key file",
            FAILED,
        )
    if isinstance(exc, auth.RefreshError):
        return Explanation(
            f"the Google Cloud credentials were refused: {exc}", "run `gcloud auth application-default login`", FAILED
        )
    if isinstance(exc, api.GoogleAPICallError):
        return _api_error(exc)
    if isinstance(exc, api.RetryError | ConnectionError) or type(exc).__module__.startswith("requests"):
        return Explanation(
            f"cannot reach the service: {exc}",
            "locally, check the stack with `spotify-pipeline stack status` (and `spotify-pipeline stack up`)",
            FAILED,
        )
    if isinstance(exc, ConfigError | InvalidEvent | PermanentError):
        return Explanation(str(exc), "", BAD_INPUT)
    if isinstance(exc, IsADirectoryError | NotADirectoryError | FileNotFoundError | PermissionError):
        reason = {
            FileNotFoundError: "no such file or folder",
            IsADirectoryError: "is a folder, not a file",
            NotADirectoryError: "a part of the path is not a folder",
            PermissionError: "permission denied",
        }[type(exc)]
        what = f"{exc.filename}: {reason}" if exc.filename else str(exc)  # Arrow's errors name no file attribute
        return Explanation(what, "check the path (relative to this folder)", BAD_INPUT)
    if isinstance(exc, OSError):
        return Explanation(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc), "", FAILED)
    if isinstance(exc, RuntimeError):  # the local stack's own failures say what to do
        return Explanation(str(exc), "", FAILED)
    return None


def _api_error(exc: BaseException) -> Explanation:
    from google.api_core import exceptions as api

    assert isinstance(exc, api.GoogleAPICallError)
    first = exc.errors[0] if exc.errors and isinstance(exc.errors[0], dict) else {}
    message = str(first.get("message") or exc.message)
    reason = str(first.get("reason") or "")
    if reason == "invalidQuery" or (isinstance(exc, api.BadRequest) and "query" in message.lower()):
        return Explanation(
            f"BigQuery rejected the SQL: {message}",
            "fix the statement; the tables and their columns are listed in docs/tables.md",
            BAD_INPUT,
        )
    if isinstance(exc, api.NotFound):
        return Explanation(
            message if message.lower().startswith("not found") else f"not found: {message}",
            "check the name (tables: docs/tables.md); in Google Cloud, `terraform apply` in infra/ creates them",
            FAILED,
        )
    if isinstance(exc, api.Forbidden | api.Unauthorized):
        return Explanation(
            f"permission denied: {message}",
            "use an account with the roles in docs/deploy.md (`gcloud auth application-default login`)",
            FAILED,
        )
    return Explanation(f"{exc.code} {message}", "", FAILED)


def run_command(command: Callable[[], int], *, debug: Callable[[], bool]) -> int:
    """Run one command under the policy; return its exit status. ``debug()``: show tracebacks."""
    try:
        return command()
    except BrokenPipeError:
        _quiet_stdout()
        return BROKEN_PIPE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 128 + 2
    except Exception as exc:  # sorted into expected failures and bugs right here
        explanation = explain(exc)
        if explanation is None or debug():
            raise
        try:
            for line in explanation.lines():
                print(line, file=sys.stderr)
        except BrokenPipeError:
            pass
        return explanation.code


def _quiet_stdout() -> None:
    """The reader went away: point stdout at /dev/null, so the flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
