"""The reliability suite: fault injection on the session's local stack and the bad-input corpus."""

from __future__ import annotations

from typing import Any

import pytest

TABLE_TEST = "test_zz_reliability_table.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The table check runs after every case that records into it, whatever the order given."""
    last = [i for i in items if i.nodeid.split("::")[0].endswith(TABLE_TEST)]
    items[:] = [i for i in items if i not in last] + last


@pytest.fixture(scope="session")
def clean(stack: Any) -> dict[str, str]:
    """Content hashes of the clean reference run, shared by every fault case of the session."""
    from faults_support import clean_run

    return clean_run(stack)
