"""The reliability suite: fault injection on the session's local stack and the bad-input corpus."""

from __future__ import annotations

import pytest

TABLE_TEST = "test_zz_reliability_table.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The table check runs after every case that records into it, whatever the order given."""
    last = [i for i in items if i.nodeid.split("::")[0].endswith(TABLE_TEST)]
    items[:] = [i for i in items if i not in last] + last
