"""Disk is a hard limit: on a lab host whose engine keeps its data on btrfs
(scripts/engine.sh's default), an instance cannot write past its disk limit
at all, bytes or inodes, nested Docker's data included; the host's free disk
does not move, and a neighbour still writes.

The engine: the shared one when it runs on btrfs (nothing to copy), else one
of this module's own made by scripts/engine.sh on btrfs (a small loop file;
the sandbox images copied into it). A kernel without btrfs skips, saying so.
"""
from __future__ import annotations

import os
import time

import docker
import pytest

from tests.engines import OwnEngine
from tests.integration.conftest import running_stack
from tests.security.conftest import Shell, open_shell
from tests.stack import ENGINE, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]

# Small limits, so that the fills end quickly. The engine's quota counts the
# image's metadata too: a shell instance may write about DISK_MB less 12 MiB.
DISK_MB = 24
DOCKER_DISK_MB = 64
GiB = 1024**3
# Other engineers' and tests' writes move the host's free space too: the
# attack asks for 20 GiB, the limit is DISK_MB; a drop under 1 GiB is "did
# not move".
HOST_DROP_ALLOWED = 1 * GiB
POOL = os.environ.get("PLAYGROUND_TEST_DISK_POOL", "10.241.0.0/16")
REDIS_DB = 21
QUOTA = "Disk quota exceeded"


@pytest.fixture(scope="module")
def btrfs_engine():
    """(API client, URL) of an engine on btrfs."""
    shared = docker.APIClient(base_url=ENGINE, version="1.41", timeout=60)
    if shared.info().get("Driver") == "btrfs":
        yield shared, ENGINE
        return
    own = OwnEngine(POOL, env={"PLAYGROUND_ENGINE_STORAGE": "btrfs", "PLAYGROUND_ENGINE_DISK_GB": "4"})
    try:
        own.script("start")
        if own.api.info().get("Driver") != "btrfs":
            pytest.skip("this kernel has no btrfs: engine.sh fell back to overlay2 (no hard disk limit)")
        began = time.monotonic()
        own.load_images()
        print(f"images copied into the test's btrfs engine in {time.monotonic() - began:.1f} s")
        yield own.api, own.url
    finally:
        own.remove()


@pytest.fixture(scope="module")
def stack(btrfs_engine, tmp_path_factory):
    api, url = btrfs_engine
    yield from running_stack(api, tmp_path_factory.mktemp("disk-limit"), redis_db=REDIS_DB, timeout=60, env={
        "PLAYGROUND_LAB_HOSTS": url,
        "PLAYGROUND_INSTANCE_DISK_MB": str(DISK_MB),
        "PLAYGROUND_IMAGE_DISK_MB": f"docker={DOCKER_DISK_MB}",
        # The watchdog looks every second: an instance still running after
        # the fill was stopped by the engine, not ended by the watchdog.
        "PLAYGROUND_DISK_CHECK_SECONDS": "1",
    })


@pytest.fixture(scope="module")
def neighbour(stack):
    shell = open_shell(stack, stack.client("victim"))
    yield shell
    shell.end()


@pytest.fixture
def attacker(stack):
    shell = open_shell(stack, stack.client("mallory"))
    yield shell
    shell.end()


def host_free_bytes(api) -> int:
    """Free space of the host file system that holds the engine's loop file."""
    root = api.info()["DockerRootDir"]
    mounts = [line.split() for line in open("/proc/self/mounts")]  # noqa: SIM115 - a one-shot read
    source = max((m for m in mounts if root.startswith(m[1].rstrip("/") + "/") or root == m[1]),
                 key=lambda m: len(m[1]))[0]
    backing = open(f"/sys/block/{os.path.basename(source)}/loop/backing_file").read().strip()  # noqa: SIM115 - a one-shot read
    found = os.statvfs(os.path.dirname(backing))
    return found.f_bavail * found.f_frsize


def the_neighbour_still_writes(neighbour: Shell) -> None:
    code, output = neighbour.run("dd if=/dev/zero of=/root/mine bs=1M count=4 2>&1 && sync && wc -c < /root/mine")
    assert code == 0 and output.split()[-1] == str(4 * 1024 * 1024), output


def still_running(shell: Shell) -> None:
    # Two watchdog rounds (one a second here) have passed since the fill.
    time.sleep(2.5)
    assert shell.instance()["state"] == "running", shell.instance()


def test_fallocate_of_20_gib_fails_and_the_hosts_disk_does_not_move(stack, btrfs_engine, attacker, neighbour):
    api, _ = btrfs_engine
    attacker.has("fallocate", "dd")
    free_before = host_free_bytes(api)
    code, output = attacker.run("fallocate -l 20G /fill; echo exit=$?", timeout=60)
    assert QUOTA in output and "exit=1" in output, output
    code, output = attacker.run(
        "dd if=/dev/zero of=/root/fill bs=1M count=2000 2>&1; sync; echo written=$(wc -c < /root/fill)", timeout=60)
    assert QUOTA in output, output
    written = int(output.split("written=")[1].split()[0])
    assert 0 < written <= DISK_MB * 1024 * 1024, output
    dropped = free_before - host_free_bytes(api)
    print(f"dd wrote {written / 2**20:.1f} MiB at a {DISK_MB} MB limit; the host's free space moved {dropped / 2**20:.0f} MiB")
    assert dropped < HOST_DROP_ALLOWED
    the_neighbour_still_writes(neighbour)
    still_running(attacker)
    # Freeing its own files gives the learner room again.
    code, output = attacker.run("rm -f /root/fill /fill && echo ok > /root/after && cat /root/after")
    assert (code, output.strip()) == (0, "ok"), output


def test_many_empty_files_stop_at_the_limit_too(attacker, neighbour):
    attacker.has("python3")
    # Empty files with long names: no bytes for a watchdog to count, only
    # inodes and directory entries (btrfs metadata, which the quota counts).
    _code, output = attacker.run(
        "python3 -c 'import os\nos.mkdir(\"/many\"); n = 0\n"
        "try:\n    while n < 10**7: open(\"/many/\" + \"x\" * 200 + str(n), \"w\").close(); n += 1\n"
        "except OSError as e: print(\"stopped at\", n, e.strerror)'; du -sk /many", timeout=120)
    assert "stopped at" in output and QUOTA in output, output
    files = int(output.split("stopped at")[1].split()[0])
    print(f"{files} empty files at a {DISK_MB} MB limit")
    assert 1000 < files < 10**6, output
    assert int(output.split()[-2]) < 1024, output  # du: under 1 MiB of file data
    the_neighbour_still_writes(neighbour)
    still_running(attacker)


def test_a_nested_container_stops_at_the_docker_instances_limit(stack, btrfs_engine, neighbour):
    api, _ = btrfs_engine
    client = stack.client("mallory")
    answer = client.post(stack.url + "/api/sessions/", json={"image": "docker"}, timeout=30)
    assert answer.status_code == 201, answer.text
    node = Shell(stack, client, answer.json())
    try:
        wait_for(lambda: node.instance()["state"] == "running", timeout=90, what="the docker instance to run")
        # Its inner engine's data lives in its own file system, not a volume.
        assert not (api.volumes(filters={"label": f"playground.instance={node.iid}"}) or {}).get("Volumes")
        assert node.run("docker info --format '{{.Driver}}'")[1].strip() == "overlay2"
        _code, output = node.run(
            "mkdir -p /root/tiny && cp /bin/busybox /root/tiny/ && cd /root/tiny && "
            "printf 'FROM scratch\\nCOPY busybox /bin/busybox\\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\\n'"
            " > Dockerfile && docker build -q -t tiny . && "
            "docker run --rm tiny sh -c 'dd if=/dev/zero of=/fill bs=1M count=2000; echo exit=$?' 2>&1",
            timeout=120)
        assert QUOTA in output and "exit=1" in output, output
        records = int(output.split("records out")[0].split()[-1].split("+")[0])
        print(f"a nested container wrote {records} MiB at a {DOCKER_DISK_MB} MB limit")
        assert records <= DOCKER_DISK_MB, output
        the_neighbour_still_writes(neighbour)
        still_running(node)
        assert node.run("docker run --rm tiny echo still works")[1].strip() == "still works"
    finally:
        node.end()
