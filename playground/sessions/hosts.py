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
                driver = load_driver(settings.PLAYGROUND_DRIVER, url=host, deployment=settings.PLAYGROUND_DEPLOYMENT)
                _drivers[host] = driver
    return driver


def forget_drivers() -> None:
    """Drop cached drivers (tests change settings between cases)."""
    with _drivers_lock:
        _drivers.clear()
        _local.clear()


@dataclass(frozen=True)
class Health:
    ok: bool
    checked_at: float
    error: str = ""


def _key(host: str) -> str:
    return f"host-health:{settings.PLAYGROUND_DEPLOYMENT}:{host}"


# This process's own last view of each host: what health_of falls back on
# while the cache (Redis) does not answer, so a Redis outage never passes for
# a lab host outage.
_local: dict[str, Health] = {}


def probe(host: str) -> Health:
    """Ask the host now and remember the answer."""
    try:
        driver_for(host).ping()
        health = Health(ok=True, checked_at=time.time())
    except DriverError as exc:
        health = Health(ok=False, checked_at=time.time(), error=exc.message)
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


def lab_hosts() -> list[str]:
    return list(settings.PLAYGROUND_LAB_HOSTS)
