"""Skipping steps in Chromium (issue 17): a learner in a class skips step 1
from the lab player, then the instructor fast-forwards them to step 3 from
the dashboard; each is seen live on the other's page."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import VIEWPORT
from tests.e2e.screens import READY, make_instructor, open_dashboard
from tests.unit.labs_helpers import write_lab

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

LAB = """\
title: Skip ahead
summary: Three steps whose solutions the playground may run for you.
duration: 5
difficulty: beginner
tags: [e2e]
skippable: true
environment:
  instances:
    - name: node1
      image: shell
steps:
  - title: One
    text: step1.md
    check: test -f /root/one || { echo "no /root/one yet"; exit 1; }
    solution: touch /root/one
  - title: Two
    text: step2.md
    check: test -f /root/two || { echo "no /root/two yet"; exit 1; }
    solution: touch /root/two
  - title: Three
    text: step3.md
    check: test -f /root/three || { echo "no /root/three yet"; exit 1; }
  - title: Four
    text: step4.md
"""



def test_a_learner_skips_a_step_and_the_instructor_fast_forwards_them(stack, browser, page, tmp_path):
    folder = write_lab(tmp_path, LAB, {
        "intro.md": "# Skip ahead\n\nWelcome.\n", "step1.md": "Make one.\n", "step2.md": "Make two.\n",
        "step3.md": "Make three.\n", "step4.md": "Done.\n",
    }, name="skip-ahead")
    assert "skip-ahead: created" in stack.manage("import_labs", str(folder))
    make_instructor(stack, "skip-teacher")
    now = datetime.now(UTC)
    classroom = stack.client("skip-teacher").post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": "Skipping class", "lab": "skip-ahead", "seats": 3,
        "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(),
    }).json()

    instructor = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    try:
        dash = instructor.new_page()
        dash.set_default_timeout(30_000)
        open_dashboard(dash, "skip-teacher", classroom["id"])

        page.goto(classroom["invite_url"])
        page.get_by_label("Your name in the class").fill("Ada")
        page.get_by_role("button", name="Join").click()
        page.wait_for_url(re.compile(r"/sessions/[0-9a-f]+/"), timeout=READY * 1000)
        row = dash.locator(".learner-row[data-learner='Ada']")
        row.wait_for()

        # The learner skips step 1: its solution runs, then its check; the
        # player moves on, and the roster shows step 1 skipped, not passed.
        lab = page.locator("#lab")
        lab.get_by_role("button", name="Start").click()
        page.locator("#lab-title").filter(has_text="1. One").wait_for()
        lab.get_by_role("button", name="Skip to step 2").click(timeout=READY * 1000)
        page.locator("#lab-skip-status", has_text="Skipped to step 2.").wait_for(timeout=READY * 1000)
        page.locator("#lab-title").filter(has_text="2. Two").wait_for()
        row.locator(".learner-skipped", has_text="1").wait_for()
        assert row.locator(".learner-passed").inner_text() == "0"
        assert row.locator(".learner-step").inner_text().startswith("2 of ")
        lab.get_by_role("button", name="Back").click()
        assert "skipped" in page.locator("#lab-counter").text_content()

        # The instructor fast-forwards Ada to step 3: the roster follows the
        # job, and Ada's player moves to step 3 by itself.
        dash.locator("#fast-forward-step").select_option("3")
        row.get_by_role("button", name="Fast-forward").click()
        dash.get_by_text("Fast-forwarding 1 learner to step 3.").wait_for()
        row.locator(".learner-skip", has_text="Skipped to step 3.").wait_for(timeout=READY * 1000)
        assert row.locator(".learner-skipped").inner_text().startswith("1, 2")
        page.locator("#lab-title").filter(has_text="3. Three").wait_for(timeout=READY * 1000)
        page.locator("#lab-skip-status", has_text="Your instructor: Skipped to step 3.").wait_for()

        # Step 3 has no solution: skipping past it is refused, and the button says why.
        skip = lab.get_by_role("button", name="Skip to step 4")
        assert skip.is_disabled()
        assert page.locator("#lab-skip-why").inner_text() == "(step 3 has no solution)"
    finally:
        instructor.close()
