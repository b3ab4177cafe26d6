"""A KillerCoda scenario, imported, in the player: the intro's foreground
script is typed into the terminal by itself when the intro opens (and waits
there for the set-up, the intro's background, to finish), inline code marked
{{exec}} types itself on a click, and the Solution section is collapsed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.screens import READY, SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

SCENARIO = Path(__file__).resolve().parents[1] / "fixtures" / "killercoda" / "hello-scenario"


@pytest.fixture(scope="module")
def scenario_lab(stack):
    """The scenario imported into the shared end-to-end stack."""
    assert "hello-scenario: " in stack.manage("import_labs", str(SCENARIO))
    return "hello-scenario"


def test_the_foreground_types_itself_and_inline_code_runs_on_a_click(page, scenario_lab):
    page.goto("/labs/")
    page.locator(f'.lab-card[data-slug="{scenario_lab}"]').get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f]+/"), timeout=READY * 1000)
    terminal = SessionPage(page).terminal()

    # Nobody typed: the intro's foreground did, and it waited for the set-up.
    terminal.wait_for_line(r"Ready\.")

    lab = page.locator("#lab")
    lab.get_by_role("button", name="Start").click()
    page.locator("#lab-title").filter(has_text="1. Write a file").wait_for()
    solution = lab.locator("details.lab-details", has_text="Solution")
    assert solution.get_attribute("open") is None  # collapsed until the learner opens it

    lab.locator("code.lab-run-inline", has_text="cat ~/greeting.txt").click()
    terminal.wait_for_line(r"Hello from the set-up")
