from __future__ import annotations

import os

import docker
import pytest

from tests.stack import ENGINE, Stack, wait_for


def own_driver(deployment: str):
    """A Docker driver under a deployment label of its own, for a module
    fixture to ``yield from``: afterwards whatever it made is removed (its
    instances before their networks) and nothing of it may remain."""
    from sandboxes.docker import DockerDriver

    made = DockerDriver(url=ENGINE, deployment=deployment)
    made.ping()
    yield made
    for kind in ("container", "volume", "network"):
        for obj in made.list_objects():
            if obj.kind == kind:
                made.remove_object(obj)
    assert not made.list_objects(), f"objects of {deployment} were left on the engine"


@pytest.fixture(scope="session")
def engine() -> docker.APIClient:
    """A raw client of the lab-host engine, to look behind the playground's back."""
    client = docker.APIClient(base_url=ENGINE, version="1.41", timeout=30)
    client.ping()
    return client


def labelled(engine: docker.APIClient, deployment: str) -> dict[str, list]:
    selector = {"label": f"playground.deployment={deployment}"}
    return {
        "containers": engine.containers(all=True, filters=selector),
        "networks": engine.networks(filters=selector),
        "volumes": (engine.volumes(filters=selector) or {}).get("Volumes") or [],
    }


def nothing_left(engine: docker.APIClient, deployment: str) -> bool:
    return not any(labelled(engine, deployment).values())


def _purge(engine: docker.APIClient, deployment: str) -> None:
    objects = labelled(engine, deployment)
    for c in objects["containers"]:
        engine.remove_container(c["Id"], force=True, v=True)
    for n in objects["networks"]:
        engine.remove_network(n["Id"])
    for v in objects["volumes"]:
        engine.remove_volume(v["Name"], force=True)


def running_stack(engine, workdir, *, redis_db: int, env: dict[str, str] | None = None, timeout: float = 30,
                  **options):
    """A Stack started in ``workdir`` (``options``: Stack's own), for a fixture
    to ``yield from``: at the end every session and class is ended and
    nothing labelled with its deployment may remain (whatever does is
    removed, the test failed)."""
    running = Stack(workdir, redis_db=redis_db, env=env, **options)
    try:
        running.start()
        yield running
        end_every_session(running)
        wait_for(lambda: nothing_left(engine, running.deployment), timeout=timeout,
                 what="no labelled container, network or volume to remain after every session ended")
    finally:
        running.stop()
        _purge(engine, running.deployment)


@pytest.fixture(scope="session")
def stack(tmp_path_factory, engine):
    """The playground, running for real, shared by the integration tests."""
    # PLAYGROUND_TEST_REDIS_DB: engineers running suites side by side each
    # take a database number of their own (the Stack flushes it).
    redis_db = int(os.environ.get("PLAYGROUND_TEST_REDIS_DB", "11"))
    yield from running_stack(engine, tmp_path_factory.mktemp("stack"), redis_db=redis_db)


END_EVERY_CLASS = """
from playground.classrooms import actions
from playground.classrooms.models import Classroom
for classroom in Classroom.objects.filter(ended_at__isnull=True):
    actions.end_classroom(classroom=classroom)
"""


def end_every_session(stack) -> None:
    stack.manage("shell", "-c", END_EVERY_CLASS)  # their warm sessions belong to no test user
    for username in list(stack.tokens):
        client = stack.client(username)
        for body in client.get(f"{stack.url}/api/sessions/", timeout=10).json():
            if body["state"] in {"starting", "running"}:
                client.delete(f"{stack.url}/api/sessions/{body['id']}/", timeout=60)


@pytest.fixture
def alice(stack):
    return stack.client("alice")


@pytest.fixture
def bob(stack):
    return stack.client("bob")


@pytest.fixture
def new_session(stack):
    """Start sessions for a client and end them after the test."""
    made: list[tuple] = []

    def start(client, **body):
        response = client.post(stack.url + "/api/sessions/", json=body, timeout=30)
        assert response.status_code == 201, response.text
        made.append((client, response.json()["id"]))
        return response.json()

    yield start
    for client, sid in made:
        client.delete(f"{stack.url}/api/sessions/{sid}/", timeout=60)


def wait_instance(stack, client, sid: str, iid: str, state: str, *, timeout: float = 30) -> dict:
    def current():
        body = client.get(f"{stack.url}/api/sessions/{sid}/", timeout=10).json()
        found = [i for i in body["instances"] if i["id"] == iid]
        return found[0] if found and found[0]["state"] == state else None

    return wait_for(current, timeout=timeout, what=f"instance {iid} to be {state}")
