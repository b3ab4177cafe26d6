"""A lab host holds more sandboxes than the kernel's per-uid defaults allow:
every container of the userns-remapped engine runs as one host uid, and with
the defaults the ~200th failed ("unable to create session key: disk quota
exceeded"). scripts/engine.sh raises those limits; here 216 containers run
at once beside whatever else the suite runs, on an engine of the test's own
(overlay2: the limits are the host's, per uid, whatever the storage; on a
btrfs data root each container's subvolume and quota group make 240 take
minutes)."""
from __future__ import annotations

import os
import secrets
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from tests.engines import OwnEngine
from tests.integration.conftest import _purge
from tests.stack import SHELL_IMAGE

pytestmark = pytest.mark.engine

SANDBOXES = 216  # past the 200 keys the default keyring quota lets one uid have (kernel.keys.maxkeys)
POOL = os.environ.get("PLAYGROUND_TEST_DENSITY_POOL", "10.249.0.0/16")


@pytest.fixture(scope="module")
def engine():
    own = OwnEngine(POOL)
    try:
        own.script("start")
        own.load_images((SHELL_IMAGE,))
        yield own.api
    finally:
        own.remove()


def test_the_lab_host_runs_more_sandboxes_than_the_kernels_per_uid_defaults_allow(engine: docker.APIClient):
    deployment = f"test-density-{secrets.token_hex(4)}"
    labels = {"playground.deployment": deployment, "playground.kind": "instance"}

    def run_one(n: int) -> str:
        created = engine.create_container(
            SHELL_IMAGE, entrypoint=["/bin/sleep"], command=["600"], labels={**labels, "playground.instance": f"d{n}"},
            host_config=engine.create_host_config(network_mode="none", mem_limit="16m", pids_limit=8),
            name=f"{deployment}-{n}",
        )
        engine.start(created["Id"])
        return created["Id"]

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            started = list(pool.map(run_one, range(SANDBOXES)))
        running = engine.containers(filters={"label": f"playground.deployment={deployment}", "status": "running"})
        assert len(running) == len(started) == SANDBOXES
    finally:
        _purge(engine, deployment)
