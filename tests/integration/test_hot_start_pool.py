"""The hot-start pool: ready instances handed to new sessions, proven on the
engine. The pool holds two shell instances and one docker instance."""
from __future__ import annotations

import docker
import pytest

from tests.integration.conftest import _purge, nothing_left, wait_instance
from tests.stack import Stack, wait_for


@pytest.fixture(scope="module")
def pooled_stack(tmp_path_factory, engine):
    running = Stack(tmp_path_factory.mktemp("pool"), redis_db=16, env={
        "PLAYGROUND_POOL_SIZE": "2",  # the size of "shell" below
        "PLAYGROUND_POOL_IMAGES": "shell,docker=1",
        "PLAYGROUND_POOL_SECONDS": "1",
    }).start()
    yield running
    running.stop()  # no filler may refill what is drained below
    try:
        assert "removed 3 pooled instance(s)" in running.manage("drain_pool")
        wait_for(lambda: nothing_left(engine, running.deployment), timeout=30,
                 what="nothing labelled to remain once the pool is drained")
    finally:
        _purge(engine, running.deployment)


def containers(engine: docker.APIClient, deployment: str, image: str | None = None) -> dict[str, str]:
    """Running instance containers of the deployment (of one image kind, e.g.
    ``docker``, if given): playground.instance -> container id."""
    found = engine.containers(filters={"label": [f"playground.deployment={deployment}",
                                                  "playground.kind=instance"], "status": "running"})
    return {c["Labels"]["playground.instance"]: c["Id"] for c in found
            if image is None or c["Image"] == f"playground-{image}:latest"}


def pooled_ready(stack, image: str) -> list[str]:
    """Pooled instances of ``image`` ready to be claimed (for a docker one: its
    inner engine answered), read from the stack's database to wait on it."""
    return [row[0] for row in stack.sql(
        "SELECT id FROM play_sessions_instance WHERE session_id IS NULL AND image = ? AND state = 'running'",
        (image,))]


def test_a_new_session_gets_a_pooled_container_and_the_pool_refills(pooled_stack, engine):
    stack, deployment = pooled_stack, pooled_stack.deployment
    wait_for(lambda: len(pooled_ready(stack, "shell")) == 2, timeout=90, what="the shell pool to fill to 2")
    before = containers(engine, deployment, "shell")

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
        return set(containers(engine, deployment, "shell")) - {node1["id"], node2["id"]}
    wait_for(lambda: len(unclaimed()) == 2, timeout=60, what="the pool to refill")

    # Ending the session removes its containers, and only them.
    pool = unclaimed()
    assert alice.delete(f"{stack.url}/api/sessions/{sid}/", timeout=60).status_code == 204
    left = containers(engine, deployment)
    assert node1["id"] not in left and node2["id"] not in left
    assert pool <= set(left)


def test_pooled_instances_are_nobody_s_to_reach(pooled_stack, engine):
    stack = pooled_stack
    wait_for(lambda: len(containers(engine, stack.deployment)) >= 3, timeout=90, what="a full pool")
    pooled_id = next(iter(containers(engine, stack.deployment)))
    bob = stack.client("bob")
    assert bob.get(f"{stack.url}/api/sessions/", timeout=10).json() == []
    # No session owns a pooled instance, so no path reaches it.
    answer = bob.post(f"{stack.url}/api/sessions/{pooled_id}/instances/{pooled_id}/exec/",
                      json={"command": "true"}, timeout=30)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_a_docker_session_gets_the_pooled_docker_instance_with_its_engine_answering(pooled_stack, engine):
    stack, deployment = pooled_stack, pooled_stack.deployment
    [ready] = wait_for(lambda: pooled_ready(stack, "docker"), timeout=120, what="a pooled docker instance")
    before = containers(engine, deployment, "docker")
    assert ready in before

    alice = stack.client("alice")
    created = alice.post(stack.url + "/api/sessions/", json={"image": "docker"}, timeout=30)
    assert created.status_code == 201, created.text
    session = created.json()
    node1 = session["instances"][0]
    assert session["state"] == "running" and node1["state"] == "running" and node1["image"] == "docker"
    # Handed over, not created: the very container that waited in the pool.
    assert node1["id"] == ready
    assert containers(engine, deployment, "docker")[ready] == before[ready]

    def run(command):
        answer = alice.post(f"{stack.url}/api/sessions/{session['id']}/instances/{ready}/exec/",
                            json={"command": command, "timeout": 120}, timeout=150)
        assert answer.status_code == 200, answer.text
        return answer.json()

    # Its engine answers at once (one try: the CLI fails at once without it) ...
    version = run("docker version --format '{{.Server.Version}}'")
    assert version["exit_code"] == 0 and version["output"].strip(), version["output"]
    # ... and pulls from the lab's mirror, whose address it took from the
    # pool's network: the network the session now has.
    pulled = run("docker run --rm busybox echo pulled through the mirror")
    assert pulled["exit_code"] == 0, pulled["output"]
    assert pulled["output"].strip().endswith("pulled through the mirror")

    # A docker instance is pooled again; ending the session removes its container only.
    wait_for(lambda: set(pooled_ready(stack, "docker")) - {ready}, timeout=120, what="the docker pool to refill")
    assert alice.delete(f"{stack.url}/api/sessions/{session['id']}/", timeout=60).status_code == 204
    left = containers(engine, deployment, "docker")
    assert ready not in left and len(left) == 1
