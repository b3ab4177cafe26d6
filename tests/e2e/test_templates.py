"""A template from the landing page: a swarm formed for the learner, shown in the page."""
from __future__ import annotations

import re

import pytest

from tests.e2e.screens import READY, SessionPage
from tests.integration.test_templates import docker_image_present

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


@pytest.mark.skipif(not docker_image_present(), reason="the docker image is not built on the engine")
def test_a_swarm_template_started_from_the_landing_page_shows_roles_and_becomes_ready(page):
    page.goto("/")
    page.get_by_role("button", name="swarm-1m1w").click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f]+/"), timeout=READY * 1000)
    session = SessionPage(page)

    names = page.locator(".instance .instance-name")
    names.first.wait_for()
    assert [" ".join(n.split()) for n in names.all_inner_texts()] == ["manager1 manager", "worker1 worker"]
    status = page.locator("#setup-status")
    page.wait_for_function("() => document.getElementById('setup-status').textContent.includes('ready')",
                           timeout=240_000)
    assert status.inner_text() == "swarm-1m1w: ready"

    terminal = session.terminal()
    terminal.wait_for_prompt()
    terminal.run("docker node ls --format '{{.Hostname}}={{.Status}}' | sort | tr '\\n' ' '; echo")
    terminal.wait_for_line(r"manager1=Ready worker1=Ready ?")
