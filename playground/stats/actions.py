"""Use cases of instance stats: CPU and memory use shown per instance.

A Celery beat task asks each lab host, every PLAYGROUND_STATS_SECONDS, what
the running instances of watched live sessions (``note_watched``) used so far (one cheap engine call
per instance, in parallel) and keeps in the cache, per instance, the last
sample and what the page shows: ``cpu_percent`` (CPU time used between the
last two samples over the wall time between them, as a percentage of one
CPU: 200 is two CPUs busy), ``memory_bytes`` and ``memory_limit_bytes``. The
web tier only reads the cache when it writes an Instance's ``stats`` (an
extension of docs/api.md).
"""
from __future__ import annotations

import logging
from dataclasses import asdict

from django.conf import settings
from django.core.cache import cache

from playground.sessions import hosts
from playground.sessions.actions import ask_running_instances
from playground.sessions.models import Instance
from sandboxes.base import DriverError, InstanceStats

log = logging.getLogger(__name__)

SAMPLE_THREADS = 32
"""Instances asked at once. The engine answers a stats request at its stats
collector's next tick (once a second) whatever else it does, so a round
costs about a second per batch: 40 instances took 5.3 s eight at a time,
2.2 s 32 at a time (the driver keeps 32 connections per engine)."""


def _sample_key(instance_id: str) -> str:
    return f"stats-sample:{instance_id}"


def _shown_key(instance_id: str) -> str:
    return f"stats:{instance_id}"


def cpu_percent(before: InstanceStats, after: InstanceStats) -> float | None:
    """CPU time used between two samples over the wall time between them, as
    a percentage of one CPU; None when they cannot tell (no time passed, or
    the counter went back: the instance restarted)."""
    wall = after.at - before.at
    used = after.cpu_ns - before.cpu_ns
    if wall <= 0 or used < 0:
        return None
    return round(used / (wall * 1e9) * 100, 1)


def shown(before: InstanceStats | None, after: InstanceStats) -> dict:
    """An Instance's ``stats`` from its last two samples."""
    return {
        "cpu_percent": cpu_percent(before, after) if before is not None else None,
        "memory_bytes": after.memory_bytes,
        "memory_limit_bytes": after.memory_limit_bytes,
    }


def stats_of(instance: Instance) -> dict | None:
    """``stats`` of an Instance's JSON: what the last samples found, None
    when it does not run or was not sampled yet."""
    if instance.session_id is None or instance.state != Instance.State.RUNNING:
        return None
    try:
        return cache.get(_shown_key(instance.id))
    except Exception:  # noqa: BLE001 - Redis down: not known now, the rest of the answer stands
        return None


# -- the sampling (a Celery beat task) ------------------------------------------------------

def sample_stats(session_ids: list[str] | None = None) -> dict[str, dict]:
    """Sample what the running instances of watched live sessions (or of
    ``session_ids``) use; keep the answers in the cache. Returns the stats
    shown, by instance id.

    One round at a time per deployment; instances are asked in parallel."""
    samples = ask_running_instances(task="stats-sample", ask=_sample_one, threads=SAMPLE_THREADS,
                                    session_ids=session_ids)
    if not samples:
        return {}
    before = cache.get_many([_sample_key(iid) for iid in samples])
    found = {iid: shown(_stats_from(before.get(_sample_key(iid))), sample) for iid, sample in samples.items()}
    ttl = max(30, int(settings.PLAYGROUND_STATS_SECONDS * 10))
    # Plain dicts: the cache holds JSON only (playground.cache).
    cache.set_many({_sample_key(iid): asdict(sample) for iid, sample in samples.items()}, timeout=ttl)
    cache.set_many({_shown_key(iid): stats for iid, stats in found.items()}, timeout=ttl)
    return found


def _stats_from(kept: dict | None) -> InstanceStats | None:
    try:
        return InstanceStats(**kept) if kept is not None else None
    except TypeError:  # kept by another version of this code
        return None


def _sample_one(host: str, state: dict | None) -> InstanceStats | None:
    if not state:
        return None
    try:
        return hosts.driver_for(host).stats(state)
    except DriverError as exc:
        # Stopped or gone: the reconciler and the health check notice it.
        log.debug("stats: no answer from an instance on %s (%s)", host, exc.message)
        return None
