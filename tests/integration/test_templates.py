"""Templates: ready-made multi-instance sessions, a Docker swarm formed for the learner."""
from __future__ import annotations

import pytest

from tests.integration.conftest import wait_instance
from tests.stack import ENGINE, wait_for

pytestmark = pytest.mark.stack


def docker_image_present() -> bool:
    import docker

    try:
        docker.APIClient(base_url=ENGINE, version="1.41").inspect_image("playground-docker:latest")
        return True
    except docker.errors.ImageNotFound:
        return False


def api(stack, path: str) -> str:
    return f"{stack.url}/api{path}"


def test_templates_are_listed_with_their_sizes(stack, alice):
    listed = {t["name"]: t for t in alice.get(api(stack, "/templates/"), timeout=10).json()}
    assert listed["swarm-1m1w"]["instances"] == 2
    assert listed["swarm-3m2w"]["instances"] == 5
    assert "manager" in listed["swarm-1m1w"]["description"]


def test_an_unknown_template_is_a_clear_400(stack, alice):
    answer = alice.post(api(stack, "/sessions/"), json={"template": "swarm-99"}, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid"
    assert "swarm-1m1w" in answer.json()["error"]["message"]
    both = alice.post(api(stack, "/sessions/"), json={"template": "swarm-1m1w", "image": "shell"}, timeout=30)
    assert both.status_code == 400


@pytest.mark.skipif(not docker_image_present(), reason="the docker image is not built on the engine")
def test_a_swarm_template_forms_the_swarm_for_the_learner(stack, alice, new_session):
    session = new_session(alice, template="swarm-1m1w")
    assert session["template"] == "swarm-1m1w"
    assert [i["hostname"] for i in session["instances"]] == ["manager1", "worker1"]
    assert session["setup"]["roles"] == {"manager1": "manager", "worker1": "worker"}
    sid = session["id"]
    for instance in session["instances"]:
        wait_instance(stack, alice, sid, instance["id"], "running", timeout=120)

    def setup_over():
        body = alice.get(api(stack, f"/sessions/{sid}/"), timeout=10).json()
        return body["setup"] if body["setup"]["state"] in ("done", "failed") else None

    setup = wait_for(setup_over, timeout=240, what="the swarm to be formed")
    assert setup["state"] == "done", setup["message"]

    manager = session["instances"][0]["id"]
    answer = alice.post(api(stack, f"/sessions/{sid}/instances/{manager}/exec/"), timeout=60, json={
        "command": "docker node ls --format '{{.Hostname}} {{.ManagerStatus}} {{.Status}}'"})
    assert answer.status_code == 200 and answer.json()["exit_code"] == 0, answer.text
    nodes = sorted(line.split() for line in answer.json()["output"].strip().splitlines())
    assert nodes == [["manager1", "Leader", "Ready"], ["worker1", "Ready"]]
