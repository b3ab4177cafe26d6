"""A learner opens a class's invite link, gives a name, and lands in the lab."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.screens import READY, SessionPage
from tests.stack import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def test_the_invite_link_asks_a_name_and_opens_the_lab_session(stack, page):
    stack.manage("import_labs", str(ROOT / "labs" / "what-is-a-container"))
    stack.tokens["e2e-teacher"] = stack.manage("create_api_token", "--instructor", "e2e-teacher").strip()
    teacher = stack.client("e2e-teacher")
    now = datetime.now(UTC)
    classroom = teacher.post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": "Containers, day 1", "lab": "what-is-a-container", "seats": 10,
        "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
    }).json()

    page.goto(classroom["invite_url"])
    assert "Containers, day 1" in page.locator("h1").inner_text()
    page.get_by_label("Your name in the class").fill("Ada")
    page.get_by_role("button", name="Join").click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f]+/"), timeout=READY * 1000)
    SessionPage(page).terminal().wait_for_prompt()

    [entry] = teacher.get(f"{stack.url}/api/classrooms/{classroom['id']}/roster/", timeout=30).json()
    assert entry["learner"] == "Ada" and entry["session"] == SessionPage(page).sid

    # A wrong code typed on the join page is explained, not a crash.
    page.goto("/join/")
    page.get_by_label("Join code").fill("WRONG234")
    page.get_by_role("button", name="Join").click()
    assert "No class has this join code" in page.locator("#join-error").inner_text()
