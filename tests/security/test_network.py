"""Sandboxes reach neither the lab host's services nor other sessions' instances
(scripts/engine.sh's PLAYGROUND-INPUT chain, Docker's network isolation)."""
from __future__ import annotations

import errno
import socket
import threading

import pytest
import requests

from tests.security.conftest import KINDS, of_kind
from tests.stack import wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]


@pytest.fixture(params=KINDS)
def attacker(request):
    """Mallory's long-lived instance, of each image kind: the docker kind holds
    every capability of its user namespace (NET_ADMIN, NET_RAW), and meets the
    same firewall."""
    return of_kind(request, "attacker", "docker_attacker")

MIRROR_PORT = 5099
REFUSED_BY_FIREWALL = "No route to host"  # ICMP admin-prohibited, the firewall's answer


def gateway_of(shell, engine) -> str:
    """The lab host's own address on the shell's session network."""
    networks = engine.inspect_container(shell.container())["NetworkSettings"]["Networks"]
    [name] = networks
    return engine.inspect_network(name)["IPAM"]["Config"][0]["Gateway"]


class Listener:
    """A TCP service on the lab host, bound to every address (0.0.0.0)."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def host_service():
    listener = Listener()
    yield listener
    listener.close()


def test_a_host_service_on_every_address_is_refused_to_a_sandbox(attacker, engine, host_service):
    attacker.has("nc")
    gateway = gateway_of(attacker, engine)
    # It does answer on that address: from the host itself.
    with socket.create_connection((gateway, host_service.port), timeout=5):
        pass
    code, output = attacker.run(f"nc -vz -w 5 {gateway} {host_service.port}")
    assert code != 0 and REFUSED_BY_FIREWALL in output, output
    assert host_service.accepted == 1


def test_redis_the_web_tier_and_an_engine_port_are_refused_to_a_sandbox(attacker, engine, stack):
    attacker.has("nc")
    gateway = gateway_of(attacker, engine)
    for port in (6399, stack.port, 2375, 2376, 80, 22):
        code, output = attacker.run(f"nc -vz -w 5 {gateway} {port}")
        assert code != 0 and REFUSED_BY_FIREWALL in output, (port, output)


def test_the_image_mirror_port_is_the_one_host_service_a_sandbox_may_reach(attacker, engine):
    try:
        mirror = Listener(MIRROR_PORT)
    except OSError as exc:  # the real mirror already listens there
        assert exc.errno == errno.EADDRINUSE
        mirror = None
    try:
        code, output = attacker.run(f"nc -vz -w 5 {gateway_of(attacker, engine)} {MIRROR_PORT}")
        assert REFUSED_BY_FIREWALL not in output, output
        if mirror is not None:
            assert code == 0, output
    finally:
        if mirror is not None:
            mirror.close()


def test_one_session_cannot_reach_another_sessions_instance(attacker, neighbour):
    attacker.has("curl", "ping")
    code, output = neighbour.run(
        "setsid python3 -m http.server 8080 --bind 0.0.0.0 >/dev/null 2>&1 < /dev/null & echo started"
    )
    assert code == 0, output
    target = neighbour.node["ip"]
    # It serves: the lab host reaches it (as the port proxy would).
    wait_for(lambda: _answers(f"http://{target}:8080/"), timeout=20, what="the neighbour's web server")
    code, output = attacker.run(f"curl -sS -m 5 http://{target}:8080/")
    assert code != 0, output
    code, output = attacker.run(f"ping -c 2 -W 2 {target}")
    assert code != 0, output


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


SPOOF = """
import socket, struct, sys
gateway, port = sys.argv[1], int(sys.argv[2])
payload = b"spoofed"
udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                 socket.inet_aton("192.0.2.77"), socket.inet_aton(gateway))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for _ in range(3):
    raw.sendto(ip + udp, (gateway, 0))
plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    plain.sendto(b"plain", (gateway, port))
print("sent")
"""


def test_a_sandbox_spoofing_its_source_address_still_meets_the_firewall(attacker, engine):
    attacker.has("python3")
    gateway = gateway_of(attacker, engine)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("0.0.0.0", 0))
    sink.settimeout(3)
    port = sink.getsockname()[1]
    try:
        # The sink receives what reaches the host: from the host itself, yes.
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"control", (gateway, port))
        assert sink.recv(64) == b"control"
        attacker.client.put(attacker.url + "files/", params={"path": "/tmp/spoof.py"}, data=SPOOF.encode(), timeout=10)
        code, output = attacker.run(f"python3 /tmp/spoof.py {gateway} {port}")
        assert code == 0 and "sent" in output, output  # NET_RAW is kept (ping): the packets left
        received = []
        try:
            while True:
                received.append(sink.recv(64))
        except TimeoutError:
            pass
        assert received == []
    finally:
        sink.close()


# The docker kind may turn IPv6 on (NET_ADMIN of its namespace): the lab
# host's IPv6 chain refuses it then (tests/security/test_egress.py).
@pytest.mark.parametrize("attacker", ["shell"], indirect=True)
def test_a_sandbox_has_no_ipv6_to_go_around_the_firewall(attacker):
    attacker.has("ip")
    code, output = attacker.run("cat /proc/sys/net/ipv6/conf/all/disable_ipv6; ip -6 addr show scope link")
    assert code == 0 and output.split()[0] == "1", output
    assert "inet6" not in output
