"""PostgreSQL stopped under a running playground: API calls and pages answer
503 `unavailable` with Retry-After within 5 s, /healthz names the database,
an open terminal keeps working, and everything comes back by itself."""
from __future__ import annotations

import time

import pytest
import requests

from tests.integration.conftest import running_stack, wait_instance
from tests.integration.test_terminal import Terminal, token
from tests.pg import private_cluster
from tests.stack import wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]

CONTRACT_SECONDS = 5.0  # API.md: 503 unavailable is answered within 5 s


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with private_cluster(tmp_path_factory.mktemp("postgres")) as made:
        yield made


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory, cluster):
    yield from running_stack(engine, tmp_path_factory.mktemp("database-down"), redis_db=62,
                             database_url=cluster.url)


def timed(call):
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def test_with_the_database_down_the_api_says_unavailable_and_open_terminals_keep_working(stack, cluster, measured):
    alice = stack.client("alice")
    session = alice.post(stack.url + "/api/sessions/", json={}, timeout=30).json()
    node = wait_instance(stack, alice, session["id"], session["instances"][0]["id"], "running", timeout=60)
    terminal = Terminal(stack, node["id"], token=token(stack, alice))
    terminal.event("status", state="running")

    cluster.stop("immediate")  # as a crash
    try:
        calls = {
            "list sessions": lambda: alice.get(stack.url + "/api/sessions/", timeout=30),
            "start a session": lambda: alice.post(stack.url + "/api/sessions/", json={}, timeout=30),
            "exec": lambda: alice.post(f"{stack.url}/api/sessions/{session['id']}/instances/{node['id']}/exec/",
                                       json={"command": "true"}, timeout=30),
        }
        for what, call in calls.items():
            answer, took = timed(call)
            assert answer.status_code == 503, (what, answer.text)
            assert answer.json()["error"]["code"] == "unavailable", what
            assert "database" in answer.json()["error"]["message"]
            assert int(answer.headers["Retry-After"]) > 0
            assert took < CONTRACT_SECONDS, (what, took)
            measured("PostgreSQL stopped", f"{what}: 503 unavailable, answered in", took)
        page = requests.get(stack.url + "/", timeout=30)  # a browser's first visit makes a guest
        assert page.status_code == 503 and "try again" in page.text
        health, took = timed(lambda: requests.get(stack.url + "/healthz", timeout=30))
        assert health.status_code == 503 and took < CONTRACT_SECONDS
        assert health.json()["down"] == ["database"]

        mark = len(terminal.output)
        terminal.type("echo still-$((40+2))\r")
        terminal.expect(rb"still-42", after=mark, timeout=30)
    finally:
        cluster.start()
    back_at = time.monotonic()

    wait_for(lambda: requests.get(stack.url + "/healthz", timeout=10).status_code == 200, timeout=60,
             what="/healthz to be ok again")
    second = wait_for(lambda: (lambda a: a if a.status_code == 201 else None)(
        alice.post(stack.url + "/api/sessions/", json={}, timeout=30)), timeout=60, what="a session to start")
    wait_instance(stack, alice, second.json()["id"], second.json()["instances"][0]["id"], "running", timeout=60)
    measured("PostgreSQL back", "a new session starts and runs, after", time.monotonic() - back_at)
    mark = len(terminal.output)
    terminal.type("echo again-$((40+2))\r")
    terminal.expect(rb"again-42", after=mark, timeout=30)
    terminal.close()
