"""``manage.py check_lab`` as an author runs it, on every lab shipped in labs/,
against the real lab-host engine: set-up, then each step's check (failing),
solution and check (passing), in a real session that is gone afterwards."""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import docker
import pytest
import requests
import yaml

from playground.labs.loader import find_labs
from tests.integration.conftest import _purge, nothing_left
from tests.stack import PYTHON, REDIS, ROOT, wait_for
from tests.unit.labs_helpers import MINIMAL, write_lab

pytestmark = [pytest.mark.engine]

SHIPPED = find_labs([ROOT / "labs"])
# Engine image of each image kind a lab may name (settings.PLAYGROUND_IMAGES).
IMAGE_REFS = {
    "shell": os.environ.get("PLAYGROUND_IMAGE_SHELL", "playground-shell:latest"),
    "docker": os.environ.get("PLAYGROUND_IMAGE_DOCKER", "playground-docker:latest"),
}


# Labs that pull images, from the lab host's registry mirror (scripts/registry.sh).
NEEDS_MIRROR = {"registries"}
MIRROR = f"http://127.0.0.1:{os.environ.get('PLAYGROUND_MIRROR_PORT', '5099')}/v2/"


def mirror_answers() -> bool:
    try:
        return requests.get(MIRROR, timeout=3).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def author(tmp_path_factory, engine):
    """An instructor's machine: a database of its own, this project's Redis
    (db 30) and engine, a deployment label of its own."""
    workdir = tmp_path_factory.mktemp("author")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "playground.settings",
        "PLAYGROUND_STATE_DIR": str(workdir),
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "REDIS_URL": f"{REDIS}/30",
        "PLAYGROUND_DEPLOYMENT": f"test-labs-{secrets.token_hex(3)}",
        "PLAYGROUND_LOG_LEVEL": "WARNING",
    }
    subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "flushdb"], check=True, capture_output=True)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=900, check=False)

    manage.deployment = env["PLAYGROUND_DEPLOYMENT"]  # type: ignore[attr-defined]
    yield manage
    _purge(engine, env["PLAYGROUND_DEPLOYMENT"])


def missing_images(folder: Path, engine: docker.APIClient) -> list[str]:
    lab = yaml.safe_load((folder / "lab.yaml").read_text())
    wanted = {item.get("image", "shell") for item in lab["environment"].get("instances", [])}
    missing = []
    for name in sorted(wanted):
        try:
            engine.inspect_image(IMAGE_REFS.get(name, name))
        except docker.errors.ImageNotFound:
            missing.append(f"{name} ({IMAGE_REFS.get(name, name)})")
    return missing


@pytest.mark.parametrize("folder", SHIPPED, ids=[f.name for f in SHIPPED])
def test_the_shipped_lab_passes_check_lab(folder, author, engine):
    missing = missing_images(folder, engine)
    if missing:
        pytest.skip(f"image {', '.join(missing)} is not on the lab-host engine yet (make images builds it)")
    if folder.name in NEEDS_MIRROR and not mirror_answers():
        pytest.skip(f"the lab pulls images and no registry mirror answers at {MIRROR} (scripts/registry.sh start)")
    done = author("check_lab", str(folder))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "every step passed" in done.stdout
    assert "warning" not in done.stdout, done.stdout
    wait_for(lambda: nothing_left(engine, author.deployment), timeout=30,
             what="check_lab's session to leave nothing on the engine")


def test_check_lab_reports_the_step_that_fails_and_exits_non_zero(tmp_path, author, engine):
    broken = MINIMAL.replace("solution: touch /root/hello", "solution: touch /root/hullo")
    done = author("check_lab", str(write_lab(tmp_path, broken)))
    assert done.returncode != 0
    assert "step 1 'Write a file': FAIL" in done.stdout, done.stdout
    assert "step 2 'Look around': skipped" in done.stdout
    wait_for(lambda: nothing_left(engine, author.deployment), timeout=30,
             what="a failed check_lab to leave nothing on the engine")


def test_check_lab_names_the_problems_of_an_invalid_lab(tmp_path, author):
    done = author("check_lab", str(write_lab(tmp_path, MINIMAL.replace("title: Hello\n", ""))))
    assert done.returncode != 0
    assert f"{tmp_path / 'hello' / 'lab.yaml'}:1: (top level): 'title' is missing" in done.stderr
