"""The fault tier: each test causes a fault for real (SIGKILL a process, stop
Redis or the database, restart an engine or a web process) and asserts what
the learner sees while it lasts and after. Stacks here run on private copies
of whatever they break, never on the shared engine or Redis."""
from __future__ import annotations

import pytest

from tests.integration.conftest import engine  # noqa: F401 - the raw engine client, shared


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
