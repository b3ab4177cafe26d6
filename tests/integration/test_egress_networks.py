"""Egress policies on the real engine, driver level: a session network
"session" lets its instances reach each other and nothing beyond; "none"
(isolated) not even each other, while the lab host still reaches every
instance (its terminal relay, its ports). ("internet" needs a way out that
these machines do not have: its network is checked to be a routed one.)
Objects carry a deployment label of this module's own and are removed."""

from __future__ import annotations

import os
import secrets
import socket

import pytest

from sandboxes.base import InstanceSpec
from sandboxes.docker import DockerDriver
from tests.integration.conftest import own_driver

IMAGE = os.environ.get("PLAYGROUND_TEST_IMAGE", "playground-shell:latest")
DEPLOYMENT = f"test-egress-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def driver():
    yield from own_driver(DEPLOYMENT)


def two_nodes(driver: DockerDriver, **policy) -> tuple[dict, list]:
    network = driver.create_network(f"net-{secrets.token_hex(3)}", **policy)
    nodes = [
        driver.create_instance(InstanceSpec(f"e{secrets.token_hex(4)}", IMAGE, name, network))
        for name in ("node1", "node2")
    ]
    return network, nodes


def reaches(driver: DockerDriver, node, address: str) -> bool:
    result = driver.exec(node.state, f"ping -c 1 -W 2 {address}", timeout=20)
    assert b"not found" not in result.output, result.output  # ping must be there for a denial to mean anything
    return result.exit_code == 0


def test_session_instances_reach_each_other_and_nothing_beyond(driver):
    network, (node1, node2) = two_nodes(driver)
    info = driver.api.inspect_network(network["id"])
    assert info["Internal"] is True
    assert reaches(driver, node1, node2.ip) and reaches(driver, node1, "node2")


def test_isolated_instances_reach_not_even_each_other_yet_the_host_reaches_them(driver):
    network, (node1, node2) = two_nodes(driver, isolated=True)
    info = driver.api.inspect_network(network["id"])
    assert info["Internal"] is True
    assert info["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert not reaches(driver, node1, node2.ip)
    assert not reaches(driver, node2, node1.ip)
    # The lab host still has both: the terminal relay answers on each address.
    for node in (node1, node2):
        with socket.create_connection((node.ip, node.state["relay"]), timeout=10):
            pass
        terminal = driver.attach(node.state)
        try:
            assert isinstance(terminal, socket.socket)
        finally:
            terminal.close()


def test_an_internet_network_is_a_routed_one(driver):
    network = driver.create_network(f"net-{secrets.token_hex(3)}", egress=True)
    assert driver.api.inspect_network(network["id"])["Internal"] is False


def test_a_network_is_never_adopted_under_another_policy(driver):
    from sandboxes.base import DriverError

    key = f"net-{secrets.token_hex(3)}"
    driver.create_network(key, isolated=True)
    assert driver.create_network(key, isolated=True)["key"] == key  # the same again: fine
    with pytest.raises(DriverError, match="another egress policy"):
        driver.create_network(key)
