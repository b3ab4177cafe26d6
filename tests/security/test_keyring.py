"""No sandbox can use up the kernel's key quota that every sandbox shares.

All containers of a userns-remapped lab host are ONE host uid, and the kernel
counts keys per uid (/proc/key-users): a sandbox that adds keys until the
kernel refuses (about 194 with the default quota) stopped every new container
of everyone ("runc create failed: ... unable to create session key: disk
quota exceeded") until its session ended. Both kinds refuse the key calls:
the shell kind under the engine's default seccomp profile (EPERM), the docker
kind under its own (sandboxes/seccomp/nested-docker.json: ENOSYS, which the
runtimes take as "no keyrings here" and go on without one)."""
from __future__ import annotations

import platform

import pytest

from tests.security.conftest import KINDS, of_kind, open_shell

pytestmark = [
    pytest.mark.engine,
    pytest.mark.stack,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 syscall numbers"),
]

ATTEMPTS = 500
# Every attempt adds a key, or a keyring (KEYCTL_JOIN_SESSION_KEYRING with a
# new name makes one): without the filter the uid gains about 2 x ATTEMPTS
# keys (up to its quota). Containers that other suites start and stop on the
# same engine meanwhile move the count by a few.
NOISE = 50

# The attacker's script, as a learner would write it with the python3 the
# image ships (no keyutils needed): x86_64 add_key (248) of a key into the
# session keyring (-3), keyctl (250) JOIN_SESSION_KEYRING (1) of a new name.
ATTACK = f"""
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
made, errors = 0, set()
for i in range({ATTEMPTS}):
    for call in ((248, b"user", b"fill%d" % i, b"x" * 64, 64, -3), (250, 1, b"ring%d" % i)):
        if libc.syscall(*call) >= 0:
            made += 1
        else:
            errors.add(errno.errorcode[ctypes.get_errno()])
print("made", made, "errors", ",".join(sorted(errors)))
"""


@pytest.fixture(params=KINDS)
def attacker(request):
    return of_kind(request, "attacker", "docker_attacker")


def keys_of(uid: int) -> int:
    """Keys the kernel charges to ``uid`` against its quota (0: none)."""
    with open("/proc/key-users") as lines:
        for line in lines:
            user, _, fields = line.partition(":")
            if int(user) == uid:
                return int(fields.split()[2].split("/")[0])  # qnkeys/maxkeys
    return 0


def host_uid_of(engine, container: str) -> int:
    """The host uid that root in the container is (the engine's remap range)."""
    pid = engine.inspect_container(container)["State"]["Pid"]
    with open(f"/proc/{pid}/uid_map") as uid_map:
        inside, outside, _count = (int(n) for n in uid_map.readline().split())
    assert inside == 0 and outside != 0, "the lab host must remap user namespaces"
    return outside


def test_filling_the_kernel_keyring_is_refused_and_a_neighbours_instance_still_starts(
    attacker, engine, request
):
    attacker.has("python3")
    uid = host_uid_of(engine, attacker.container())
    before = keys_of(uid)
    code, output = attacker.run(f"python3 -c '{ATTACK}'", timeout=60)
    assert code == 0 and output.startswith("made "), output
    # Refused, every time: EPERM (the engine's default profile, shell kind)
    # or ENOSYS (the docker kind's own, so that its inner runtime goes on).
    assert output.split()[1] == "0", output
    assert output.split()[3] == {"shell": "EPERM", "docker": "ENOSYS"}[attacker.kind], output
    assert keys_of(uid) - before < NOISE, (before, keys_of(uid))

    # The neighbour: another learner's NEW instance of the same kind starts
    # (runc creates its session keyring then), and so does one of its own
    # nested containers for the docker kind (crun, inside).
    victim = attacker.stack.client("victim")
    neighbour = open_shell(attacker.stack, victim)
    request.addfinalizer(neighbour.end)
    code, output = neighbour.run("echo alive")
    assert (code, output.strip()) == (0, "alive")
    if attacker.kind == "docker":
        code, output = neighbour.run(
            "mkdir -p /tmp/b && cp $(command -v busybox) /tmp/b/"
            " && printf 'FROM scratch\\nCOPY busybox /bin/busybox\\n' > /tmp/b/Dockerfile"
            " && docker build -q -t tiny /tmp/b >/dev/null"
            " && docker run --rm tiny /bin/busybox echo nested alive",
            timeout=90,
        )
        assert code == 0 and "nested alive" in output, output
