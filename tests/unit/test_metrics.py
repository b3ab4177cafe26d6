"""/metrics (playground/metrics): the collector over fake sources, events
counted by the code where they happen, and who may read them."""
from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from playground.metrics import collector, events, views
from playground.metrics.sources import LiveSources
from playground.sessions import actions, hosts
from sandboxes.base import DriverError
from tests.unit.metrics_helpers import FullSources, samples, total, value


@pytest.fixture(autouse=True)
def fresh_counts(monkeypatch):
    events.memory.clear()
    monkeypatch.setattr(events, "_quiet_until", 0.0)
    yield
    events.memory.clear()


def test_state_and_events_from_the_sources_are_exported_with_known_series_at_zero():
    found = samples(collector.exposition(FullSources()))
    assert value(found, "playground_live_sessions", host="unix:///a", image="shell", state="running") == 3
    assert value(found, "playground_live_sessions", host="tcp://b:2376", image="shell", state="running") == 0
    assert value(found, "playground_live_instances", host="unix:///a", image="docker", state="provisioning") == 1
    assert value(found, "playground_pool_instances", host="unix:///a", image="shell", state="running") == 2
    # Wanted on the host that takes new sessions only.
    assert value(found, "playground_pool_target", host="unix:///a", image="docker") == 1
    assert value(found, "playground_pool_target", host="tcp://b:2376", image="docker") is None
    assert value(found, "playground_lab_host_up", host="unix:///a") == 1
    assert value(found, "playground_lab_host_up", host="tcp://b:2376") == 0
    assert value(found, "playground_lab_host_state", host="tcp://b:2376", state="cordoned") == 1
    assert value(found, "playground_lab_host_state", host="tcp://b:2376", state="active") == 0
    assert value(found, "playground_lab_host_memory_available_bytes", host="unix:///a") == 6 << 30
    assert value(found, "playground_lab_host_cpus", host="tcp://b:2376") is None  # unknown: left out
    assert value(found, "playground_terminal_connections") == 5
    assert value(found, "playground_celery_queue_length", queue="celery") == 7
    assert value(found, "playground_celery_unacked_messages") == 2
    assert value(found, "playground_provisioning_failures_total", image="docker", reason="refused",
                 kind="session") == 2
    assert value(found, "playground_provisioning_failures_total", image="shell", reason="lost", kind="pool") == 0
    assert value(found, "playground_class_joins_total", via="code") == 30
    assert value(found, "playground_class_joins_total", via="invite") == 0
    assert value(found, "playground_api_errors_total", code="teapot") == 1  # one not known in advance
    assert value(found, "playground_api_errors_total", code="rate_limited") == 0
    assert value(found, "playground_terminal_connections_opened_total") == 12
    # Buckets are stored alone and exported cumulative.
    start = {"image": "shell", "pooled": "true"}
    assert value(found, "playground_session_start_seconds_bucket", le="0.1", **start) == 0
    assert value(found, "playground_session_start_seconds_bucket", le="0.25", **start) == 2
    assert value(found, "playground_session_start_seconds_bucket", le="1.0", **start) == 3
    assert value(found, "playground_session_start_seconds_bucket", le="60.0", **start) == 3
    assert value(found, "playground_session_start_seconds_bucket", le="+Inf", **start) == 4
    assert value(found, "playground_session_start_seconds_count", **start) == 4
    assert value(found, "playground_session_start_seconds_sum", **start) == 70.5
    assert value(found, "playground_session_start_seconds_count", image="docker", pooled="false") == 0
    assert total(found, "playground_metrics_source_up") == 4


def test_a_source_that_does_not_answer_is_left_out_and_named():
    away = ConnectionError("Redis is away")
    found = samples(collector.exposition(FullSources(events=away, terminal_connections=away,
                                                     live_sessions=RuntimeError("database is locked"))))
    assert value(found, "playground_metrics_source_up", source="redis") == 0
    assert value(found, "playground_metrics_source_up", source="database") == 0
    assert value(found, "playground_metrics_source_up", source="broker") == 1
    assert total(found, "playground_api_errors_total") == 0 and total(found, "playground_live_sessions") == 0
    assert value(found, "playground_lab_host_up", host="unix:///a") == 1
    assert value(found, "playground_live_instances", host="unix:///a", image="shell", state="running") == 4


def test_what_the_playground_does_is_counted_and_served(settings, alice, start, monkeypatch):
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 1}
    hosts.probe("fake://lab1")
    start(user=alice)  # on demand: the pool is empty yet
    actions.fill_pools()
    start(user=alice)  # takes the pooled one (and the pool fills again)

    monkeypatch.setattr(LiveSources, "celery_queues", lambda self: ({"celery": 0}, 0))
    client = APIClient()
    assert client.get("/api/sessions/").status_code == 401
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/plain")
    found = samples(answer.content)
    assert value(found, "playground_api_errors_total", code="unauthenticated") == 1
    assert value(found, "playground_session_start_seconds_count", image="shell", pooled="false") == 1
    assert value(found, "playground_session_start_seconds_count", image="shell", pooled="true") == 1
    assert value(found, "playground_live_sessions", host="fake://lab1", image="shell", state="running") == 2
    assert value(found, "playground_live_instances", host="fake://lab1", image="shell", state="running") == 2
    assert value(found, "playground_pool_instances", host="fake://lab1", image="shell", state="running") == 1
    assert value(found, "playground_pool_target", host="fake://lab1", image="shell") == 1
    assert value(found, "playground_lab_host_up", host="fake://lab1") == 1


def test_a_start_the_lab_host_refuses_is_counted_by_image_and_reason(bob, start, monkeypatch):
    def refuse(spec):
        raise DriverError(f"image {spec.image!r} is not on the lab host", permanent=True)

    monkeypatch.setattr(hosts.driver_for("fake://lab1"), "create_instance", refuse)
    session = start(user=bob, image="docker")
    assert session.instances.get().state == "failed"
    assert events.read()[events.PROVISIONING_FAILURES.name] == {("docker", "refused", "session"): 1}


def test_counting_never_fails_nor_keeps_waiting_on_what_it_counts(monkeypatch):
    tries = []

    class Away:
        def add(self, key, increments):
            tries.append(key)
            raise TimeoutError("Redis did not answer")

    monkeypatch.setattr(events, "store", lambda **kwargs: Away())
    events.api_error("invalid")
    events.class_joined(via="code")  # not even tried: counting rests a while after a failure
    assert len(tries) == 1


def request(remote: str, *, host: str = "127.0.0.1:8000", forwarded: str | None = None):
    headers = {"HTTP_HOST": host, "REMOTE_ADDR": remote}
    if forwarded:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/metrics", **headers)


def test_metrics_are_served_to_the_allowed_addresses_only(settings):
    from playground.settings import env_networks_default

    assert views.refusal(request("127.0.0.1")) is None
    assert views.refusal(request("::1", host="[::1]:8000")) is None
    assert "not in PLAYGROUND_METRICS_ALLOW" in views.refusal(request("203.0.113.5"))
    # A proxy nobody vouched for: every request through it would come from loopback.
    assert "no trusted proxy" in views.refusal(request("127.0.0.1", forwarded="203.0.113.5"))
    settings.PLAYGROUND_TRUSTED_PROXIES = env_networks_default("127.0.0.1")
    settings.PLAYGROUND_METRICS_ALLOW = env_networks_default("10.0.0.0/8")
    assert views.refusal(request("127.0.0.1", forwarded="10.1.2.3")) is None
    assert views.refusal(request("127.0.0.1", forwarded="10.1.2.3, 203.0.113.5")) is not None
    settings.PLAYGROUND_PORTS_DOMAIN = "ports.example.net"
    assert "ports' domain" in views.refusal(request("127.0.0.1", forwarded="10.1.2.3",
                                                    host="abc-8080.ports.example.net"))
    settings.PLAYGROUND_METRICS_ALLOW = []
    assert views.refusal(request("127.0.0.1", forwarded="10.1.2.3")) is not None


def test_a_refused_scrape_is_a_json_not_found(client):
    answer = client.get("/metrics", REMOTE_ADDR="203.0.113.5")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
