"""A learner's root shell cannot reach the kernel's or the host's configuration.
Each attack runs with its tool present and must fail with a permission error."""
from __future__ import annotations

import os

import pytest

from playground import settings as project_settings

pytestmark = [pytest.mark.engine, pytest.mark.stack]

DENIED = ("permission denied", "operation not permitted", "read-only file system")


def denied(output: str) -> bool:
    return any(message in output.lower() for message in DENIED)


def test_the_shell_keeps_only_the_listed_capabilities_under_seccomp(attacker, engine):
    attacker.has("capsh")
    code, output = attacker.run("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status")
    assert code == 0, output
    status = dict(line.split(":\t") for line in output.strip().splitlines())
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # a filter: the engine's default profile
    code, decoded = attacker.run(f"capsh --decode={status['CapBnd']}")
    kept = {c.removeprefix("cap_").upper() for c in decoded.split("=", 1)[1].strip().split(",")}
    assert kept == set(project_settings.PLAYGROUND_INSTANCE_CAPABILITIES)
    assert status["CapEff"] == status["CapBnd"]
    host_config = engine.inspect_container(attacker.container())["HostConfig"]
    assert host_config["Privileged"] is False
    assert not host_config.get("Binds") and not engine.inspect_container(attacker.container())["Mounts"]
    assert not any("unconfined" in opt for opt in host_config.get("SecurityOpt") or [])


def test_mounting_a_file_system_or_making_a_disk_device_is_denied(attacker):
    attacker.has("mount", "mknod")
    code, output = attacker.run("mkdir -p /tmp/m && mount -t tmpfs none /tmp/m")
    assert code != 0 and denied(output), output
    code, output = attacker.run("mknod /tmp/host-disk b 8 0")  # the first SCSI disk
    assert code != 0 and denied(output), output
    code, output = attacker.run("ls /dev")
    assert not {"sda", "vda", "nvme0n1", "xvda"} & set(output.split()), output


def test_loading_a_kernel_module_is_denied(attacker):
    attacker.has("insmod", "modprobe")
    code, output = attacker.run("head -c 4096 /dev/urandom > /tmp/evil.ko && insmod /tmp/evil.ko")
    assert code != 0 and denied(output), output


def test_writing_proc_sys_is_denied(attacker):
    before = open("/proc/sys/kernel/core_pattern").read()
    code, output = attacker.run("echo '|/tmp/pwn' > /proc/sys/kernel/core_pattern")
    assert code != 0 and denied(output), output
    code, output = attacker.run("echo 1 > /proc/sys/vm/drop_caches")
    assert code != 0 and denied(output), output
    assert open("/proc/sys/kernel/core_pattern").read() == before


@pytest.mark.skipif(not os.path.exists("/proc/sysrq-trigger"),
                    reason="this kernel has no /proc/sysrq-trigger (built without MAGIC_SYSRQ)")
def test_the_sysrq_trigger_is_denied(attacker):
    code, output = attacker.run("echo h > /proc/sysrq-trigger")
    assert code != 0 and (denied(output) or "no such file" in output.lower()), output


def test_the_cgroup_release_agent_route_is_denied(attacker):
    attacker.has("mount", "unshare")
    # The classic escape: mount a cgroup hierarchy, set its release_agent to a
    # script, let a cgroup empty. Each step must fail.
    code, output = attacker.run("mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg")
    assert code != 0 and denied(output), output
    code, output = attacker.run("unshare -Urm true")  # a user namespace would give CAP_SYS_ADMIN
    assert code != 0 and denied(output), output
    code, output = attacker.run(
        "for f in $(find /sys/fs/cgroup -maxdepth 3 -name release_agent -o -maxdepth 3 -name notify_on_release);"
        " do echo 1 > $f && echo WROTE $f; done; echo done"
    )
    assert "WROTE" not in output and "done" in output, output


def test_there_is_no_engine_socket_inside(attacker):
    attacker.has("find")
    code, output = attacker.run(
        "find / \\( -path /proc -o -path /sys \\) -prune -o -type s -print 2>/dev/null; "
        "echo DOCKER_HOST=$DOCKER_HOST; echo done"
    )
    assert "done" in output, output
    assert "docker.sock" not in output and "containerd" not in output, output
    assert "DOCKER_HOST=\n" in output
