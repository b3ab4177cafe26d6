"""What users see when a lab host is down, or dies under their session."""
from __future__ import annotations

import pytest
import requests

from tests.integration.conftest import _purge, wait_instance
from tests.integration.proxy import EngineProxy
from tests.stack import ENGINE, Stack, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]


@pytest.fixture(scope="module")
def stack_without_engine(tmp_path_factory):
    """A playground whose only lab host does not answer; default rate limits."""
    workdir = tmp_path_factory.mktemp("no-engine")
    running = Stack(workdir, redis_db=12, env={
        "PLAYGROUND_LAB_HOSTS": f"unix://{workdir}/no-engine.sock",
        "PLAYGROUND_SESSION_RATE_USER": "10/min",
    }).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def proxied_stack(tmp_path_factory, engine):
    """A playground whose lab host sits behind a proxy the test can kill."""
    workdir = tmp_path_factory.mktemp("proxied")
    proxy = EngineProxy(str(workdir / "engine.sock"), ENGINE).start()
    running = Stack(workdir, redis_db=13, env={
        "PLAYGROUND_LAB_HOSTS": proxy.url,
        "PLAYGROUND_HOST_DOWN_GRACE": "2",
    })
    running.proxy = proxy
    running.start()
    yield running
    running.stop()
    proxy.kill()
    _purge(engine, running.deployment)


def test_with_the_engine_down_session_creation_is_503_no_capacity(stack_without_engine):
    client = stack_without_engine.client("erin")
    answer = client.post(stack_without_engine.url + "/api/sessions/", json={}, timeout=10)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "no_capacity"
    assert int(answer.headers["Retry-After"]) > 0


def test_healthz_is_503_when_no_lab_host_answers(stack_without_engine):
    answer = requests.get(stack_without_engine.url + "/healthz", timeout=10)
    assert answer.status_code == 503
    assert answer.json()["status"] == "unhealthy"
    assert answer.json()["error"]["code"] == "unhealthy"


def test_too_many_session_creations_are_429_with_retry_after(stack_without_engine):
    client = stack_without_engine.client("frank")
    codes = [client.post(stack_without_engine.url + "/api/sessions/", json={}, timeout=10) for _ in range(11)]
    assert [a.status_code for a in codes[:10]] == [503] * 10
    assert codes[10].status_code == 429
    assert codes[10].json()["error"]["code"] == "rate_limited"
    assert int(codes[10].headers["Retry-After"]) > 0


def test_an_engine_that_dies_after_the_201_fails_the_instance_with_a_reason(proxied_stack):
    client = proxied_stack.client("grace")
    created = client.post(proxied_stack.url + "/api/sessions/", json={}, timeout=30)
    assert created.status_code == 201
    proxied_stack.proxy.kill()
    session = created.json()
    failed = wait_instance(proxied_stack, client, session["id"], session["instances"][0]["id"], "failed", timeout=30)
    assert "lab host" in failed["reason"]
    assert "Traceback" not in failed["reason"]
    # And new sessions are refused clearly while it is down.
    wait_for(lambda: client.post(proxied_stack.url + "/api/sessions/", json={}, timeout=10).status_code == 503,
             timeout=10, what="session creation to answer 503")
