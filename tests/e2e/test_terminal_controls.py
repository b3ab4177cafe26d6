"""The terminal's own controls: text size (remembered) and full screen."""
from __future__ import annotations

import pytest

from tests.e2e.screens import SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def _font_size(page, iid: str) -> int:
    return page.evaluate("iid => window.playgroundTerminals[iid].term.options.fontSize", iid)


def test_the_text_size_buttons_change_the_font_and_it_is_remembered(page):
    session = SessionPage.start_from_landing(page)
    terminal = session.terminal()
    terminal.wait_for_prompt()
    before = _font_size(page, terminal.iid)
    _rows, cols = terminal.size()

    page.locator(".pane.active").get_by_role("button", name="A+").click()
    page.locator(".pane.active").get_by_role("button", name="A+").click()
    assert _font_size(page, terminal.iid) == before + 2
    terminal.wait_until(lambda _: terminal.size()[1] < cols, timeout=30, what="fewer columns with larger text")

    page.reload()
    again = SessionPage(page).terminal()
    again.wait_for_prompt()
    assert _font_size(page, again.iid) == before + 2
    page.locator(".pane.active").get_by_role("button", name="A−").click()
    assert _font_size(page, again.iid) == before + 1


def test_full_screen_gives_the_terminal_the_whole_window(page):
    session = SessionPage.start_from_landing(page)
    terminal = session.terminal()
    terminal.wait_for_prompt()
    rows, cols = terminal.size()

    page.locator(".pane.active").get_by_role("button", name="Full screen").click()
    page.wait_for_function("() => document.fullscreenElement?.classList.contains('pane')")
    terminal.wait_until(lambda _: terminal.size()[0] > rows and terminal.size()[1] > cols, timeout=30,
                        what="the terminal to grow to the whole window")
    page.locator(".pane.active").get_by_role("button", name="Exit full screen").click()
    page.wait_for_function("() => !document.fullscreenElement")
    terminal.wait_until(lambda _: terminal.size() == (rows, cols), timeout=30, what="the terminal to shrink back")
