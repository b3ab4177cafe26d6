"""Events, counted by whichever process sees them (a web process, the worker,
beat) where every web process reads them: in Redis, the cache's server,
one hash per metric under ``<cache key prefix>:metrics:<deployment>:``
(HINCRBY, HINCRBYFLOAT; a histogram's bucket, count and sum in one MULTI).
Where the cache is not Redis (unit tests' local-memory cache) they are kept
in this process instead.

Counting never fails, nor holds up, what it counts: its own Redis client
waits at most ``TIMEOUT`` seconds, and after a failure (logged at debug)
counting stops for ``QUIET_SECONDS`` rather than wait again on every event.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

log = logging.getLogger(__name__)

TIMEOUT = 0.5
QUIET_SECONDS = 10.0


@dataclass(frozen=True)
class Event:
    name: str
    kind: str  # "counter" or "histogram"
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


PROVISIONING_FAILURES = Event(
    "playground_provisioning_failures_total", "counter",
    "Instances that failed to start, by image, reason (refused: the lab host refused for good, e.g. an image "
    "it does not have; unavailable: it did not answer through the retries; lost: the start job was lost "
    "PLAYGROUND_JOB_ATTEMPTS times) and kind (session, or pool: a hot-start instance).",
    ("image", "reason", "kind"),
)
FAILURE_REASONS = ("refused", "unavailable", "lost")
FAILURE_KINDS = ("session", "pool")

CLASS_JOINS = Event(
    "playground_class_joins_total", "counter",
    "Learners who joined a class and got its session, by how they came (code or invite).",
    ("via",),
)
JOIN_VIAS = ("code", "invite")

API_ERRORS = Event(
    "playground_api_errors_total", "counter",
    "Error answers in docs/api.md's JSON shape (any status of 400 and up), by error code.",
    ("code",),
)
# docs/api.md's codes and the few the error handler adds; others appear once seen.
API_ERROR_CODES = ("invalid", "unauthenticated", "forbidden", "not_found", "limit_reached", "class_closed",
                   "not_ready", "session_over", "rate_limited", "no_capacity", "unavailable", "internal")

TERMINALS_OPENED = Event(
    "playground_terminal_connections_opened_total", "counter",
    "Terminal WebSockets accepted (authenticated, owner and Origin checked).",
)

SESSION_START = Event(
    "playground_session_start_seconds", "histogram",
    "Seconds from a session's creation (in the request that asks for it) to its first instance running, by that "
    "instance's image and whether it came ready from the hot-start pool.",
    ("image", "pooled"),
    buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0),
)

EVENTS = (PROVISIONING_FAILURES, CLASS_JOINS, API_ERRORS, TERMINALS_OPENED, SESSION_START)


# -- where they are kept --------------------------------------------------------------------

class MemoryStore:
    """This process's own counts: where the cache is not Redis."""

    def __init__(self) -> None:
        self._hashes: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, key: str, increments: list[tuple[str, float]]) -> None:
        with self._lock:
            fields = self._hashes.setdefault(key, {})
            for name, amount in increments:
                fields[name] = fields.get(name, 0) + amount

    def read(self, keys: list[str]) -> list[dict[str, float]]:
        with self._lock:
            return [dict(self._hashes.get(key, {})) for key in keys]

    def clear(self) -> None:
        with self._lock:
            self._hashes.clear()


class RedisStore:
    def __init__(self, client) -> None:
        self.client = client

    def add(self, key: str, increments: list[tuple[str, float]]) -> None:
        pipe = self.client.pipeline(transaction=len(increments) > 1)
        for name, amount in increments:
            if isinstance(amount, int):
                pipe.hincrby(key, name, amount)
            else:
                pipe.hincrbyfloat(key, name, amount)
        pipe.execute()

    def read(self, keys: list[str]) -> list[dict[str, float]]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        return [{name.decode(): float(value) for name, value in found.items()} for found in pipe.execute()]


memory = MemoryStore()
_clients: dict[tuple[str, float], object] = {}
_clients_lock = threading.Lock()
_quiet_until = 0.0


def redis_url() -> str | None:
    """The cache's Redis (its first server, the one Django writes to), or None."""
    cache = settings.CACHES["default"]
    if not cache["BACKEND"].endswith(".RedisCache"):
        return None
    location = cache["LOCATION"]
    if isinstance(location, str):
        location = location.split(",")
    return location[0].strip()


def redis_client(*, timeout: float):
    """A client of the cache's Redis with its own timeouts (one per process
    and timeout: clients are thread-safe), or None when the cache is not Redis."""
    import redis

    url = redis_url()
    if url is None:
        return None
    with _clients_lock:
        client = _clients.get((url, timeout))
        if client is None:
            client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
            _clients[(url, timeout)] = client
    return client


def store(*, timeout: float = TIMEOUT) -> MemoryStore | RedisStore:
    client = redis_client(timeout=timeout)
    return memory if client is None else RedisStore(client)


def key(event: Event) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    return f"{prefix}:metrics:{settings.PLAYGROUND_DEPLOYMENT}:{event.name}"


def _field(parts) -> str:
    return json.dumps([str(part) for part in parts], separators=(",", ":"))


# -- counting ---------------------------------------------------------------------------

def _record(event: Event, build) -> None:
    global _quiet_until
    if time.monotonic() < _quiet_until:
        return
    try:
        store().add(key(event), build())
    except Exception as exc:  # noqa: BLE001 - counting never fails what it counts
        _quiet_until = time.monotonic() + QUIET_SECONDS
        log.debug("%s not counted (%s: %s); nothing is for %.0f s", event.name, type(exc).__name__, exc,
                  QUIET_SECONDS)


def count(event: Event, *values: str) -> None:
    _record(event, lambda: [(_field(values), 1)])


def bucket_of(event: Event, value: float) -> str:
    """The smallest bucket ``value`` fits in (stored alone: the collector adds them up)."""
    return next((repr(float(bound)) for bound in event.buckets if value <= bound), "+Inf")


def observe(event: Event, value: float, *values: str) -> None:
    _record(event, lambda: [(_field([*values, "bucket", bucket_of(event, value)]), 1),
                            (_field([*values, "count"]), 1),
                            (_field([*values, "sum"]), float(value))])


def api_error(code: str) -> None:
    count(API_ERRORS, code)


def class_joined(*, via: str) -> None:
    count(CLASS_JOINS, via)


def provisioning_failed(*, image: str, reason: str, pooled: bool) -> None:
    count(PROVISIONING_FAILURES, image, reason, "pool" if pooled else "session")


def terminal_opened() -> None:
    count(TERMINALS_OPENED)


def session_started(*, image: str, since: datetime, pooled: bool) -> None:
    """A session's first instance runs now; ``since``: when the session was made."""
    from django.utils import timezone

    observe(SESSION_START, max(0.0, (timezone.now() - since).total_seconds()), image, str(pooled).lower())


# -- reading (the collector) ------------------------------------------------------------------

@dataclass
class Histogram:
    buckets: dict[str, float] = field(default_factory=dict)  # bound ("0.5", "+Inf") -> observations in it alone
    count: float = 0.0
    sum: float = 0.0


def read(source: MemoryStore | RedisStore | None = None) -> dict[str, dict[tuple[str, ...], float | Histogram]]:
    """Every event metric's samples by label values (a counter's value, or a
    Histogram). Raises when Redis does not answer. Fields that are not of the
    metric's shape (written by something else) are skipped."""
    source = source or store(timeout=settings.REDIS_TIMEOUT)
    found = source.read([key(event) for event in EVENTS])
    samples: dict[str, dict[tuple[str, ...], float | Histogram]] = {}
    for event, fields in zip(EVENTS, found):
        mine: dict[tuple[str, ...], float | Histogram] = {}
        for name, value in fields.items():
            try:
                parts = json.loads(name)
            except ValueError:
                continue
            if not isinstance(parts, list) or not all(isinstance(part, str) for part in parts):
                continue
            if event.kind == "counter":
                if len(parts) == len(event.labels):
                    mine[tuple(parts)] = value
                continue
            labels, rest = tuple(parts[:len(event.labels)]), parts[len(event.labels):]
            histogram = mine.setdefault(labels, Histogram())
            if rest == ["count"]:
                histogram.count = value
            elif rest == ["sum"]:
                histogram.sum = value
            elif len(rest) == 2 and rest[0] == "bucket":
                histogram.buckets[rest[1]] = value
        samples[event.name] = mine
    return samples
