"""The Docker driver reads a host's totals (memory, CPUs) from the engine's
/info once per ``totals_ttl``, not every health round: /info costs the engine
milliseconds of CPU and the totals change only with the machine. What is left
of memory (MemAvailable) is read every time."""
from __future__ import annotations

import time

from sandboxes.docker import DockerDriver


class CountingApi:
    def __init__(self) -> None:
        self.info_calls = 0

    def info(self) -> dict:
        self.info_calls += 1
        return {"MemTotal": 8 << 30, "NCPU": 4}


def test_the_totals_are_read_once_per_ttl_and_what_is_available_every_time(monkeypatch):
    driver = DockerDriver(url="unix:///run/playground-test-none/docker.sock", deployment="unit")
    driver.api = CountingApi()
    available = iter([5 << 30, 3 << 30, 1 << 30])
    monkeypatch.setattr(driver, "_memory_available", lambda: next(available))

    first, second = driver.capacity(), driver.capacity()
    assert driver.api.info_calls == 1
    assert (first.memory_bytes, first.cpus) == (second.memory_bytes, second.cpus) == (8 << 30, 4.0)
    assert (first.memory_available_bytes, second.memory_available_bytes) == (5 << 30, 3 << 30)

    clock = time.monotonic() + driver.totals_ttl + 1
    monkeypatch.setattr(time, "monotonic", lambda: clock)
    assert driver.capacity().memory_available_bytes == 1 << 30
    assert driver.api.info_calls == 2
