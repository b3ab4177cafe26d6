"""Fixtures of the adversarial suite: real stacks (Daphne, Celery worker and
beat) on the real engine, under deployment labels of their own, with small
limits so that attacks hit them quickly. Redis databases 25-27 (and 18,
the docker kind's stack) are this suite's own."""
from __future__ import annotations

import pytest

from tests.integration.conftest import (  # noqa: F401
    _purge,
    end_every_session,
    engine,
    nothing_left,
    running_stack,
)

MEMORY_MB = 128
PIDS = 100
DISK_MB = 32
MAX_FILE_BYTES = 1024 * 1024
# The docker kind (nested Docker): room for its inner engine, whose dockerd
# and containerd hold about 80 MB and 50 threads at rest.
DOCKER_MEMORY_MB = 256
DOCKER_PIDS = 200
KINDS = ("shell", "docker")


def _running(tmp_path_factory, engine, name: str, redis_db: int, env: dict[str, str]):  # noqa: F811 - the engine fixture, imported to be shared
    yield from running_stack(engine, tmp_path_factory.mktemp(name), redis_db=redis_db, env=env, timeout=60)


@pytest.fixture(scope="session")
def stack(tmp_path_factory, engine):  # noqa: F811 - the engine fixture, imported to be shared
    """Small instances, a disk watchdog checking every second."""
    yield from _running(tmp_path_factory, engine, "security-stack", 25, {
        "PLAYGROUND_INSTANCE_MEMORY_MB": str(MEMORY_MB),
        "PLAYGROUND_INSTANCE_PIDS": str(PIDS),
        "PLAYGROUND_INSTANCE_DISK_MB": str(DISK_MB),
        "PLAYGROUND_DISK_CHECK_SECONDS": "1",
        "PLAYGROUND_MAX_SESSIONS_USER": "10",
        "PLAYGROUND_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
    })


@pytest.fixture(scope="session")
def strict_stack(tmp_path_factory, engine):  # noqa: F811 - the engine fixture, imported to be shared
    """The default instance limits, and low request rates to flood."""
    yield from _running(tmp_path_factory, engine, "security-rates", 27, {
        "PLAYGROUND_SESSION_RATE_USER": "2/min",
        "PLAYGROUND_EXEC_RATE_USER": "3/min",
        "PLAYGROUND_MAX_SESSIONS_USER": "10",
    })


@pytest.fixture(scope="session")
def docker_stack(tmp_path_factory, engine):  # noqa: F811 - the engine fixture, imported to be shared
    """Sessions of the docker kind (its default image), for the attacks that
    run against both kinds. Redis database 18."""
    yield from _running(tmp_path_factory, engine, "security-docker", 18, {
        "PLAYGROUND_DEFAULT_IMAGE": "docker",
        "PLAYGROUND_INSTANCE_MEMORY_MB": str(DOCKER_MEMORY_MB),
        "PLAYGROUND_INSTANCE_PIDS": str(DOCKER_PIDS),
        "PLAYGROUND_MAX_SESSIONS_USER": "10",
    })


@pytest.fixture(scope="session")
def mallory(stack):
    return stack.client("mallory")


@pytest.fixture(scope="session")
def victim(stack):
    return stack.client("victim")


class Shell:
    """An instance driven over the HTTP API, as an attacker's script would."""

    def __init__(self, stack, client, session: dict) -> None:
        self.stack, self.client, self.session = stack, client, session
        self.sid = session["id"]
        self.node = session["instances"][0]
        self.iid = self.node["id"]
        self.kind = self.node["image"]  # "shell" or "docker"

    @property
    def url(self) -> str:
        return f"{self.stack.url}/api/sessions/{self.sid}/instances/{self.iid}/"

    def run(self, command: str, *, timeout: float = 30) -> tuple[int, str]:
        answer = self.client.post(self.url + "exec/", json={"command": command, "timeout": timeout},
                                  timeout=timeout + 30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body["exit_code"], body["output"]

    def has(self, *tools: str) -> None:
        """The attack's tools are in the image: an absent tool is no denial."""
        code, output = self.run(" && ".join(f"command -v {t}" for t in tools))
        assert code == 0, f"a tool of this attack is missing from the image: {output}"

    def instance(self) -> dict:
        body = self.client.get(f"{self.stack.url}/api/sessions/{self.sid}/", timeout=10).json()
        return next(i for i in body["instances"] if i["id"] == self.iid)

    def container(self) -> str:
        return f"pg-{self.stack.deployment}-{self.iid}"

    def end(self) -> None:
        self.client.delete(f"{self.stack.url}/api/sessions/{self.sid}/", timeout=60)


def open_shell(stack, client) -> Shell:
    answer = client.post(stack.url + "/api/sessions/", json={}, timeout=30)
    assert answer.status_code == 201, answer.text
    shell = Shell(stack, client, answer.json())
    code, output = shell.run("echo ready")  # waits for the instance to run
    assert (code, output.strip()) == (0, "ready")
    shell.node = shell.instance()  # now with its address
    return shell


@pytest.fixture(scope="session")
def attacker(stack, mallory):
    """Mallory's long-lived shell, for attacks that leave it intact."""
    shell = open_shell(stack, mallory)
    yield shell
    shell.end()


@pytest.fixture(scope="session")
def neighbour(stack, victim):
    """Another learner's shell on the same lab host."""
    shell = open_shell(stack, victim)
    yield shell
    shell.end()


@pytest.fixture
def fresh_shell(stack, mallory):
    """A shell of Mallory's own for one destructive attack."""
    shell = open_shell(stack, mallory)
    yield shell
    shell.end()


@pytest.fixture(scope="session")
def docker_attacker(docker_stack):
    """Mallory's long-lived instance of the docker kind."""
    shell = open_shell(docker_stack, docker_stack.client("mallory"))
    yield shell
    shell.end()


@pytest.fixture
def fresh_docker_shell(docker_stack):
    """An instance of the docker kind of Mallory's own for one destructive attack."""
    shell = open_shell(docker_stack, docker_stack.client("mallory"))
    yield shell
    shell.end()


def of_kind(request, shell_fixture: str, docker_fixture: str):
    """For a fixture parametrized over KINDS: the shell kind's fixture or the
    docker kind's, made only when a test asks for that kind."""
    return request.getfixturevalue(shell_fixture if request.param == "shell" else docker_fixture)
