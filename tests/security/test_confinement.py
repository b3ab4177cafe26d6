"""A learner's root shell cannot reach the kernel's or the host's configuration.
Each attack runs with its tool present and must fail with a permission error,
on both image kinds: the shell kind and the docker kind (nested Docker, every
capability of its user namespace, its own seccomp profile). What the docker
kind must allow by design (mounts, namespaces) is asserted as such, with what
still stops the attack behind it."""
from __future__ import annotations

import os
import platform

import pytest

from playground import settings as project_settings
from tests.security.conftest import KINDS, of_kind

pytestmark = [pytest.mark.engine, pytest.mark.stack]

DENIED = ("permission denied", "operation not permitted", "read-only file system")


def denied(output: str) -> bool:
    return any(message in output.lower() for message in DENIED)


@pytest.fixture(params=KINDS)
def attacker(request):
    """Mallory's long-lived instance, of each image kind."""
    return of_kind(request, "attacker", "docker_attacker")


@pytest.mark.parametrize("attacker", ["shell"], indirect=True)
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


# x86_64 numbers of calls the docker kind's profile refuses, with arguments
# that reach the check; python3's ctypes is the learner's tool.
REFUSED_CALLS = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
calls = {
    "add_key": (248, b"user", b"k", b"x", 1, -3), "keyctl": (250, 1, b"ring"),
    "request_key": (249, b"user", b"k", None, 0), "io_uring_setup": (425, 1, None),
    "kexec_load": (246, 0, 0, None, 0), "finit_module": (313, 0, b"", 0),
    "delete_module": (176, b"ext4", 0), "open_by_handle_at": (304, 0, None, 0),
    "syslog": (103, 3, None, 0), "bpf": (321, 0, None, 0), "userfaultfd": (323, 0),
}
for name, call in calls.items():
    result = libc.syscall(*call)
    print(name, errno.errorcode[ctypes.get_errno()] if result < 0 else "ALLOWED")
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 syscall numbers")
@pytest.mark.parametrize("attacker", ["docker"], indirect=True)
def test_the_docker_kind_runs_under_its_own_seccomp_profile_with_the_engines_masked_paths(
    attacker, engine
):
    attacker.has("python3", "capsh")
    _code, output = attacker.run("grep -E '^(CapBnd|Seccomp):' /proc/self/status")
    status = dict(line.split(":\t") for line in output.strip().splitlines())
    assert status["Seccomp"] == "2", output  # a filter: sandboxes/seccomp/nested-docker.json
    _code, decoded = attacker.run(f"capsh --decode={status['CapBnd']}")
    # Every capability of its own user namespace, SYS_RESOURCE aside.
    assert "cap_sys_admin" in decoded and "cap_sys_resource" not in decoded, decoded
    _code, output = attacker.run(f"python3 -c '{REFUSED_CALLS}'")
    refused = dict(line.split() for line in output.strip().splitlines())
    # ENOSYS only the filter answers (the kernel has them): the runtimes go on
    # without a keyring, and programs without io_uring.
    for name in ("add_key", "keyctl", "request_key", "io_uring_setup"):
        assert refused.pop(name) == "ENOSYS", output
    assert set(refused.values()) == {"EPERM"}, output
    _code, output = attacker.run(
        "wc -c < /proc/keys; cat /proc/timer_list | wc -c; echo 1 > /proc/irq/default_smp_affinity"
    )
    assert output.split()[:2] == ["0", "0"], output  # masked: the host's keys and timers
    assert denied(output), output
    host_config = engine.inspect_container(attacker.container())["HostConfig"]
    assert host_config["Privileged"] is False
    [seccomp] = [opt for opt in host_config["SecurityOpt"] if opt.startswith("seccomp=")]
    assert seccomp != "seccomp=unconfined"
    assert {"/proc/keys", "/proc/kcore", "/proc/timer_list"} <= set(host_config["MaskedPaths"])
    assert "/proc/sys" not in host_config["ReadonlyPaths"]  # the inner engine's network sysctls


def test_mounting_a_file_system_or_making_a_disk_device_is_denied(attacker):
    attacker.has("mount", "mknod")
    code, output = attacker.run("mkdir -p /tmp/m && mount -t tmpfs none /tmp/m")
    if attacker.kind == "shell":
        assert code != 0 and denied(output), output
    else:  # by design: the inner engine mounts (overlay, proc, tmpfs) in its own namespace
        assert code == 0, output
    code, output = attacker.run("mknod /tmp/host-disk b 8 0")  # the first SCSI disk
    assert code != 0 and denied(output), output
    root = os.stat("/").st_dev  # the lab host's own disk
    code, output = attacker.run(f"mknod /tmp/root-disk b {os.major(root)} {os.minor(root)}")
    assert code != 0 and denied(output), output
    code, output = attacker.run("ls /dev")
    assert not {"sda", "vda", "nvme0n1", "xvda", "loop-control"} & set(output.split()), output


def test_loading_a_kernel_module_is_denied(attacker):
    attacker.has("insmod", "modprobe")
    code, output = attacker.run("head -c 4096 /dev/urandom > /tmp/evil.ko && insmod /tmp/evil.ko")
    assert code != 0 and denied(output), output


def test_writing_proc_sys_is_denied(attacker):
    before = open("/proc/sys/kernel/core_pattern").read()  # noqa: SIM115 - a one-shot read
    code, output = attacker.run("echo '|/tmp/pwn' > /proc/sys/kernel/core_pattern")
    assert code != 0 and denied(output), output
    code, output = attacker.run("echo 1 > /proc/sys/vm/drop_caches")
    assert code != 0 and denied(output), output
    assert open("/proc/sys/kernel/core_pattern").read() == before  # noqa: SIM115 - a one-shot read


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
    if attacker.kind == "shell":
        assert code != 0 and denied(output), output
    else:
        # By design the docker kind makes namespaces (its inner engine does);
        # a new one still mounts no cgroup hierarchy, and in a cgroup
        # namespace of its own, where its hierarchy mounts, the release agent
        # stays the host root's.
        assert code == 0, output
        code, output = attacker.run("unshare -Urm mount -t cgroup -o memory cgroup /tmp/cg")
        assert code != 0 and denied(output), output
        code, output = attacker.run(
            "unshare -Cm sh -c 'mount -t cgroup -o memory cgroup /tmp/cg"
            " && echo /tmp/pwn > /tmp/cg/release_agent && echo WROTE'"
        )
        assert "WROTE" not in output and denied(output), output
    code, output = attacker.run(
        "for f in $(find /sys/fs/cgroup -maxdepth 3 -name release_agent -o -maxdepth 3 -name notify_on_release);"
        " do echo 1 > $f && echo WROTE $f; done; echo done"
    )
    assert "WROTE" not in output and "done" in output, output


def test_there_is_no_engine_socket_inside(attacker, engine):
    attacker.has("find")
    code, output = attacker.run(
        "find / \\( -path /proc -o -path /sys \\) -prune -o -type s -print 2>/dev/null; "
        "echo DOCKER_HOST=$DOCKER_HOST; echo done"
    )
    assert "done" in output, output
    assert "DOCKER_HOST=\n" in output
    if attacker.kind == "shell":
        assert "docker.sock" not in output and "containerd" not in output, output
        return
    # The docker kind's socket is its own engine's, not the lab host's.
    assert "/run/playground" not in output, output
    code, output = attacker.run("docker info --format '{{.ID}} {{.Name}}'")
    assert code == 0 and output.split() == [output.split()[0], "node1"], output
    assert output.split()[0] != engine.info()["ID"]
