"""The landing page turns 409, 429 and 503 into sentences a learner can act on."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import VIEWPORT
from tests.e2e.screens import SessionPage
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def start_error(page) -> str:
    page.click("#start")
    message = page.locator("#start-error")
    message.wait_for(state="visible")
    return message.inner_text()


def test_a_second_session_over_the_guest_cap_says_to_end_one(page):
    SessionPage.start_from_landing(page)  # a guest's one live session
    page.goto("/")
    text = start_error(page)
    assert "already have 1 live session" in text, text
    assert "end one" in text


@pytest.fixture(scope="module")
def hostless(tmp_path_factory, bundle_built):
    """A playground whose only lab host does not answer, and guests may start
    one session a minute."""
    running = Stack(tmp_path_factory.mktemp("e2e-hostless"), redis_db=17, env={
        "PLAYGROUND_LAB_HOSTS": "unix:///run/playground/no-such-engine.sock",
        "PLAYGROUND_SESSION_RATE_GUEST": "1/min",
    })
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_no_lab_host_and_then_too_many_tries_are_explained(browser, hostless):
    context = browser.new_context(base_url=hostless.url, viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto("/")
        text = start_error(page)
        assert "No lab host can take a sandbox now" in text, text
        assert "Try again" in text

        page.reload()  # the button waits out the advice; a reload does not
        text = start_error(page)
        assert "Too many requests right now. Try again in" in text, text
    finally:
        context.close()
