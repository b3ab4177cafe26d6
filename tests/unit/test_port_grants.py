"""A port link's grant opens the port once, and the proxy's cookie is a
``__Host-`` cookie where the scheme allows it (issue #15)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from playground.ports import actions as ports

IID = "a" * 32


def grant_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)[ports.GRANT_PARAM][0]


def test_a_grant_is_consumed_by_its_first_use_and_every_link_has_its_own(settings):
    first = grant_of(ports.port_url(owner_id=1, instance_id=IID, port=80))
    second = grant_of(ports.port_url(owner_id=1, instance_id=IID, port=80))
    assert first != second  # made in the same second, still two grants
    assert ports.consume_grant(first, instance_id=IID, port=80).user_id == 1
    assert ports.consume_grant(first, instance_id=IID, port=80) is None
    assert ports.consume_grant(second, instance_id=IID, port=80) is not None
    # A refused grant (another origin) is not spent by the attempt.
    third = grant_of(ports.port_url(owner_id=1, instance_id=IID, port=81))
    assert ports.consume_grant(third, instance_id=IID, port=80) is None
    assert ports.consume_grant(third, instance_id=IID, port=81) is not None


def test_the_cookie_is_host_prefixed_on_https_only(settings):
    settings.PLAYGROUND_PORTS_SCHEME = "https"
    assert ports.cookie_name() == "__Host-playground_port"
    settings.PLAYGROUND_PORTS_SCHEME = "http"
    assert ports.cookie_name() == "playground_port"
