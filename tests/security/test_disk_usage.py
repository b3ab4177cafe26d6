"""The driver measures what an instance wrote, for the disk watchdog: its
writable layer, and for nested Docker its /var/lib/docker volume too."""
from __future__ import annotations

import os
import secrets

import pytest

from sandboxes.base import InstanceSpec
from sandboxes.docker import DockerDriver
from tests.stack import ENGINE, SHELL_IMAGE

pytestmark = pytest.mark.engine

DOCKER_IMAGE = os.environ.get("PLAYGROUND_TEST_DOCKER_IMAGE", "playground-docker:latest")
MiB = 1024 * 1024


@pytest.fixture
def driver():
    lab = DockerDriver(url=ENGINE, deployment=f"test-disk-{secrets.token_hex(4)}")
    yield lab
    for obj in sorted(lab.list_objects(), key=lambda o: o.kind != "container"):
        lab.remove_object(obj)
    assert lab.list_objects() == []


def _instance(driver, **spec) -> tuple[str, dict]:
    instance_id = f"d{secrets.token_hex(5)}"
    created = driver.create_instance(InstanceSpec(instance_id=instance_id, hostname="node1", network=None, **spec))
    return instance_id, created.state


def test_what_a_shell_instance_writes_is_measured(driver):
    quiet_id, _ = _instance(driver, image=SHELL_IMAGE)
    busy_id, busy = _instance(driver, image=SHELL_IMAGE)
    result = driver.exec(busy, "dd if=/dev/zero of=/root/fill bs=1M count=24 2>&1 && sync")
    assert result.exit_code == 0, result.output
    usage = driver.disk_usage()
    assert usage[busy_id] >= 24 * MiB
    assert usage[quiet_id] < 4 * MiB


def test_what_nested_docker_writes_to_its_volume_is_measured(driver):
    if not driver.api.images(name=DOCKER_IMAGE):
        pytest.skip(f"{DOCKER_IMAGE} is not built")
    instance_id, state = _instance(driver, image=DOCKER_IMAGE, nested_docker=True)
    result = driver.exec(state, "dd if=/dev/zero of=/var/lib/docker/fill bs=1M count=24 2>&1 && sync")
    assert result.exit_code == 0, result.output
    assert driver.disk_usage()[instance_id] >= 24 * MiB
