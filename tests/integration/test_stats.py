"""Instance stats through the real stack: a busy loop in an instance shows
up as CPU use in the instance's JSON, with its memory in use."""
from __future__ import annotations

import pytest

from tests.integration.conftest import running_stack
from tests.stack import wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, engine):
    yield from running_stack(engine, tmp_path_factory.mktemp("stats-stack"), redis_db=47,
                             env={"PLAYGROUND_STATS_SECONDS": "1"})


def test_a_busy_loop_shows_as_cpu_use_with_the_memory_in_use(stack):
    api = stack.client("alice")
    body = api.post(f"{stack.url}/api/sessions/", json={}, timeout=30).json()
    sid, iid = body["id"], body["instances"][0]["id"]

    def node1() -> dict:
        return api.get(f"{stack.url}/api/sessions/{sid}/", timeout=10).json()["instances"][0]

    wait_for(lambda: node1()["state"] == "running", timeout=60, what="the instance to run")
    idle = wait_for(lambda: node1()["stats"], timeout=60, what="a first sample")
    assert 0 < idle["memory_bytes"] < idle["memory_limit_bytes"]

    answer = api.post(f"{stack.url}/api/sessions/{sid}/instances/{iid}/exec/", timeout=30, json={
        "command": "setsid nohup timeout 60 sh -c 'while :; do :; done' </dev/null >/dev/null 2>&1 &"})
    assert answer.status_code == 200 and answer.json()["exit_code"] == 0, answer.text

    busy = wait_for(lambda: (s := node1()["stats"]) and (s["cpu_percent"] or 0) > 20 and s,
                    timeout=60, what="the busy loop to show as CPU use")
    assert busy["memory_bytes"] > 0
    api.delete(f"{stack.url}/api/sessions/{sid}/", timeout=60)
