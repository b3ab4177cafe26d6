"""From the landing page, one click gives a shell that runs commands."""
from __future__ import annotations

import pytest

from tests.e2e.screens import SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def test_start_gives_a_shell_that_runs_a_command(page):
    session = SessionPage.start_from_landing(page)
    terminal = session.terminal()
    terminal.wait_for_prompt()
    terminal.run("echo $((6*7))")
    terminal.wait_for_line(r"42")
    assert session.instance_names() == ["node1"]
