"""The client's address: the peer's, unless a trusted proxy vouches for an
X-Forwarded-For entry; then the rightmost entry no trusted proxy wrote."""
from __future__ import annotations

import pytest

from playground.accounts.addresses import client_address_from, parse_networks, scope_client_address

NGINX = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1"])


def test_without_trusted_proxies_the_header_is_ignored():
    assert client_address_from("203.0.113.7", "198.51.100.1", trusted=[]) == "203.0.113.7"


def test_a_peer_that_is_not_a_trusted_proxy_cannot_name_another_client():
    assert client_address_from("203.0.113.7", "198.51.100.1", trusted=NGINX) == "203.0.113.7"


def test_behind_a_trusted_proxy_the_address_it_appended_is_the_client():
    assert client_address_from("127.0.0.1", "203.0.113.7", trusted=NGINX) == "203.0.113.7"


def test_a_spoofed_leftmost_entry_is_not_believed():
    # The client wrote "198.51.100.1"; nginx appended the address it saw.
    assert client_address_from("127.0.0.1", "198.51.100.1, 203.0.113.7", trusted=NGINX) == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right():
    header = "198.51.100.1, 203.0.113.7, 10.1.2.3"
    assert client_address_from("127.0.0.1", header, trusted=NGINX) == "203.0.113.7"


def test_a_client_inside_the_trusted_ranges_is_the_leftmost_trusted_hop():
    assert client_address_from("127.0.0.1", "10.9.9.9", trusted=NGINX) == "10.9.9.9"


def test_garbage_in_the_header_stops_the_walk_at_the_last_trusted_hop():
    assert client_address_from("127.0.0.1", "evil, 10.1.2.3", trusted=NGINX) == "10.1.2.3"
    assert client_address_from("127.0.0.1", "not an address", trusted=NGINX) == "127.0.0.1"


def test_ipv6_and_mapped_ipv4_peers():
    assert client_address_from("::1", "2001:db8::7", trusted=NGINX) == "2001:db8::7"
    assert client_address_from("::ffff:203.0.113.7", None, trusted=NGINX) == "203.0.113.7"
    assert client_address_from("127.0.0.1", "[2001:db8::7]:4711", trusted=NGINX) == "2001:db8::7"


def test_the_setting_comes_from_the_environment(settings):
    settings.PLAYGROUND_TRUSTED_PROXIES = parse_networks(["127.0.0.1"])
    scope = {"client": ("127.0.0.1", 5000), "headers": [(b"x-forwarded-for", b"1.2.3.4, 203.0.113.9")]}
    assert scope_client_address(scope) == "203.0.113.9"
    settings.PLAYGROUND_TRUSTED_PROXIES = []
    assert scope_client_address(scope) == "127.0.0.1"


@pytest.mark.parametrize("raw, ok", [("", True), ("0", True), ("127.0.0.1,10.0.0.0/8, ::1", True),
                                     ("1", False), ("nginx", False)])
def test_the_setting_takes_addresses_and_networks_not_a_count(monkeypatch, raw, ok):
    from playground.settings import env_networks

    monkeypatch.setenv("PLAYGROUND_TRUSTED_PROXIES", raw)
    if ok:
        env_networks("PLAYGROUND_TRUSTED_PROXIES")
    else:
        with pytest.raises(ValueError):
            env_networks("PLAYGROUND_TRUSTED_PROXIES")
