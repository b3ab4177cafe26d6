"""Instance stats: the CPU percentage from two samples and the Instance
JSON's ``stats`` (fake driver; the engine's answers in the driver tests)."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from playground.sessions import hosts
from playground.sessions.models import Instance
from playground.stats import actions as stats
from sandboxes.base import InstanceStats
from sandboxes.docker import parse_stats

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024


def sample(cpu_ns: int, at: float) -> InstanceStats:
    return InstanceStats(cpu_ns=cpu_ns, memory_bytes=21 * MiB, memory_limit_bytes=512 * MiB, at=at)


def test_cpu_percent_is_cpu_time_over_wall_time_of_one_cpu():
    assert stats.cpu_percent(sample(0, 100.0), sample(500_000_000, 102.0)) == 25.0
    assert stats.cpu_percent(sample(0, 100.0), sample(3_000_000_000, 101.0)) == 300.0  # three CPUs busy
    assert stats.cpu_percent(sample(10, 100.0), sample(10, 100.0)) is None  # no time passed
    assert stats.cpu_percent(sample(9_000, 100.0), sample(10, 105.0)) is None  # restarted


def test_engine_answers_leave_the_droppable_page_cache_out():
    v2 = {"cpu_stats": {"cpu_usage": {"total_usage": 7}},
          "memory_stats": {"usage": 30 * MiB, "limit": 512 * MiB, "stats": {"inactive_file": 9 * MiB}}}
    found = parse_stats(v2)
    assert (found.cpu_ns, found.memory_bytes, found.memory_limit_bytes) == (7, 21 * MiB, 512 * MiB)
    v1 = {"cpu_stats": {"cpu_usage": {"total_usage": 7}},
          "memory_stats": {"usage": 30 * MiB, "limit": 64 * MiB, "stats": {"total_inactive_file": MiB}}}
    assert parse_stats(v1).memory_bytes == 29 * MiB
    with pytest.raises(Exception, match="not running"):
        parse_stats({"cpu_stats": {}, "memory_stats": {}}, name="node1")  # a stopped container's


def test_instance_json_shows_stats_once_sampled_twice(start, alice, monkeypatch):
    session = start(user=alice)
    instance = session.instances.get()
    driver = hosts.driver_for(instance.host)
    client = APIClient()
    client.force_authenticate(alice)

    def node1() -> dict:
        return client.get(f"/api/sessions/{session.id}/").json()["instances"][0]

    assert stats.stats_of(instance) is None  # not sampled yet
    assert stats.sample_stats() == {}  # nobody watches the session: not asked
    clock = iter([1000.0, 1004.0, 1008.0])
    monkeypatch.setattr(driver, "clock", lambda: next(clock))
    # The first read watches the session, which is sampled at once (eager here).
    assert node1()["stats"] == {"cpu_percent": None, "memory_bytes": 4 * MiB,
                                "memory_limit_bytes": instance_limit(instance)}
    driver.use(instance.driver_state, cpu_ns=1_000_000_000, memory_bytes=21 * MiB)
    stats.sample_stats()
    assert node1()["stats"] == {"cpu_percent": 25.0, "memory_bytes": 21 * MiB,
                                "memory_limit_bytes": instance_limit(instance)}

    driver.stop_instance(instance.driver_state, exit_code=137, reason="exited")
    assert stats.sample_stats() == {}  # a stopped instance: no answer, nothing new
    instance.state = Instance.State.STOPPED
    assert stats.stats_of(instance) is None  # what a stopped one shows


def instance_limit(instance) -> int:
    return hosts.driver_for(instance.host).host.instance(instance.driver_state).memory_limit
