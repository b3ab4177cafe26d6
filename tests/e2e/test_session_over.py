"""A session that ends says so, and Extend moves its end."""
from __future__ import annotations

from datetime import datetime

import pytest

from tests.e2e.screens import READY, SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def _csrf(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")


def test_a_session_ended_elsewhere_shows_the_session_over_screen(context, page):
    session = SessionPage.start_from_landing(page)
    session.terminal().wait_for_prompt()

    ended = context.request.delete(f"/api/sessions/{session.sid}/", headers={"X-CSRFToken": _csrf(context)})
    assert ended.status == 204
    over = page.locator("#over")
    over.wait_for(state="visible", timeout=READY * 1000)
    assert "over" in over.inner_text()
    assert page.get_by_role("button", name="Start a new session").is_visible()


def test_extend_moves_the_end_of_the_session(context, page):
    session = SessionPage.start_from_landing(page)
    before = context.request.get(f"/api/sessions/{session.sid}/").json()["expires_at"]

    page.locator("header").get_by_role("button", name="Extend").click()
    page.get_by_text("Extended: the session now ends at").wait_for()
    after = context.request.get(f"/api/sessions/{session.sid}/").json()["expires_at"]
    assert datetime.fromisoformat(after) > datetime.fromisoformat(before)


def test_five_minutes_before_the_end_the_page_warns(stack, page):
    session = SessionPage.start_from_landing(page)
    assert page.locator("#expiry-warning").is_hidden()
    # Move the end to four minutes from now, as time passing would.
    stack.sql("UPDATE play_sessions_session SET expires_at = datetime('now', '+240 seconds') WHERE id = ?",
              (session.sid,))
    page.reload()
    warning = page.locator("#expiry-warning")
    warning.wait_for(state="visible", timeout=READY * 1000)
    assert "Extend" in page.locator("header").inner_text()
