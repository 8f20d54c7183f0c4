"""Moved to :mod:`spotify_pipeline.runtime` and :mod:`spotify_pipeline.handlers`; no code imports this any
more. Kept only while README.md and docs/ cite this file (the docs-links test checks cited paths)."""

from spotify_pipeline.runtime import INBOX_PREFIX, REPLAY_SOURCE, Runtime, inbox_run_id, is_inbox_chart, run_stage

__all__ = ["INBOX_PREFIX", "REPLAY_SOURCE", "Runtime", "inbox_run_id", "is_inbox_chart", "run_stage"]
