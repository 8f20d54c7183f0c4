"""Moved to :mod:`spotify_pipeline.runtime` and :mod:`spotify_pipeline.handlers`; this shim stays only until
the CLI's replay, cli_ops and cli_request import from there (removed when the dev tools move)."""

from spotify_pipeline.runtime import INBOX_PREFIX, REPLAY_SOURCE, Runtime, inbox_run_id, is_inbox_chart, run_stage

__all__ = ["INBOX_PREFIX", "REPLAY_SOURCE", "Runtime", "inbox_run_id", "is_inbox_chart", "run_stage"]
