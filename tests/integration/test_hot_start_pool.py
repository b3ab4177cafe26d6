"""The hot-start pool: ready instances handed to new sessions, proven on the engine."""
from __future__ import annotations

import docker
import pytest

from tests.integration.conftest import _purge, nothing_left, wait_instance
from tests.stack import Stack, wait_for


@pytest.fixture(scope="module")
def pooled_stack(tmp_path_factory, engine):
    running = Stack(tmp_path_factory.mktemp("pool"), redis_db=16, env={
        "PLAYGROUND_POOL_SIZE": "2",
        "PLAYGROUND_POOL_SECONDS": "1",
    }).start()
    yield running
    running.stop()  # no filler may refill what is drained below
    try:
        assert "removed 2 pooled instance(s)" in running.manage("drain_pool")
        wait_for(lambda: nothing_left(engine, running.deployment), timeout=30,
                 what="nothing labelled to remain once the pool is drained")
    finally:
        _purge(engine, running.deployment)


def containers(engine: docker.APIClient, deployment: str) -> dict[str, str]:
    """Running instance containers of the deployment: playground.instance -> container id."""
    found = engine.containers(filters={"label": [f"playground.deployment={deployment}",
                                                  "playground.kind=instance"], "status": "running"})
    return {c["Labels"]["playground.instance"]: c["Id"] for c in found}


def test_a_new_session_gets_a_pooled_container_and_the_pool_refills(pooled_stack, engine):
    stack, deployment = pooled_stack, pooled_stack.deployment
    wait_for(lambda: len(containers(engine, deployment)) == 2, timeout=60, what="the pool to fill to 2")
    before = containers(engine, deployment)

    alice = stack.client("alice")
    created = alice.post(stack.url + "/api/sessions/", json={}, timeout=30)
    assert created.status_code == 201, created.text
    session = created.json()
    # Handed over ready, in the answer itself: no worker had to do anything.
    assert session["state"] == "running"
    assert session["instances"][0]["state"] == "running"
    node1 = wait_instance(stack, alice, session["id"], session["instances"][0]["id"], "running", timeout=60)
    assert node1["state"] == "running" and node1["ip"]

    # Handed over, not created: the very container that waited in the pool.
    assert before.get(node1["id"]) is not None, "node1 is not one of the pooled containers"
    assert containers(engine, deployment)[node1["id"]] == before[node1["id"]]

    # It joined the session's network: its name resolves both ways.
    sid = session["id"]
    added = alice.post(f"{stack.url}/api/sessions/{sid}/instances/", json={}, timeout=30)
    assert added.status_code == 201, added.text
    node2 = wait_instance(stack, alice, sid, added.json()["id"], "running", timeout=60)

    def run(node, command):
        answer = alice.post(f"{stack.url}/api/sessions/{sid}/instances/{node['id']}/exec/",
                            json={"command": command, "timeout": 30}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert run(node1, "hostname")["output"].strip() == "node1"
    for source, target in ((node1, "node2"), (node2, "node1")):
        result = run(source, f"ping -c1 -W3 {target}")
        assert result["exit_code"] == 0, result["output"]

    # The reconciler counts the handed-over network as the session's.
    rounds = stack.log("beat").count("reconcile lab hosts")
    wait_for(lambda: stack.log("beat").count("reconcile lab hosts") >= rounds + 2, timeout=30,
             what="two reconciler rounds")
    wait_for(lambda: "reconcile_hosts" in stack.log("worker"), timeout=30, what="the reconciler to run")
    assert not [line for line in stack.log("worker").splitlines()
                if "removing orphan network" in line and node1["id"] in line]
    assert run(node1, "ping -c1 -W3 node2")["exit_code"] == 0

    # The pool is back to two unclaimed containers beside the session's.
    def unclaimed():
        return set(containers(engine, deployment)) - {node1["id"], node2["id"]}
    wait_for(lambda: len(unclaimed()) == 2, timeout=60, what="the pool to refill")

    # Ending the session removes its containers, and only them.
    pool = unclaimed()
    assert alice.delete(f"{stack.url}/api/sessions/{sid}/", timeout=60).status_code == 204
    left = containers(engine, deployment)
    assert node1["id"] not in left and node2["id"] not in left
    assert pool <= set(left)


def test_pooled_instances_are_nobody_s_to_reach(pooled_stack, engine):
    stack = pooled_stack
    wait_for(lambda: len(containers(engine, stack.deployment)) >= 2, timeout=60, what="a full pool")
    pooled_id = next(iter(containers(engine, stack.deployment)))
    bob = stack.client("bob")
    assert bob.get(f"{stack.url}/api/sessions/", timeout=10).json() == []
    # No session owns a pooled instance, so no path reaches it.
    answer = bob.post(f"{stack.url}/api/sessions/{pooled_id}/instances/{pooled_id}/exec/",
                      json={"command": "true"}, timeout=30)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
