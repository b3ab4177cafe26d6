"""Ports: finding them, listing them with links, and who a link lets in
(fake driver; the proxy itself is tested through the real stack)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.test import APIClient

from playground.errors import NotFoundError, SessionOver
from playground.ports import actions as ports
from playground.sessions import actions, hosts
from sandboxes.base import parse_listening

pytestmark = pytest.mark.django_db

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1
   2: 0200D50A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1
   3: 0200D50A:A1B2 0300D50A:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1004 1
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000
   2: 0000000000000000FFFF00000100007F:0051 00000000000000000000000000000000:0000 0A 00000000:00000000
   3: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


def test_listening_ports_come_from_the_kernels_tables_without_loopback_ones():
    # 8080 on 0.0.0.0 and ::, 80 on the instance's address, 3000 on ::;
    # 3306 on 127.0.0.1, 631 on ::1 and 81 on ::ffff:127.0.0.1 are unreachable;
    # an established connection is no listener.
    assert parse_listening(PROC_NET_TCP) == [80, 3000, 8080]
    assert parse_listening("") == []


@pytest.fixture
def running(start, alice):
    session = start(user=alice)
    instance = session.instances.get()
    assert instance.state == "running"
    return session, instance


def listen(instance, *ports_, stop=False):
    hosts.driver_for(instance.host).listen(instance.driver_state, *ports_, stop=stop)


def api_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_scan_lists_what_an_instance_listens_on_with_links(running, alice):
    session, instance = running
    listen(instance, 8080, 2375, 80)
    actions.note_watched(session_ids=[session.id], look=lambda ids: None)
    assert ports.scan_ports() == {instance.id: [80, 8080]}  # 2375: the inner engine's own

    [node1] = api_of(alice).get(f"/api/sessions/{session.id}/").json()["instances"]
    assert [p["port"] for p in node1["ports"]] == [80, 8080]
    url = urlsplit(node1["ports"][1]["url"])
    assert url.netloc == f"{instance.id}-8080.localhost:8000"  # no request port: the quick start's
    grant = parse_qs(url.query)["pg_grant"][0]
    assert ports.read_grant(grant, instance_id=instance.id, port=8080).user_id == alice.pk

    listen(instance, 8080, stop=True)
    ports.scan_ports()
    [node1] = api_of(alice).get(f"/api/sessions/{session.id}/").json()["instances"]
    assert [p["port"] for p in node1["ports"]] == [80]


def test_links_follow_the_domain_and_the_port_the_page_came_from(running, settings):
    _, instance = running
    settings.PLAYGROUND_PORTS_DOMAIN = "ports.example.org"
    token = ports.request_port.set(9000)
    try:
        assert ports.port_origin(instance.id, 80) == f"http://{instance.id}-80.ports.example.org:9000"
        settings.PLAYGROUND_PORTS_SCHEME = "https"
        ports.request_port.set(443)
        assert ports.port_origin(instance.id, 80) == f"https://{instance.id}-80.ports.example.org"
    finally:
        ports.request_port.reset(token)
    assert ports.parse_port_host(f"{instance.id}-80.ports.example.org:9000") == (instance.id, 80)
    assert ports.parse_port_host(f"{instance.id}-80.localhost:9000") is None
    assert ports.parse_port_host(f"{instance.id}-70000.ports.example.org") is None
    assert ports.parse_port_host("localhost:8000") is None


def test_a_grant_opens_only_its_own_instance_and_port_while_fresh(running, alice, settings):
    _, instance = running
    grant = parse_qs(urlsplit(ports.port_url(owner_id=alice.pk, instance_id=instance.id, port=80)).query)["pg_grant"][0]
    assert ports.read_grant(grant, instance_id=instance.id, port=80) is not None
    assert ports.read_grant(grant, instance_id=instance.id, port=81) is None
    assert ports.read_grant(grant, instance_id="0" * 32, port=80) is None
    assert ports.read_grant(grant[:-2] + "xx", instance_id=instance.id, port=80) is None
    # Not a cookie either: the two are signed apart.
    assert ports.read_cookie(grant, instance_id=instance.id, port=80) is None
    settings.PLAYGROUND_PORTS_GRANT_SECONDS = -1
    assert ports.read_grant(grant, instance_id=instance.id, port=80) is None


def test_only_the_owner_of_a_live_session_gets_through(running, alice, bob):
    session, instance = running
    assert ports.proxy_target(granted=ports.Pass(alice.pk, instance.id, 80)).ip == instance.ip
    with pytest.raises(NotFoundError):
        ports.proxy_target(granted=ports.Pass(bob.pk, instance.id, 80))
    actions.end_session(session=session)
    with pytest.raises(SessionOver):
        ports.proxy_target(granted=ports.Pass(alice.pk, instance.id, 80))


def test_the_open_port_endpoint(running, alice, bob):
    session, instance = running
    path = f"/api/sessions/{session.id}/instances/{instance.id}/ports/"
    answer = api_of(alice).post(path, {"port": 5000}, format="json")
    assert answer.status_code == 200
    assert answer.json()["port"] == 5000
    assert answer.json()["url"].startswith(f"http://{instance.id}-5000.localhost:")
    assert api_of(alice).post(path, {"port": 0}, format="json").json()["error"]["code"] == "invalid"
    assert api_of(alice).post(path, {"port": 5000, "host": "x"}, format="json").status_code == 400
    assert api_of(bob).post(path, {"port": 5000}, format="json").status_code == 404


def test_only_watched_sessions_are_scanned_and_a_first_read_scans_at_once(start, alice, bob, settings):
    settings.PLAYGROUND_WATCH_SECONDS = 30
    mine, theirs = start(user=alice), start(user=bob)
    node_a, node_b = mine.instances.get(), theirs.instances.get()
    listen(node_a, 8080)
    listen(node_b, 8080)
    asked = []
    driver = hosts.driver_for(node_a.host)
    real = driver.listening_ports
    driver.listening_ports = lambda state: asked.append(state) or real(state)

    # Nobody reads either session (an open terminal reads neither): no work.
    assert ports.scan_ports() == {}
    assert asked == []
    # Alice's page reads hers: scanned at once (eager tasks here), so the
    # answer after it shows the port; Bob's stays unasked.
    api_of(alice).get(f"/api/sessions/{mine.id}/")
    assert len(asked) == 1
    [node1] = api_of(alice).get(f"/api/sessions/{mine.id}/").json()["instances"]
    assert [p["port"] for p in node1["ports"]] == [8080]
    assert len(asked) == 1  # still watched: the rounds ask it, a read does not
    assert ports.scan_ports() == {node_a.id: [8080]}
    assert ports.found_ports(node_b.id) == []

    # Nobody read it for PLAYGROUND_WATCH_SECONDS: rounds skip it again.
    from django.core.cache import cache

    cache.delete(actions._watch_key(mine.id))
    assert ports.scan_ports() == {}
