"""The cache holds JSON, never pickle (playground/cache.py): a value planted
in Redis by whoever reaches it runs no code in the web tier, and every value
the playground itself caches is JSON. Against the real Redis (database 10),
with the project's own CACHES setting."""
from __future__ import annotations

import json
import os
import pickle

import pytest
import redis
from django.core.cache import cache
from rest_framework.test import APIClient

from playground import settings as project_settings
from playground.sessions import hosts
from playground.stats import actions as stats

pytestmark = pytest.mark.django_db

REDIS_URL = os.environ.get("PLAYGROUND_TEST_REDIS", "redis://127.0.0.1:6399") + "/10"


@pytest.fixture
def redis_cache(settings):
    """The production cache configuration, on a database of this module's own."""
    settings.CACHES = {"default": {**project_settings.CACHES["default"], "LOCATION": REDIS_URL}}
    raw = redis.Redis.from_url(REDIS_URL)
    raw.flushdb()
    yield raw
    raw.flushdb()


class Planted:
    """What an attacker writes into Redis: a pickle that runs ``os.mkdir``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickled_value_planted_in_redis_runs_no_code_and_reads_as_a_miss(redis_cache, tmp_path):
    marker = tmp_path / "code-ran"
    redis_cache.set(cache.make_key("host-health:x"), pickle.dumps(Planted(str(marker))))
    assert cache.get("host-health:x") is None
    assert cache.get_many(["host-health:x"]) in ({}, {"host-health:x": None})
    assert not marker.exists()
    # What the cache does keep still reads back.
    cache.set("fine", {"ok": True, "n": [1, 2.5]})
    assert cache.get("fine") == {"ok": True, "n": [1, 2.5]}


def test_a_value_that_is_not_json_is_refused_when_set(redis_cache):
    with pytest.raises(TypeError):
        cache.set("x", object())
    cache.set("counter", 1)
    assert cache.incr("counter") == 2  # integers stay raw Redis integers


def test_every_value_the_playground_caches_is_json(redis_cache, start, alice, monkeypatch):
    session = start(user=alice)
    instance = session.instances.get()
    client = APIClient()
    client.force_authenticate(alice)
    driver = hosts.driver_for(instance.host)
    clock = iter([1000.0, 1004.0, 1008.0, 1012.0])
    monkeypatch.setattr(driver, "clock", lambda: next(clock))
    # Reading the session watches it: stats and ports are sampled (eagerly here).
    assert client.get(f"/api/sessions/{session.id}/").status_code == 200
    stats.sample_stats()
    hosts.probe(instance.host)
    assert client.post(f"/api/sessions/{session.id}/instances/{instance.id}/exec/",
                       {"command": "true"}, format="json").status_code == 200
    keys = redis_cache.keys("pg:*")
    assert any(b"stats" in key for key in keys), keys  # the writers above did write
    for key in keys:
        if redis_cache.type(key) != b"string":
            continue
        value = redis_cache.get(key)
        assert not value.startswith(b"\x80"), (key, value)  # a pickle's first byte
        json.loads(value)  # an integer is JSON too
