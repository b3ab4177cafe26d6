"""A second instance gets a terminal of its own."""
from __future__ import annotations

import pytest

from tests.e2e.screens import SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def test_an_added_instance_has_its_own_terminal(page):
    session = SessionPage.start_from_landing(page)
    node1 = session.terminal()
    node1.wait_for_prompt()

    node2 = session.terminal(session.add_instance())
    assert node2.iid != node1.iid
    page.get_by_text("2 of 5").wait_for()
    node2.wait_for_prompt()
    node2.run("hostname")
    node2.wait_for_line(r"node2")
    assert session.instance_names() == ["node1", "node2"]

    page.locator(".instance-pick", has_text="node1").click()
    node1.run("echo back-on-$(hostname)")
    node1.wait_for_line(r"back-on-node1")
