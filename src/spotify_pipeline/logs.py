"""JSON log lines on stdout, in the structured format Cloud Logging parses.

Every line is one JSON object: ``severity`` and ``message`` (Cloud Logging's special fields),
``time``, ``logging.googleapis.com/sourceLocation``, the logger, and the fields of the event
being handled (``stage``, ``snapshot_date``, ``run_id``, ``object``, ``trigger``), set once per
event by :func:`context` and added to every line logged while it is handled. A line with a
traceback carries it in ``exception``; an ERROR line without one is marked as a
``ReportedErrorEvent``, so Error Reporting counts every error line, and each error is logged
exactly once: when a transient error is re-raised after being logged (so that the function
answers 500 and the event is redelivered), the traceback functions-framework's Flask app would
log again is dropped (:class:`DropReraised`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_CONFIGURED = False
_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("spotify_pipeline_log_context", default=None)
REPORTED_ERROR_EVENT = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
_REPORTED = "_spotify_pipeline_logged"


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (None values left out) to every line logged in this block, in this thread."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**fields: Any) -> None:
    """Add fields to the current :func:`context` (for what is learnt on the way, like the run id)."""
    _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}})


def current() -> dict[str, Any]:
    return dict(_CONTEXT.get() or {})


def mark_logged(exc: BaseException) -> BaseException:
    """Mark an exception as logged already, before re-raising it."""
    setattr(exc, _REPORTED, True)
    return exc


class DropReraised(logging.Filter):
    """Drops another logger's report of an exception this package logged already (Flask's
    ``Exception on / [POST]`` for a re-raised transient error): one error, one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and not record.name.startswith("spotify_pipeline"):
            return not getattr(record.exc_info[1], _REPORTED, False)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            },
        }
        entry.update(_CONTEXT.get() or {})
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.levelno >= logging.ERROR:
            entry["@type"] = REPORTED_ERROR_EVENT
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure() -> None:
    global _CONFIGURED
    if _CONFIGURED:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(DropReraised())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    _CONFIGURED = True
