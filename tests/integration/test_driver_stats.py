"""``Driver.stats`` (sandboxes/base.py) against the real engine and the fake.

One instance per driver kind, made under a deployment label of this run and
removed at the end (the engine must hold nothing labelled with it then).
"""

from __future__ import annotations

import secrets

import pytest

from sandboxes.base import DriverError, InstanceSpec, Limits, NotFound
from sandboxes.docker import DockerDriver
from sandboxes.fake import FakeDriver
from tests.integration.conftest import nothing_left
from tests.stack import ENGINE, wait_for

IMAGE = "playground-shell:latest"
DEPLOYMENT = f"test-stats-{secrets.token_hex(4)}"
LIMITS = Limits(memory_bytes=200 * 1024 * 1024, cpus=1.0, pids=200, log_max_bytes=256 * 1024)


@pytest.fixture(params=["docker", "fake"])
def lab(request, engine):
    if request.param == "docker":
        driver = DockerDriver(url=ENGINE, deployment=DEPLOYMENT)
    else:
        driver = FakeDriver(url="fake://stats", deployment=DEPLOYMENT, images=[IMAGE])
    spec = InstanceSpec(instance_id=secrets.token_hex(16), hostname="node1", network=None,
                        image=IMAGE, limits=LIMITS)
    created = driver.create_instance(spec)
    yield driver, created.state
    driver.remove_instance(created.state)
    if request.param == "docker":
        assert nothing_left(engine, DEPLOYMENT)


def test_stats_count_the_cpu_time_and_memory_an_instance_uses(lab):
    driver, state = lab
    first = driver.stats(state)
    assert first.memory_limit_bytes == LIMITS.memory_bytes
    assert 0 < first.memory_bytes < LIMITS.memory_bytes

    def burn_then_look():
        # A second of busy loop (the CPU is shared: as many as it takes).
        if isinstance(driver, DockerDriver):
            driver.exec(state, "timeout 1 sh -c 'while :; do :; done'; true", timeout=20)
        else:
            driver.use(state, cpu_ns=500_000_000)
        found = driver.stats(state)
        return found if found.cpu_ns - first.cpu_ns >= 300_000_000 else None

    later = wait_for(burn_then_look, timeout=60, what="busy loops to show in the CPU time")
    assert later.at >= first.at


def test_stats_of_a_stopped_or_removed_instance_raise(lab):
    driver, state = lab
    if isinstance(driver, DockerDriver):
        driver.api.kill(state["id"])
        wait_for(lambda: driver.inspect(state).state == "stopped", timeout=20,
                 what="the instance to stop")
    else:
        driver.stop_instance(state, exit_code=137, reason="exited")
    with pytest.raises(DriverError):
        driver.stats(state)
    driver.remove_instance(state)
    with pytest.raises(NotFound):
        driver.stats(state)
