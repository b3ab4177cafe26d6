"""The production shape runs from docker-compose.yml: Debian's docker-compose
brings up PostgreSQL, Redis, migrate, web, worker, beat and the engine watcher
from the images scripts/build-app-images.sh built (no registry), against the project's
lab-host engine (tests/compose/local-engine.yml stands in for the privileged
labhost service). A learner's session starts through the API, its terminal
answers what is typed, and taking the project down leaves nothing behind."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import pytest
import requests

from tests.integration.conftest import _purge, labelled, nothing_left
from tests.integration.test_terminal import Terminal
from tests.stack import ENGINE, ROOT, free_port, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.engine]

COMPOSE_FILES = [ROOT / "docker-compose.yml", ROOT / "tests" / "compose" / "local-engine.yml"]
SERVICES = ["postgres", "redis", "migrate", "web", "worker", "beat", "watcher"]
IMAGES = ["playground-app:latest", "playground-redis:latest", "playground-postgres:latest"]
APP_UID = 10001  # the app image's user (deploy/images/appbase/customize)


@dataclass
class Compose:
    project: str
    deployment: str
    url: str
    argv: list[str]
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([*self.argv, *args], env=self.env, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def logs(self) -> str:
        done = subprocess.run([*self.argv, "logs", "--no-color", "--tail=40"], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=False)
        return done.stdout + done.stderr

    def client(self, token: str | None = None) -> requests.Session:
        """Requests as the TLS proxy in front forwards them."""
        http = requests.Session()
        http.headers["X-Forwarded-Proto"] = "https"
        if token:
            http.headers["Authorization"] = f"Token {token}"
        return http


def compose_objects(engine, project: str) -> dict[str, list]:
    selector = {"label": f"com.docker.compose.project={project}"}
    return {
        "containers": engine.containers(all=True, filters=selector),
        "networks": engine.networks(filters=selector),
        "volumes": (engine.volumes(filters=selector) or {}).get("Volumes") or [],
    }


def healthy(compose: Compose) -> bool:
    try:
        answer = compose.client().get(compose.url + "/healthz", timeout=5)
    except requests.RequestException:
        return False
    return answer.status_code == 200 and answer.json().get("status") == "ok"


@pytest.fixture(scope="module")
def compose(engine, tmp_path_factory) -> Iterator[Compose]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing (apt-get install docker-compose, or run scripts/setup.sh)"
    for image in IMAGES:
        assert engine.images(name=image), f"{image} is missing: run scripts/build-app-images.sh"
    socket = urlparse(ENGINE).path
    assert ENGINE.startswith("unix://") and os.path.exists(socket), f"the tier needs a local engine socket, not {ENGINE}"

    workdir = tmp_path_factory.mktemp("compose")
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir()
    key = secrets_dir / "django_secret_key"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o444)  # the app reads it as uid 10001
    beat_state = workdir / "beat"
    beat_state.mkdir()
    os.chown(beat_state, APP_UID, APP_UID)

    suffix = secrets.token_hex(4)
    port = free_port()
    deployment = f"test-compose-{suffix}"
    env_file = workdir / "compose.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in {
        "PLAYGROUND_HOSTNAME": "127.0.0.1",
        "PLAYGROUND_PORTS_DOMAIN": "localhost",
        "PLAYGROUND_LAB_HOSTS": ENGINE,
        "PLAYGROUND_DEPLOYMENT": deployment,
        "PLAYGROUND_SECRETS_DIR": str(secrets_dir),
        "PLAYGROUND_WEB_PUBLISH": f"127.0.0.1:{port}",
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "REDIS_PASSWORD": secrets.token_hex(16),
        "ENGINE_SOCKET": socket,
        "ENGINE_GID": str(os.stat(socket).st_gid),
        "BEAT_STATE": str(beat_state),
    }.items()))
    project = f"pgcompose{suffix}"
    argv = [binary, "--no-ansi", "-p", project, "--env-file", str(env_file)]
    for path in COMPOSE_FILES:
        argv += ["-f", str(path)]
    # Only what docker-compose needs from this process's environment: a
    # variable of the caller must not change what the files say.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DOCKER_HOST": ENGINE}
    running = Compose(project=project, deployment=deployment, url=f"http://127.0.0.1:{port}", argv=argv, env=env)
    try:
        running.run("up", "-d", "--no-build", *SERVICES, timeout=300)
        try:
            wait_for(lambda: healthy(running), timeout=120, interval=0.5,
                     what="the web service's /healthz to report ok")
        except AssertionError as failed:
            try:
                last = running.client().get(running.url + "/healthz", timeout=5).text
            except requests.RequestException as exc:
                last = str(exc)
            raise AssertionError(f"{failed}\n/healthz: {last}\n{running.logs()}") from None
        yield running
    finally:
        # Containers, the project's network and its volumes go; then nothing
        # the project or its deployment labelled may remain on the engine.
        running.run("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=180)
        left = {kind: objs for kind, objs in compose_objects(engine, project).items() if objs}
        deployment_left = {kind: objs for kind, objs in labelled(engine, deployment).items() if objs}
        _purge(engine, deployment)
        assert not left, f"docker-compose down left objects of {project}: {left}"
        assert not deployment_left, f"objects labelled {deployment} remained: {deployment_left}"


def test_a_session_started_through_the_compose_stack_answers_in_its_terminal(compose, engine):
    # DJANGO_HTTPS is on: plain HTTP is sent to HTTPS; the proxy's requests pass.
    plain = requests.get(compose.url + "/api/sessions/", allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")

    token = compose.run("exec", "-T", "web", "python", "manage.py", "create_api_token", "alice").strip()
    alice = compose.client(token)
    started = alice.post(compose.url + "/api/sessions/", json={}, timeout=30)
    assert started.status_code == 201, started.text
    session = started.json()
    iid = session["instances"][0]["id"]

    def running() -> bool:
        body = alice.get(f"{compose.url}/api/sessions/{session['id']}/", timeout=10).json()
        return body["instances"][0]["state"] == "running"

    wait_for(running, timeout=60, interval=0.3, what="the session's instance to run")
    # The instance is the engine's, under this installation's deployment label.
    assert labelled(engine, compose.deployment)["containers"]

    term = Terminal(compose, iid, token=token)
    term.event("status", state="running")
    term.type("echo $((6*7))\n")
    term.expect(rb"\b42\r?\n")
    term.close()

    # The watcher service holds the engine's event stream: a container killed
    # behind the playground's back reads failed, with the reason, at once.
    [container] = labelled(engine, compose.deployment)["containers"]
    engine.kill(container["Id"])

    def failed() -> str | None:
        node = alice.get(f"{compose.url}/api/sessions/{session['id']}/", timeout=10).json()["instances"][0]
        return node["reason"] if node["state"] == "failed" else None

    assert "exited" in wait_for(failed, timeout=10, interval=0.3, what="the watcher to fail the killed instance")

    ended = alice.delete(f"{compose.url}/api/sessions/{session['id']}/", timeout=60)
    assert ended.status_code == 204, ended.text
    wait_for(lambda: nothing_left(engine, compose.deployment), timeout=60,
             what="the worker to remove the session's container and network")


def test_redis_refuses_clients_without_its_password(compose):
    answer = compose.run("exec", "-T", "redis", "redis-cli", "ping")
    assert "NOAUTH" in answer
