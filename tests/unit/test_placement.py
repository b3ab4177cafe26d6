"""Placement by what instances reserve of a lab host's memory and CPUs
(fake hosts of set sizes; the engine's own figures in the driver tests)."""
from __future__ import annotations

import pytest

from playground.errors import NoCapacity
from playground.sessions import actions, hosts
from sandboxes.base import HostCapacity
from sandboxes.fake import FakeDriver

pytestmark = pytest.mark.django_db

GiB = 1024**3
MiB = 1024**2


def size(host: str, **figures) -> None:
    """Give the fake ``host`` these figures, and have the web tier see them."""
    FakeDriver(url=host, deployment="test-unit").host.capacity = HostCapacity(**figures)
    hosts.probe(host)


@pytest.fixture(autouse=True)
def roomy_users(settings):
    settings.PLAYGROUND_MAX_SESSIONS_USER = 100
    settings.PLAYGROUND_RESERVE_MEMORY_MB = 256
    settings.PLAYGROUND_RESERVE_CPUS = 0.5
    settings.PLAYGROUND_HOST_MEMORY_OVERCOMMIT = 2.0
    settings.PLAYGROUND_HOST_CPU_OVERCOMMIT = 8.0


def test_reservations_fill_a_hosts_memory_times_its_overcommit(alice):
    size("fake://lab1", memory_bytes=1 * GiB, cpus=64)  # 2 GiB to reserve: 8 of 256 MiB
    for _ in range(8):
        actions.start_session(user=alice)
    with pytest.raises(NoCapacity, match=r"memory reserved"):
        actions.start_session(user=alice)


def test_reservations_fill_a_hosts_cpus_times_its_overcommit(alice, settings):
    settings.PLAYGROUND_HOST_CPU_OVERCOMMIT = 2.0
    size("fake://lab1", memory_bytes=64 * GiB, cpus=2)  # 4 CPUs to reserve: 8 of 0.5
    first, second = actions.start_session(user=alice), actions.start_session(user=alice)
    for _ in range(4):
        actions.add_instance(session=first)
    actions.add_instance(session=second)
    actions.add_instance(session=second)  # 8 instances
    with pytest.raises(NoCapacity, match=r"CPU reserved"):
        actions.add_instance(session=second)  # the session's own host is full
    with pytest.raises(NoCapacity, match=r"CPU reserved"):
        actions.start_session(user=alice)


def test_an_image_reserves_its_own_figures(alice, settings):
    settings.PLAYGROUND_IMAGES = {**settings.PLAYGROUND_IMAGES,
                                  "docker": {**settings.PLAYGROUND_IMAGES["docker"], "reserve_memory_mb": 1024}}
    size("fake://lab1", memory_bytes=1 * GiB, cpus=64)
    actions.start_session(user=alice, image="docker")
    actions.start_session(user=alice, image="docker")  # 2 GiB reserved: the whole allowance
    with pytest.raises(NoCapacity):
        actions.start_session(user=alice, image="docker")
    with pytest.raises(NoCapacity):
        actions.start_session(user=alice)  # nor 256 MiB more


def test_a_host_short_of_free_memory_takes_nothing_however_empty(alice, settings):
    settings.PLAYGROUND_HOST_MIN_FREE_MEMORY = 0.10
    size("fake://lab1", memory_bytes=10 * GiB, cpus=8, memory_available_bytes=1 * GiB + 100 * MiB)
    with pytest.raises(NoCapacity, match=r"low on free memory"):
        actions.start_session(user=alice)  # 256 MiB more would leave it under 1 GiB
    size("fake://lab1", memory_bytes=10 * GiB, cpus=8, memory_available_bytes=2 * GiB)
    actions.start_session(user=alice)


def test_new_sessions_go_where_the_most_is_left(alice, settings):
    settings.PLAYGROUND_LAB_HOSTS = ["fake://lab1", "fake://lab2"]
    size("fake://lab1", memory_bytes=2 * GiB, cpus=64)  # room for 16
    size("fake://lab2", memory_bytes=1 * GiB, cpus=64)  # room for 8
    placed = [actions.start_session(user=alice).host for _ in range(12)]
    # Each goes where the larger share is left: both end half full.
    assert placed[0] == "fake://lab1"
    assert placed.count("fake://lab1") == 8 and placed.count("fake://lab2") == 4


def test_a_count_cap_still_applies_when_set(alice, settings):
    settings.PLAYGROUND_HOST_CAPACITY = 2
    size("fake://lab1", memory_bytes=64 * GiB, cpus=64)
    actions.start_session(user=alice)
    actions.start_session(user=alice)
    with pytest.raises(NoCapacity, match=r"full"):
        actions.start_session(user=alice)


def test_a_host_whose_size_is_unknown_is_placed_on_by_count(alice, monkeypatch):
    def no_answer(self):
        from sandboxes.base import DriverError

        raise DriverError("info failed")

    monkeypatch.setattr(FakeDriver, "capacity", no_answer)
    hosts.probe("fake://lab1")
    assert hosts.health_of("fake://lab1").ok
    for _ in range(20):
        actions.start_session(user=alice)  # nothing to reserve against: no refusal
