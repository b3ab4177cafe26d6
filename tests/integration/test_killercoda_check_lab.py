"""A KillerCoda scenario folder, as an instructor has it, through ``manage.py
check_lab`` on the real lab-host engine: the converted set-up (the intro's
background), assets (globs, targets, +x), and each step's verify script as the
check (failing before the solution, passing after: exit code only, whatever it
prints), with the solution taken from the step's Solution section. Then
``import_labs`` of the same folder."""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import _purge, nothing_left
from tests.stack import PYTHON, REDIS, ROOT, wait_for

pytestmark = [pytest.mark.engine]

SCENARIO = Path(__file__).resolve().parents[1] / "fixtures" / "killercoda" / "hello-scenario"
DOCKER_IMAGE = os.environ.get("PLAYGROUND_IMAGE_DOCKER", "playground-docker:latest")


@pytest.fixture(scope="module")
def manage(tmp_path_factory, engine):
    """manage.py on an instructor's machine: a database of its own, this
    project's Redis (db 19) and engine, a deployment label of its own."""
    workdir = tmp_path_factory.mktemp("killercoda")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "playground.settings",
        "PLAYGROUND_STATE_DIR": str(workdir),
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "REDIS_URL": f"{REDIS}/19",
        "PLAYGROUND_DEPLOYMENT": f"test-kc-{secrets.token_hex(3)}",
        "PLAYGROUND_LOG_LEVEL": "WARNING",
    }
    subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "flushdb"], check=True, capture_output=True)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600, check=False)

    run.deployment = env["PLAYGROUND_DEPLOYMENT"]  # type: ignore[attr-defined]
    yield run
    _purge(engine, env["PLAYGROUND_DEPLOYMENT"])


def test_a_killercoda_scenario_with_solutions_passes_check_lab_and_imports(manage, engine):
    try:
        engine.inspect_image(DOCKER_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"the docker image ({DOCKER_IMAGE}) is not on the lab-host engine yet (make images builds it)")
    done = manage("check_lab", str(SCENARIO))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "hello-scenario: valid, 3 step(s)" in done.stdout
    assert "set-up done" in done.stdout
    assert "step 1 'Write a file': PASS" in done.stdout
    # Its verify prints "all good?" before the solution too: the exit code said no.
    assert "step 2 'Run the solution script': PASS" in done.stdout
    assert "step 3 'Look around': no check" in done.stdout
    assert "warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "every step passed" in done.stdout
    wait_for(lambda: nothing_left(engine, manage.deployment), timeout=30,
             what="check_lab's session of the scenario to leave nothing on the engine")
    imported = manage("import_labs", str(SCENARIO))
    assert imported.stdout.splitlines() == ["hello-scenario: created: 3 steps"], imported.stderr
