"""playground/priority.py: the web tier's nice value."""
from __future__ import annotations

import logging
import os

from playground import priority


class FakeScheduler:
    def __init__(self, nice: int = 0, *, allowed: bool = True) -> None:
        self.nice = nice
        self.allowed = allowed
        self.calls: list[int] = []

    def getpriority(self, which: int, who: int) -> int:
        assert (which, who) == (os.PRIO_PROCESS, 0)
        return self.nice

    def setpriority(self, which: int, who: int, value: int) -> None:
        assert (which, who) == (os.PRIO_PROCESS, 0)
        self.calls.append(value)
        if not self.allowed and value < self.nice:
            raise PermissionError(13, "Permission denied")
        self.nice = value


def test_the_process_takes_the_configured_nice_value():
    fake = FakeScheduler()
    assert priority.apply_nice(-10, setpriority=fake.setpriority, getpriority=fake.getpriority) == -10
    assert fake.calls == [-10]


def test_zero_or_the_current_value_changes_nothing():
    fake = FakeScheduler(nice=5)
    assert priority.apply_nice(0, setpriority=fake.setpriority, getpriority=fake.getpriority) == 5
    assert priority.apply_nice(5, setpriority=fake.setpriority, getpriority=fake.getpriority) == 5
    assert fake.calls == []


def test_without_the_right_to_raise_it_the_process_goes_on_and_says_why(caplog):
    fake = FakeScheduler(allowed=False)
    with caplog.at_level(logging.WARNING, logger="playground.priority"):
        assert priority.apply_nice(-10, setpriority=fake.setpriority, getpriority=fake.getpriority) == 0
    assert "PLAYGROUND_WEB_NICE=-10 needs root or CAP_SYS_NICE" in caplog.text
