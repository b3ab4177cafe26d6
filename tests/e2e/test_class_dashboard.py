"""The instructor's dashboard, in one browser context, follows a learner in another."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import VIEWPORT
from tests.e2e.screens import READY, SessionPage, make_instructor, open_dashboard
from tests.stack import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.stack]



def test_the_dashboard_shows_a_learner_join_raise_a_hand_and_pass_a_check(stack, browser, page):
    stack.manage("import_labs", str(ROOT / "labs" / "what-is-a-container"))
    make_instructor(stack, "dash-teacher")
    teacher = stack.client("dash-teacher")
    now = datetime.now(UTC)
    classroom = teacher.post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": "Live class", "lab": "what-is-a-container", "seats": 5,
        "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
    }).json()

    instructor = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    try:
        dash = instructor.new_page()
        dash.set_default_timeout(30_000)
        open_dashboard(dash, "dash-teacher", classroom["id"])
        assert dash.locator("#roster-empty").is_visible()

        # The learner joins in another context: a row appears, no reload.
        page.goto(classroom["invite_url"])
        page.get_by_label("Your name in the class").fill("Grace")
        page.get_by_role("button", name="Join").click()
        page.wait_for_url(re.compile(r"/sessions/[0-9a-f]+/"), timeout=READY * 1000)
        row = dash.locator(".learner-row[data-learner='Grace']")
        row.wait_for()
        assert row.locator(".learner-step").inner_text().startswith("1 of ")

        page.get_by_role("button", name="Raise hand").click()
        row.locator(".learner-flags", has_text="hand raised").wait_for()

        # A check that passes moves the learner on (step 1: hostname is shown).
        session = SessionPage(page)
        terminal = session.terminal()
        terminal.wait_for_prompt()
        terminal.run("hostname > ~/hostname.txt; echo saved-$((40+2))")
        terminal.wait_for_line(r"saved-42")
        csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
        checked = page.context.request.post(f"/api/sessions/{session.sid}/check/", data={"step": 1},
                                            headers={"X-CSRFToken": csrf})
        assert checked.ok, checked.text()
        assert checked.json()["passed"], checked.json()
        row.locator(".learner-passed", has_text="1").wait_for()
        assert row.locator(".learner-step").inner_text().startswith("2 of ")

        # A message to everyone shows on the learner's page.
        dash.get_by_label("Message to every learner").fill("Break until half past")
        dash.get_by_role("button", name="Send").click()
        dash.get_by_text("Sent to 1 learner.").wait_for()
        page.get_by_text("dash-teacher (instructor): Break until half past").wait_for()

        # Watching: the same screen, read-only; taking over is shown to the learner.
        dash.goto(row.locator(".learner-watch").get_attribute("href"))
        watched = SessionPage(dash).terminal(dash.locator("#watch").get_attribute("data-iid"))
        watched.wait_for_line(r"saved-42")
        dash.get_by_role("button", name="Take over").click()
        dash.get_by_role("button", name="Give back").wait_for()
        page.locator(".term-host.read-only").first.wait_for()
        dash.locator("#watch-screen").click()
        dash.keyboard.type("echo from-teacher-$((40+2))")
        dash.keyboard.press("Enter")
        terminal.wait_for_line(r"from-teacher-42")
        dash.get_by_role("button", name="Give back").click()
        page.wait_for_function("() => !document.querySelector('.term-host.read-only')")
    finally:
        instructor.close()
