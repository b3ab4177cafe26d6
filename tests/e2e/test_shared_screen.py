"""Every page on a session shows the same terminal, and a reload restores it."""
from __future__ import annotations

import pytest

from tests.e2e.screens import SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def _tail(lines: list[str], n: int = 4) -> list[str]:
    return [line for line in lines if line.strip()][-n:]


def test_a_second_page_on_the_session_sees_the_same_screen(context, page):
    first = SessionPage.start_from_landing(page)
    mine = first.terminal()
    mine.wait_for_prompt()
    mine.run("echo $((6*7))")
    mine.wait_for_line(r"42")

    other_page = context.new_page()
    other_page.goto(page.url)
    other = SessionPage(other_page).terminal(mine.iid)
    other.wait_for_line(r"42")  # the replay of what was there before

    other.run("echo from-the-second-page-$((3+4))")
    mine.wait_for_line(r"from-the-second-page-7")
    other.wait_for_line(r"from-the-second-page-7")
    mine.wait_until(lambda lines: _tail(lines) == _tail(other.lines()), timeout=30,
                    what="both pages to show the same last lines")


def test_a_reload_finds_the_earlier_output(page):
    session = SessionPage.start_from_landing(page)
    terminal = session.terminal()
    terminal.wait_for_prompt()
    terminal.run("echo before-the-reload-$((40+2))")
    terminal.wait_for_line(r"before-the-reload-42")

    page.reload()
    again = SessionPage(page).terminal()
    assert again.iid == terminal.iid
    again.wait_for_line(r"before-the-reload-42")
    again.wait_for_prompt()
    again.run("echo after-the-reload-$((1+1))")
    again.wait_for_line(r"after-the-reload-2")
