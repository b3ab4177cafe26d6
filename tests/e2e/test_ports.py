"""A port a server listens on in an instance shows up in the session page's
instance list; clicking it opens the served page through the proxy, on the
port's own origin."""
from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import page_on, running_stack
from tests.e2e.screens import READY, SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


@pytest.fixture(scope="module")
def ports_stack(tmp_path_factory, engine, bundle_built):
    """A stack of this module's own (Redis database 36): new ports are found every second."""
    yield from running_stack(engine, tmp_path_factory.mktemp("e2e-ports"), redis_db=36,
                             env={"PLAYGROUND_PORTS_SECONDS": "1"})


@pytest.fixture
def ports_page(browser, ports_stack):
    yield from page_on(browser, ports_stack)


def test_clicking_a_port_link_opens_the_served_page(ports_page, ports_stack):
    page = ports_page
    session = SessionPage.start_from_landing(page)
    node1 = session.terminal()
    node1.wait_for_prompt()
    node1.run("mkdir -p /srv/site && echo '<h1>served by node1</h1>' > /srv/site/index.html"
              " && python3 -m http.server 8080 --directory /srv/site >/dev/null 2>&1 &")

    link = page.locator(f'.instance[data-iid="{node1.iid}"] .port-link', has_text="8080")
    link.wait_for(timeout=READY * 1000)
    with page.context.expect_page() as opened:
        link.click()
    served = opened.value
    served.wait_for_load_state()
    served.get_by_role("heading", name="served by node1").wait_for(timeout=READY * 1000)
    # The port's own origin, and the grant traded for a cookie: a clean URL.
    assert re.fullmatch(rf"http://{node1.iid}-8080\.localhost:{ports_stack.port}/", served.url), served.url

    # The "open port" box: any port of the selected instance, here one nobody listens on.
    page.get_by_role("spinbutton", name="Open port").fill("9")
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Open", exact=True).click()
    closed = opened.value
    closed.get_by_text("Nothing answers on port 9 of node1").wait_for(timeout=READY * 1000)
