"""Terminal connections per user (playground/sessions/connections.py): slots
in the cache that every web process shares."""
from __future__ import annotations

import time

import pytest

from playground.sessions import connections


@pytest.fixture(autouse=True)
def no_slots_held(monkeypatch):
    monkeypatch.setattr(connections, "_held", {})
    monkeypatch.setattr(connections, "_uncounted_until", 0.0)


def test_a_user_gets_as_many_slots_as_the_cap_and_a_freed_one_comes_back(settings):
    settings.PLAYGROUND_WS_CONNECTIONS_PER_USER = 3
    slots = [connections.take_slot(1) for _ in range(3)]
    assert all(slots) and len(set(slots)) == 3
    assert connections.take_slot(1) is None
    assert connections.take_slot(2)  # another user counts apart
    connections.release_slot(slots[0])
    assert connections.take_slot(1) == slots[0]


def test_slots_outlive_their_process_only_until_they_expire(settings, monkeypatch):
    settings.PLAYGROUND_WS_CONNECTIONS_PER_USER = 1
    monkeypatch.setattr(connections, "SLOT_SECONDS", 0.2)
    held = connections.take_slot(7)
    assert held and connections.take_slot(7) is None
    connections._held.clear()  # the process that held it died: nobody renews it
    time.sleep(0.4)
    assert connections.take_slot(7) == held


def test_without_the_cache_connections_are_let_in_uncounted(settings, monkeypatch):
    settings.PLAYGROUND_WS_CONNECTIONS_PER_USER = 1

    class Away:
        def get_many(self, keys):
            raise ConnectionError("Redis is away")

    monkeypatch.setattr(connections, "cache", Away())
    assert connections.take_slot(9) == connections.NO_CAP
    assert connections.take_slot(9) == connections.NO_CAP


def test_renewing_keeps_held_slots_and_never_brings_back_a_released_one(settings):
    from django.core.cache import cache

    settings.PLAYGROUND_WS_CONNECTIONS_PER_USER = 2
    kept, released = connections.take_slot(3), connections.take_slot(3)
    connections.release_slot(released)
    connections.renew_slots()
    assert cache.get(released) is None
    assert cache.get(kept) is not None
    cache.delete(kept)  # lapsed (Redis restarted, say) while its connection lives on
    connections.renew_slots()
    assert cache.get(kept) is not None
    assert connections.take_slot(3) == released
    assert connections.take_slot(3) is None
