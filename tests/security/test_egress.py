"""`internet` egress reaches the internet only (scripts/engine.sh's egress
chain): not the cloud metadata service, not the operator's LAN, not the lab
host's own services, not over IPv6.

Every target is a stand-in on this machine: a network namespace of the test's
own, joined to the host by a veth pair, holds a listener on 169.254.169.254
(metadata), on 192.168.213.10 (the LAN) and on 198.51.100.10 (TEST-NET-2,
posing as the internet: the positive control). Only packets from the test's
own session networks are routed there (policy routing: `ip rule from
SUBNET`), so nothing else on the host, and no packet, ever heads off this
machine. Driver level, on the shared engine, under a deployment label of this
module's own; namespaces, rules and routes go in a finalizer."""
from __future__ import annotations

import os
import secrets
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sandboxes.base import InstanceSpec
from tests.integration.conftest import own_driver

pytestmark = pytest.mark.engine

IMAGE = os.environ.get("PLAYGROUND_TEST_IMAGE", "playground-shell:latest")
DOCKER_IMAGE = os.environ.get("PLAYGROUND_TEST_DOCKER_IMAGE", "playground-docker:latest")
DEPLOYMENT = f"test-egress-deny-{secrets.token_hex(4)}"
REFUSED_BY_FIREWALL = "No route to host"  # ICMP admin-prohibited
METADATA, LAN, INTERNET = "169.254.169.254", "192.168.213.10", "198.51.100.10"
HOST_SIDE = "198.51.100.1"  # the host's end of the veth: what MASQUERADE makes the source
PORT = 8080

LISTENER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1])))
server.listen(16)
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    with open(sys.argv[2], "a") as log:
        log.write(conn.getsockname()[0] + "\\n")
    conn.close()
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


class StandIns:
    """Listeners on the stand-in addresses, in a namespace of their own,
    reached only from the session networks passed to ``route_from``."""

    def __init__(self, tmp_path: Path) -> None:
        tag = secrets.token_hex(3)
        self.netns, self.host_if, self.ns_if = f"pgtest-eg{tag}", f"pgegh{tag}", f"pgegn{tag}"
        self.table = str(20000 + secrets.randbelow(10000))
        self.rules: list[str] = []
        self.log = tmp_path / "accepted"
        self.log.touch()
        self.server: subprocess.Popen | None = None
        ip("netns", "add", self.netns)
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        ip("link", "set", self.ns_if, "netns", self.netns)
        ip("addr", "add", f"{HOST_SIDE}/32", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        for address in (METADATA, LAN, INTERNET):
            ip("-n", self.netns, "addr", "add", f"{address}/32", "dev", self.ns_if)
            ip("route", "add", f"{address}/32", "dev", self.host_if, "table", self.table)
        ip("-n", self.netns, "link", "set", self.ns_if, "up")
        ip("-n", self.netns, "link", "set", "lo", "up")
        ip("-n", self.netns, "route", "add", "default", "dev", self.ns_if)
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", LISTENER, str(PORT), str(self.log)],
            stdout=subprocess.PIPE, text=True)
        assert self.server.stdout.readline().strip() == "listening"

    def route_from(self, subnet: str) -> None:
        ip("rule", "add", "from", subnet, "lookup", self.table, "pref", "900")
        self.rules.append(subnet)

    def accepted(self) -> list[str]:
        return self.log.read_text().split()

    def close(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait(timeout=10)
        for subnet in self.rules:
            subprocess.run(["ip", "rule", "del", "from", subnet, "lookup", self.table], timeout=20, check=False)
        subprocess.run(["ip", "route", "flush", "table", self.table], timeout=20, check=False)
        subprocess.run(["ip", "link", "del", self.host_if], timeout=20, check=False)
        subprocess.run(["ip", "netns", "del", self.netns], timeout=20, check=False)


@pytest.fixture(scope="module")
def driver():
    yield from own_driver(DEPLOYMENT)


@pytest.fixture
def standins(tmp_path):
    made = StandIns(tmp_path)
    try:
        yield made
    finally:
        made.close()


def internet_instance(driver, standins, *, image: str = IMAGE, nested_docker: bool = False):
    """An instance alone on an `internet` session network routed to the stand-ins."""
    network = driver.create_network(f"net-{secrets.token_hex(3)}", egress=True)
    info = driver.api.inspect_network(network["id"])
    assert info["Internal"] is False
    standins.route_from(info["IPAM"]["Config"][0]["Subnet"])
    return driver.create_instance(InstanceSpec(f"g{secrets.token_hex(4)}", image, "node1", network,
                                               nested_docker=nested_docker))


def connect(driver, node, address: str, port: int = PORT) -> tuple[int, str]:
    result = driver.exec(node.state, f"nc -vz -w 5 {address} {port}", timeout=30)
    output = result.output.decode(errors="replace")
    assert "not found" not in output, output  # nc must be there for a denial to mean anything
    return result.exit_code, output


def host_addresses(driver, node) -> list[str]:
    """This host's own IPv4 addresses: the gateway of the node's network,
    and those of every interface that is no session bridge (eth0...)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=True).stdout
    found = {line.split()[3].split("/")[0] for line in out.splitlines()
             if not line.split()[1].startswith(driver.bridge_prefix)}
    [network] = driver.api.inspect_container(node.state["id"])["NetworkSettings"]["Networks"]
    found.add(driver.api.inspect_network(network)["IPAM"]["Config"][0]["Gateway"])
    return sorted(found)


def test_internet_egress_reaches_the_internet_but_not_metadata_the_lan_or_the_hosts_services(driver, standins):
    attacker = internet_instance(driver, standins)
    neighbour = internet_instance(driver, standins)
    # The way out works: the "internet" answers (without it a refusal below
    # could be a broken route, not the firewall).
    code, output = connect(driver, attacker, INTERNET)
    assert code == 0, output
    for target in (METADATA, LAN):
        code, output = connect(driver, attacker, target)
        assert code != 0 and REFUSED_BY_FIREWALL in output, (target, output)
    # Redis, or any service of the lab host on every address (a web tier's
    # Redis bound to 0.0.0.0 poses here as one): refused on each of them.
    redis_like = socket.socket()
    redis_like.bind(("0.0.0.0", 0))
    redis_like.listen(4)
    try:
        for address in host_addresses(driver, attacker):
            for port in (6399, redis_like.getsockname()[1]):
                code, output = connect(driver, attacker, address, port)
                assert code != 0 and REFUSED_BY_FIREWALL in output, (address, port, output)
    finally:
        redis_like.close()
    assert standins.accepted() == [INTERNET]
    # The neighbour is unharmed: its way out still works.
    code, output = connect(driver, neighbour, INTERNET)
    assert code == 0, output
    assert standins.accepted() == [INTERNET, INTERNET]


IPV6_ATTACK = """
set -e
for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 0 > "$f" || true; done
# Wait for duplicate address detection to finish with its link-local address.
for i in $(seq 50); do
    ip -6 addr show dev eth0 scope link 2>/dev/null | grep inet6 | grep -qv tentative && break
    sleep 0.1
done
ip -6 addr show dev eth0 || true
python3 - "$@" <<'EOF'
import socket, sys
address, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((address + "%eth0", port), timeout=5).close()
    print("CONNECTED")
except OSError as exc:
    print("REFUSED", exc)
EOF
"""


def test_a_nested_docker_instance_that_turns_ipv6_on_still_cannot_reach_the_host(driver, standins):
    """The `docker` kind holds every capability of its own namespaces, so it
    can turn IPv6 on; the session bridge has an IPv6 link-local address, and
    a host service on [::] would answer there without the IPv6 chain."""
    node = internet_instance(driver, standins, image=DOCKER_IMAGE, nested_docker=True)
    [network] = driver.api.inspect_container(node.state["id"])["NetworkSettings"]["Networks"]
    bridge = driver.api.inspect_network(network)["Options"]["com.docker.network.bridge.name"]
    link_local = _link_local_of(bridge)
    listener = socket.socket(socket.AF_INET6)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("::", 0))
    listener.listen(4)
    accepted = []
    threading.Thread(target=lambda: _accept_all(listener, accepted), daemon=True).start()
    try:
        # From the host itself it answers on that address (once the new
        # bridge's address is past duplicate address detection).
        _wait(lambda: _connects(f"{link_local}%{bridge}", listener.getsockname()[1]))
        _wait(lambda: accepted == [1])
        result = driver.exec(node.state, f"sh -c {_quote(IPV6_ATTACK)} v6 {link_local} {listener.getsockname()[1]}",
                             timeout=60)
        output = result.output.decode(errors="replace")
        assert "python3: not found" not in output, output
        assert "REFUSED" in output and "CONNECTED" not in output, output
        assert accepted == [1]
    finally:
        listener.close()
    # And its IPv4 way out still works.
    code, output = connect(driver, node, INTERNET)
    assert code == 0, output


def _link_local_of(interface: str) -> str:
    out = subprocess.run(["ip", "-6", "-o", "addr", "show", "dev", interface, "scope", "link"],
                         capture_output=True, text=True, check=True).stdout
    if not out.strip():
        pytest.skip(f"{interface} has no IPv6 link-local address on this host: nothing to reach over IPv6")
    return out.split()[3].split("/")[0]


def _connects(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=5).close()
        return True
    except OSError:
        return False


def _accept_all(listener: socket.socket, accepted: list) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        accepted.append(1)
        conn.close()


def _wait(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _quote(text: str) -> str:
    return shlex.quote(text)
