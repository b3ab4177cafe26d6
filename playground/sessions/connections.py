"""Terminal connections per user, counted across every web process.

A user holds at most ``PLAYGROUND_WS_CONNECTIONS_PER_USER`` terminal
WebSockets at once (0: no cap). Each connection takes one of the user's
numbered slots in the cache (Redis, shared by the web processes) with an
atomic ``add``; the slot expires after ``SLOT_SECONDS`` unless its process
renews it (every ``RENEW_SECONDS``, one ``touch`` per slot it holds), so a
web process that dies frees its users' slots within ``SLOT_SECONDS``
instead of leaking them for ever. A connection leaving frees its slot at
once.

Blocking (the cache): call from a thread pool.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

SLOT_SECONDS = 120
RENEW_SECONDS = 40
UNCOUNTED_SECONDS = 10
"""After the cache failed, connections go uncounted this long without asking
it (each ask would wait for Redis's timeout)."""

_held: dict[str, str] = {}
"""Slots this process holds: cache key -> the value that marks them ours."""
_renewer: asyncio.Task | None = None
_uncounted_until = 0.0

NO_CAP = ""
"""What ``take_slot`` returns when nothing is counted (no cap, or no cache)."""


def _keys(user_id: int, cap: int) -> list[str]:
    return [f"terminals:{user_id}:{n}" for n in range(cap)]


def take_slot(user_id: int) -> str | None:
    """A slot for one more connection of ``user_id`` (a key to give back with
    ``release_slot``), or None when the user holds every slot already. When
    the cache does not answer the connection is let in uncounted (``NO_CAP``):
    the terminal does not depend on Redis."""
    global _uncounted_until
    cap = settings.PLAYGROUND_WS_CONNECTIONS_PER_USER
    if cap <= 0 or time.monotonic() < _uncounted_until:
        return NO_CAP
    keys = _keys(user_id, cap)
    mark = secrets.token_hex(8)
    try:
        taken = cache.get_many(keys)
        for key in keys:
            if key not in taken and cache.add(key, mark, timeout=SLOT_SECONDS):
                _held[key] = mark
                return key
    except Exception as exc:  # noqa: BLE001 - Redis down: count nothing rather than refuse everyone
        log.warning("terminal connections not counted for %s s: %s", UNCOUNTED_SECONDS, exc)
        _uncounted_until = time.monotonic() + UNCOUNTED_SECONDS
        return NO_CAP
    return None


def release_slot(key: str) -> None:
    mark = _held.pop(key, None)
    if not key or mark is None:
        return
    try:
        if cache.get(key) == mark:  # not one that expired and another connection took
            cache.delete(key)
    except Exception as exc:  # noqa: BLE001 - it expires by itself
        log.info("terminal connection slot %s: %s", key, exc)


def renew_slots() -> None:
    """Keep this process's slots alive; one that lapsed (Redis restarted, say)
    is counted again. ``touch`` never brings back a slot released meanwhile."""
    for key, mark in list(_held.items()):
        if not cache.touch(key, SLOT_SECONDS) and key in _held:
            cache.add(key, mark, timeout=SLOT_SECONDS)


def keep_renewing(run_in_pool) -> None:
    """Start this process's renewing task once (``run_in_pool(func)`` runs a
    blocking call on the caller's thread pool and returns an awaitable)."""
    global _renewer
    if _renewer is not None and not _renewer.done():
        return

    async def renew_forever() -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await run_in_pool(renew_slots)
            except Exception as exc:  # noqa: BLE001 - Redis may be back by the next round
                log.warning("terminal connection slots not renewed: %s", exc)

    _renewer = asyncio.get_running_loop().create_task(renew_forever())
