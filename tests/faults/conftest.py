"""The fault tier: each test causes a fault for real (SIGKILL a process, stop
Redis or the database, restart an engine or a web process) and asserts what
the learner sees while it lasts and after. Stacks here run on private copies
of whatever they break, never on the shared engine or Redis.

Tests never assert how long a fault lasts; they note what they measured with
the ``measured`` fixture, and the run ends with the table (README, "Failures").
"""
from __future__ import annotations

import pytest

from tests.integration.conftest import engine  # noqa: F401 - the raw engine client, shared

_MEASURED: list[tuple[str, str, float]] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def measured():
    """``measured(fault, what the learner saw, seconds)``: one row of the table."""

    def note(fault: str, seen: str, seconds: float) -> None:
        _MEASURED.append((fault, seen, seconds))

    return note


def pytest_terminal_summary(terminalreporter) -> None:
    if not _MEASURED:
        return
    terminalreporter.section("faults: measured")
    for fault, seen, seconds in _MEASURED:
        terminalreporter.write_line(f"{fault} | {seen} | {seconds:.2f} s")
