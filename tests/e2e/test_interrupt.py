"""Ctrl-C stops a program that floods the terminal, and the prompt comes back."""
from __future__ import annotations

import pytest

from tests.e2e.screens import SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def test_ctrl_c_stops_yes_and_gives_the_prompt_back(page):
    session = SessionPage.start_from_landing(page)
    terminal = session.terminal()
    terminal.wait_for_prompt()

    terminal.run("yes")
    terminal.wait_until(lambda lines: sum(line == "y" for line in lines) >= 200, timeout=60,
                        what="yes to fill the screen")
    terminal.focus()
    page.keyboard.press("Control+c")
    terminal.run("echo stopped-$((2+3))")
    terminal.wait_for_line(r"stopped-5", timeout=120)
    terminal.wait_for_prompt()
