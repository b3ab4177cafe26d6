"""Lab hosts: one driver object per host per process, and the web tier's
current view of each host's health (kept in the cache by a beat task)."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.cache import cache

from sandboxes.base import Driver, DriverError, load_driver

log = logging.getLogger(__name__)

_drivers: dict[str, Driver] = {}
_drivers_lock = threading.Lock()


def driver_for(host: str) -> Driver:
    """The driver of ``host``, imported and built once per process."""
    driver = _drivers.get(host)
    if driver is None:
        with _drivers_lock:
            driver = _drivers.get(host)
            if driver is None:
                # The TLS paths (settings.PLAYGROUND_LAB_HOST_OPTIONS) go to
                # every host's driver; a unix:// socket's ignores them.
                driver = load_driver(settings.PLAYGROUND_DRIVER, url=host, deployment=settings.PLAYGROUND_DEPLOYMENT,
                                     **settings.PLAYGROUND_LAB_HOST_OPTIONS)
                _drivers[host] = driver
    return driver


def forget_drivers() -> None:
    """Drop cached drivers (tests change settings between cases)."""
    global _seeded
    with _drivers_lock:
        _drivers.clear()
        _local.clear()
        _seeded = False


@dataclass(frozen=True)
class Health:
    ok: bool
    checked_at: float
    error: str = ""
    # The host's capacity (Driver.capacity) as of checked_at; None: unknown.
    memory_bytes: int | None = None
    cpus: float | None = None
    memory_available_bytes: int | None = None


def _key(host: str) -> str:
    return f"host-health:{settings.PLAYGROUND_DEPLOYMENT}:{host}"


# This process's own last view of each host: what health_of falls back on
# while the cache (Redis) does not answer, so a Redis outage never passes for
# a lab host outage.
_local: dict[str, Health] = {}


def probe(host: str) -> Health:
    """Ask the host now and remember the answer."""
    try:
        driver = driver_for(host)  # a registered host the driver refuses (no TLS) is unhealthy, not a crash
        driver.ping()
    except DriverError as exc:
        health = Health(ok=False, checked_at=time.time(), error=exc.message)
    else:
        try:
            room = driver.capacity()
            health = Health(ok=True, checked_at=time.time(), memory_bytes=room.memory_bytes or None,
                            cpus=room.cpus or None, memory_available_bytes=room.memory_available_bytes)
        except DriverError as exc:  # answers, but not this: placed by count alone until it does
            log.warning("could not read the capacity of %s: %s", host, exc.message)
            health = Health(ok=True, checked_at=time.time())
    _local[host] = health
    try:
        cache.set(_key(host), asdict(health), timeout=max(60, int(settings.PLAYGROUND_HEALTH_SECONDS * 10)))
    except Exception as exc:  # noqa: BLE001 - the answer stands; only sharing it failed
        log.warning("could not share the health of %s: %s", host, exc)
    return health


def _fresh(health: Health | None) -> bool:
    return health is not None and time.time() - health.checked_at <= settings.PLAYGROUND_HEALTH_SECONDS * 3


def health_of(host: str) -> Health:
    """The current view of ``host``; probes only when the view is missing or stale
    (beat keeps it fresh, so the web tier normally never waits on a host)."""
    try:
        raw = cache.get(_key(host))
        health = Health(**raw) if raw is not None else None
    except Exception:  # noqa: BLE001 - Redis down: this process's view, else ask the host
        health = _local.get(host)
    if _fresh(health):
        return health
    return probe(host)


# -- the fleet: registered lab hosts ---------------------------------------------------------
# The LabHost table lists them; PLAYGROUND_LAB_HOSTS seeds it (once per
# process: a host removed through manage.py but still in the environment
# comes back at the next restart). A host added later is used at once.

_seeded = False
_known: list[tuple[str, str]] = []  # (url, state): this process's last read, for a database outage


def _registered() -> list[tuple[str, str]]:
    global _seeded, _known
    from django.db import DatabaseError

    from .models import LabHost

    try:
        if not _seeded:
            LabHost.objects.bulk_create([LabHost(url=url) for url in settings.PLAYGROUND_LAB_HOSTS],
                                        ignore_conflicts=True)
            _seeded = True
        _known = list(LabHost.objects.values_list("url", "state"))
    except DatabaseError as exc:  # the database is down: what this process knew, else the environment
        log.warning("could not read the lab hosts (%s); using the last known list", exc)
        return _known or [(url, "active") for url in settings.PLAYGROUND_LAB_HOSTS]
    return _known


def lab_hosts() -> list[str]:
    """Every registered lab host, cordoned and draining ones too (they still
    run instances: health checks, the reconciler and the watcher need them)."""
    return [url for url, _ in _registered()]


def placeable_hosts() -> list[str]:
    """The lab hosts that take new instances."""
    return [url for url, state in _registered() if state == "active"]


def draining_hosts() -> list[str]:
    """The lab hosts whose pooled and warm instances move elsewhere."""
    return [url for url, state in _registered() if state == "draining"]
