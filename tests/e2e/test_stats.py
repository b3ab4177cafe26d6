"""The session page shows, under each running instance, the CPU and memory it
uses ("CPU 3% · 21/512 MiB"), and the figures follow what the instance does:
a process holding 200 MiB raises the memory figure, and ending it lowers it
again; a busy loop raises the CPU figure."""
from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import page_on, running_stack
from tests.e2e.screens import READY, SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

# Deadline for the page to show a change: samples every second, the page
# polls every few seconds; generous for a loaded machine.
FOLLOW = 60.0
MEMORY_LIMIT_MIB = 512
HOG_MIB = 200  # comfortably under the limit: the instance must not be OOM-killed
RISE_MIB = 150  # what the memory figure must rise by, at least
BUSY_CPU_PERCENT = 20  # as tests/integration/test_stats.py: a busy loop, however loaded the host

STATS = re.compile(r"CPU (?:(?P<cpu>\d+)%|–) · (?P<used>\d+)/(?P<limit>\d+) MiB")


@pytest.fixture(scope="module")
def stats_stack(tmp_path_factory, engine, bundle_built):
    """A stack of this module's own (Redis database 53): instances sampled every second."""
    yield from running_stack(engine, tmp_path_factory.mktemp("e2e-stats"), redis_db=53, env={
        "PLAYGROUND_STATS_SECONDS": "1",
        "PLAYGROUND_INSTANCE_MEMORY_MB": str(MEMORY_LIMIT_MIB),
    })


@pytest.fixture
def stats_page(browser, stats_stack):
    yield from page_on(browser, stats_stack)


class StatsLine:
    """The stats line under one instance of the session page's list."""

    def __init__(self, page, iid: str) -> None:
        self.page = page
        self.item = page.locator(f'.instance[data-iid="{iid}"]')
        self.line = self.item.locator(".instance-stats")

    def text(self) -> str:
        return " ".join(self.line.all_inner_texts())

    def wait_for(self, check, *, timeout: float, what: str) -> re.Match:
        """Poll the line until it reads as STATS and ``check(match)`` holds."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            text = self.text()
            if not seen or seen[-1] != text:
                seen.append(text)
            match = STATS.fullmatch(text.strip())
            if match and check(match):
                return match
            self.page.wait_for_timeout(250)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; the stats line read, in turn: "
                             f"{seen[-20:]!r}")


def used(match: re.Match) -> int:
    return int(match["used"])


def test_the_stats_line_follows_the_memory_and_cpu_an_instance_uses(stats_page):
    page = stats_page
    session = SessionPage.start_from_landing(page)
    node1 = session.terminal()
    node1.wait_for_prompt()
    stats = StatsLine(page, node1.iid)
    assert stats.item.locator(".instance-name").inner_text() == "node1"

    # A CPU figure (the first sample has none: it takes two) and memory of its limit.
    idle = stats.wait_for(lambda m: m["cpu"] is not None, timeout=READY, what="a stats line with a CPU figure")
    assert int(idle["limit"]) == MEMORY_LIMIT_MIB, idle.group(0)
    assert 0 < used(idle) < MEMORY_LIMIT_MIB - HOG_MIB, idle.group(0)
    baseline = used(idle)

    # A process that holds 200 MiB (written, so resident) until it is ended.
    node1.run(f'python3 -c "b = b\'x\' * ({HOG_MIB} << 20); print(\'holding\', len(b) >> 20); '
              f'import time; time.sleep(600)" &')
    node1.wait_for_line(rf".*holding {HOG_MIB}")  # after the prompt: it runs in the background
    held = stats.wait_for(lambda m: used(m) >= baseline + RISE_MIB, timeout=FOLLOW,
                          what=f"the memory figure to rise from {baseline} MiB by {RISE_MIB} MiB or more")
    assert int(held["limit"]) == MEMORY_LIMIT_MIB, held.group(0)

    # Ended, its memory is given back, and the figure falls again.
    node1.run("kill %1; wait; echo hog-gone")
    node1.wait_for_line(r"hog-gone")
    stats.wait_for(lambda m: used(m) <= used(held) - RISE_MIB, timeout=FOLLOW,
                   what=f"the memory figure to fall from {used(held)} MiB by {RISE_MIB} MiB or more")

    # A busy loop (ending by itself) shows as CPU use.
    node1.run("timeout 120 sh -c 'while :; do :; done' &")
    stats.wait_for(lambda m: m["cpu"] is not None and int(m["cpu"]) >= BUSY_CPU_PERCENT, timeout=FOLLOW,
                   what=f"the CPU figure to reach {BUSY_CPU_PERCENT}% with a busy loop running")
