"""A learner follows a lab in Chromium: from the catalogue to the lab's
session, Run types a code block into the terminal, Check fails then passes,
and the progress survives a reload."""
from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.screens import READY, SessionPage
from tests.unit.labs_helpers import write_lab

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

LAB = """\
title: Hello, lab
summary: Leave a file behind and let the check find it.
duration: 5
difficulty: beginner
tags: [e2e]
environment:
  instances:
    - name: node1
      image: shell
steps:
  - title: Leave a mark
    text: step1.md
    check: |
      grep -qs "ran from the lab" /root/mark.txt || { echo "no mark yet"; exit 1; }
      echo "found the mark"
    hint: Press Run on the block above.
    solution: echo ran from the lab > /root/mark.txt
  - title: Look around
    text: step2.md
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory, engine, bundle_built):
    """A stack of this module's own (Redis db 32), the lab imported into it."""
    yield from running_stack(engine, tmp_path_factory.mktemp("e2e-labs-stack"), redis_db=32)


@pytest.fixture(scope="module")
def hello_lab(stack, tmp_path_factory):
    folder = write_lab(tmp_path_factory.mktemp("e2e-labs"), LAB, {
        "intro.md": "# Hello, lab\n\nWelcome.\n",
        "step1.md": "Leave a mark:\n\n```bash\necho ran from the lab > /root/mark.txt; echo marked-$((6*7))\n```\n",
        "step2.md": "Nothing to check here.\n",
    }, name="hello-lab")
    assert "hello-lab: created" in stack.manage("import_labs", str(folder))
    return "hello-lab"


def test_a_learner_runs_a_block_checks_the_step_and_keeps_progress_over_a_reload(page, hello_lab):
    page.goto("/labs/")
    card = page.locator('.lab-card[data-slug="hello-lab"]')
    card.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f]+/"), timeout=READY * 1000)
    session = SessionPage(page)
    lab = page.locator("#lab")
    lab.get_by_text("Welcome.").wait_for()
    lab.get_by_role("button", name="Start").click()
    page.locator("#lab-title").filter(has_text="1. Leave a mark").wait_for()

    # Check before doing the step: it fails and shows the check's output and the hint.
    lab.get_by_role("button", name="Check").click()
    result = page.locator("#lab-result")
    result.filter(has_text="Not yet").wait_for(timeout=READY * 1000)
    assert "no mark yet" in result.inner_text()
    assert "Press Run on the block above." in result.inner_text()
    assert lab.get_by_role("button", name="Next").is_disabled()

    # Run types the block into node1's terminal, where it runs.
    terminal = session.terminal()
    terminal.wait_for_prompt()
    lab.get_by_role("button", name="Run on node1").click()
    terminal.wait_for_line(r"marked-42")

    lab.get_by_role("button", name="Check").click()
    result.filter(has_text="Passed").wait_for(timeout=READY * 1000)
    assert "found the mark" in result.inner_text()
    assert lab.get_by_role("button", name="Next").is_enabled()

    # The progress is the learner's: a reload resumes at step 2, step 1 done.
    page.reload()
    page.locator("#lab-title").filter(has_text="2. Look around").wait_for(timeout=READY * 1000)
    lab.get_by_role("button", name="Back").click()
    assert "done" in page.locator("#lab-counter").text_content().lower()
