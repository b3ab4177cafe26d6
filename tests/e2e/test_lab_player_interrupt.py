"""A code block marked `interrupt` in a lab: its Run button presses Ctrl-C in
the terminal before it types the block, so a program that still runs there
(here `sleep 600`) stops and the block runs at once."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.screens import READY, SessionPage
from tests.stack import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

LAB = Path(__file__).with_name("labs") / "stop-and-run"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, engine, bundle_built):
    """A stack of this module's own (Redis db 51)."""
    yield from running_stack(engine, tmp_path_factory.mktemp("e2e-lab-interrupt"), redis_db=51)


@pytest.fixture(scope="module")
def stop_and_run_lab(stack):
    assert "stop-and-run: created" in stack.manage("import_labs", str(LAB))
    return "stop-and-run"


def exec_in(page, sid: str, iid: str, command: str) -> dict:
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    answer = page.request.post(f"/api/sessions/{sid}/instances/{iid}/exec/",
                               data={"command": command}, headers={"X-CSRFToken": csrf})
    assert answer.ok, answer.text()
    return answer.json()


def test_the_interrupt_run_stops_what_runs_in_the_terminal_and_runs_the_block(page, stop_and_run_lab):
    page.goto("/labs/")
    page.locator(f'.lab-card[data-slug="{stop_and_run_lab}"]').get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f]+/"), timeout=READY * 1000)
    session = SessionPage(page)
    lab = page.locator("#lab")
    lab.get_by_role("button", name="Start").click()
    page.locator("#lab-title").filter(has_text="1. Stop what still runs").wait_for()

    # Something that holds the terminal: a person typed it and it runs.
    terminal = session.terminal()
    terminal.wait_for_prompt()
    terminal.run("sleep 600")
    wait_for(lambda: exec_in(page, session.sid, terminal.iid, "pgrep -x sleep")["exit_code"] == 0,
             timeout=READY, interval=0.5, what="sleep 600 to run in node1")

    lab.get_by_role("button", name="Stop & run on node1").click()

    # The block's output appears long before the sleep would have ended, and
    # the sleep is gone: Ctrl-C stopped it.
    terminal.wait_for_line(r"stopped and ran: 42")
    terminal.wait_for_prompt()
    assert exec_in(page, session.sid, terminal.iid, "pgrep -x sleep")["exit_code"] == 1
