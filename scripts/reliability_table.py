#!/usr/bin/env python3
"""Regenerate docs/reliability.md from the reliability suite's results.

    .venv/bin/python scripts/reliability_table.py            # run tests/reliability and tests/fuzz, write the doc
    .venv/bin/python scripts/reliability_table.py --check    # run them, fail if the doc differs
    .venv/bin/python scripts/reliability_table.py --from-build   # render build/reliability/results.json only

The table is never edited by hand: each row is recorded by a test after its assertions passed
(tests/reliability_log.py); the suite's last test compares the rendering with the committed file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from reliability_log import BUILD, DOC, Case, render  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="run the suites and fail if docs/reliability.md differs")
    mode.add_argument("--from-build", action="store_true", help="render build/reliability/results.json, run nothing")
    args = parser.parse_args(argv)
    if args.from_build:
        results = json.loads((BUILD / "results.json").read_text())
        DOC.write_text(render({c["case"]: Case(**c) for c in results}))
        print(f"wrote {DOC.relative_to(REPO)} from {BUILD.relative_to(REPO)}/results.json")
        return 0
    env = dict(os.environ)
    if not args.check:
        env["RELIABILITY_WRITE"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "tests/reliability", "tests/fuzz"]
    code = subprocess.call(cmd, cwd=REPO, env=env)
    if code == 0 and not args.check:
        print(f"wrote {DOC.relative_to(REPO)}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
