"""The shell's terminal follows the size of the browser window."""
from __future__ import annotations

import pytest

from tests.e2e.screens import SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def _shell_size_becomes(terminal, wanted: tuple[int, int]) -> None:
    """Ask the shell for its size until it reports ``wanted`` (the resize
    message and the typed command travel separately, so ask again)."""
    for _ in range(10):
        terminal.run("echo size=$(stty size)")
        found = terminal.wait_for_line(r"size=(\d+) (\d+)")
        if (int(found.group(1)), int(found.group(2))) == wanted:
            return
        terminal.page.wait_for_timeout(1000)
    raise AssertionError(f"stty size never reported {wanted}; last: {found.group(0)}")


def test_resizing_the_window_changes_stty_size(page):
    session = SessionPage.start_from_landing(page)
    terminal = session.terminal()
    terminal.wait_for_prompt()
    large = terminal.size()
    _shell_size_becomes(terminal, large)

    page.set_viewport_size({"width": 900, "height": 560})
    terminal.wait_until(lambda _: terminal.size() != large, timeout=30, what="the terminal to fit the window")
    small = terminal.size()
    assert small[0] < large[0] and small[1] < large[1]
    _shell_size_becomes(terminal, small)
