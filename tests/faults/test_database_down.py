"""PostgreSQL stopped under a running playground: API calls and pages answer
503 `unavailable` with Retry-After within 5 s, /healthz names the database,
an open terminal keeps working, and everything comes back by itself."""
from __future__ import annotations

import time

import pytest
import requests

from tests.faults.outage import a_session_runs_again, assert_healthz_names, assert_unavailable
from tests.integration.conftest import running_stack, wait_instance
from tests.integration.test_terminal import Terminal, token
from tests.pg import private_cluster

pytestmark = [pytest.mark.engine, pytest.mark.stack]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with private_cluster(tmp_path_factory.mktemp("postgres")) as made:
        yield made


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory, cluster):
    yield from running_stack(engine, tmp_path_factory.mktemp("database-down"), redis_db=62,
                             database_url=cluster.url)


def test_with_the_database_down_the_api_says_unavailable_and_open_terminals_keep_working(stack, cluster, measured):
    alice = stack.client("alice")
    session = alice.post(stack.url + "/api/sessions/", json={}, timeout=30).json()
    node = wait_instance(stack, alice, session["id"], session["instances"][0]["id"], "running", timeout=60)
    terminal = Terminal(stack, node["id"], token=token(stack, alice))
    terminal.event("status", state="running")

    cluster.stop("immediate")  # as a crash
    try:
        assert_unavailable({
            "list sessions": lambda: alice.get(stack.url + "/api/sessions/", timeout=30),
            "start a session": lambda: alice.post(stack.url + "/api/sessions/", json={}, timeout=30),
            "exec": lambda: alice.post(f"{stack.url}/api/sessions/{session['id']}/instances/{node['id']}/exec/",
                                       json={"command": "true"}, timeout=30),
        }, part="database", fault="PostgreSQL stopped", measured=measured)
        page = requests.get(stack.url + "/", timeout=30)  # a browser's first visit makes a guest
        assert page.status_code == 503 and "try again" in page.text
        assert_healthz_names(stack, ["database"])

        mark = len(terminal.output)
        terminal.type("echo still-$((40+2))\r")
        terminal.expect(rb"still-42", after=mark, timeout=30)
    finally:
        cluster.start()
    back_at = time.monotonic()

    a_session_runs_again(stack, alice)
    measured("PostgreSQL back", "a new session starts and runs, after", time.monotonic() - back_at)
    mark = len(terminal.output)
    terminal.type("echo again-$((40+2))\r")
    terminal.expect(rb"again-42", after=mark, timeout=30)
    terminal.close()
