"""A lab with `auto_check: true`: the player checks the current step every few
seconds, quietly while it fails, and marks it passed (the next step unlocked)
as soon as the learner's work in the terminal is done, with no press on Check.
Its checks say they are automatic, so their failures are not counted as the
learner's (checks_failed, the stuck flag of a class)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.screens import READY, SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

LAB = Path(__file__).with_name("labs") / "checked-as-you-go"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, engine, bundle_built):
    """A stack of this module's own (Redis db 52)."""
    yield from running_stack(engine, tmp_path_factory.mktemp("e2e-lab-auto-check"), redis_db=52)


@pytest.fixture(scope="module")
def checked_lab(stack):
    assert "checked-as-you-go: created" in stack.manage("import_labs", str(LAB))
    return "checked-as-you-go"


def is_check(response) -> bool:
    return response.request.method == "POST" and response.url.endswith("/check/")


def test_a_step_passes_by_itself_once_the_work_is_done_in_the_terminal(page, checked_lab):
    page.goto("/labs/")
    page.locator(f'.lab-card[data-slug="{checked_lab}"]').get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f]+/"), timeout=READY * 1000)
    session = SessionPage(page)
    lab = page.locator("#lab")
    lab.get_by_role("button", name="Start").click()
    page.locator("#lab-title").filter(has_text="1. Leave a note").wait_for()
    next_button = lab.get_by_role("button", name="Next")
    result = page.locator("#lab-result")

    # The player checks by itself; while the step is not done that says nothing.
    with page.expect_response(is_check, timeout=READY * 1000) as first:
        pass
    assert first.value.json()["passed"] is False
    assert first.value.request.post_data_json == {"step": 1, "auto": True}
    assert first.value.json()["progress"]["checks_failed"] == 0
    assert result.is_hidden()
    assert next_button.is_disabled()

    # The learner does the work in the terminal, and nobody presses Check.
    terminal = session.terminal()
    terminal.wait_for_prompt()
    terminal.run("echo noted > /root/note.txt")

    result.filter(has_text="Passed").wait_for(timeout=READY * 1000)
    assert "Found the note." in result.inner_text()
    assert next_button.is_enabled()
    assert "done" in page.locator("#lab-counter").text_content()
    progress = page.request.get(f"/api/labs/{checked_lab}/").json()["progress"]
    assert progress["completed"] == [1]
    # At least one automatic check failed (above); none of them was counted.
    assert (progress["checks_passed"], progress["checks_failed"]) == (1, 0)

    next_button.click()
    page.locator("#lab-title").filter(has_text="2. Look around").wait_for()
