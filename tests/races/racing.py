"""Two calls at once, for the race tests."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, connections


@dataclass
class Outcome:
    value: object = None
    error: BaseException | None = None


def race(*calls: Callable[[], object]) -> list[Outcome]:
    """Run ``calls`` at once, each in a thread on a database connection of its
    own (opened before the start, so both are at the line together); returns
    what each returned or raised."""
    barrier = threading.Barrier(len(calls))
    outcomes = [Outcome() for _ in calls]

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            connection.ensure_connection()
            barrier.wait(timeout=30)
            outcomes[index].value = call()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcomes[index].error = exc
        finally:
            connections.close_all()  # the test database is dropped at the end

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a racer hung (a lock never released?)"
    return outcomes


ROUNDS = int(os.environ.get("PLAYGROUND_RACE_ROUNDS", "25"))
"""Rounds each race runs: enough for a read-then-write to lose at least once
on 2 cores (checked by putting one back), few enough to keep the tier short."""
