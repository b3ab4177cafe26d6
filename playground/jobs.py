"""Leases on background jobs, so that a job a dead worker was doing is found
and done again.

Celery acknowledges a job late (after it ran), but the Redis broker hands an
unacknowledged job to another worker only after its visibility timeout (an
hour), and a job whose message was lost (a worker killed with jobs it had
prefetched, the broker down when it was queued) never comes back. So every
job that moves a row through a transitional state (an instance
``provisioning``, a session ending, a set-up ``running``) holds a lease in the
cache while it works: taken atomically (two copies of one job never run at
once), renewed by a heartbeat, gone when the job ends or a few seconds after
its worker dies. A sweep (``recover_lost_jobs`` in the apps' actions) queues
again the jobs of rows that stayed in their transitional state with no lease,
and gives up on a row after ``PLAYGROUND_JOB_ATTEMPTS`` tries.

A lease lives in Redis: while Redis is down no worker gets jobs either, and
the sweep runs again when it is back.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

log = logging.getLogger(__name__)


def _key(kind: str, job: str) -> str:
    return f"job-{kind}:{job}"


@contextmanager
def lease(job: str, *, wait: float = 0.0) -> Iterator[bool]:
    """Hold ``job``'s lease while the block runs: True when this process got
    it (waiting up to ``wait`` seconds for another holder to finish), False
    when another one holds it (the caller then leaves the job alone). A
    heartbeat thread renews it until the block ends."""
    ttl = settings.PLAYGROUND_JOB_LEASE_SECONDS
    token = secrets.token_hex(8)
    deadline = time.monotonic() + wait
    while not cache.add(_key("lease", job), token, timeout=ttl):
        if time.monotonic() >= deadline:
            yield False
            return
        time.sleep(0.1)
    # Started: from now on a missing lease means its worker died.
    cache.set(_key("started", job), 1, timeout=24 * 3600)
    cache.delete(_key("requeued", job))
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(ttl / 3):
            try:
                cache.touch(_key("lease", job), ttl)
            except Exception as exc:  # noqa: BLE001 - a missed beat only shortens the lease
                log.warning("could not renew the lease of %s: %s", job, exc)

    beat = threading.Thread(target=heartbeat, name=f"lease {job}", daemon=True)
    beat.start()
    try:
        yield True
    finally:
        done.set()
        beat.join()
        # Seen just now: a job that returns to wait (a set-up waiting for its
        # instances asks again shortly) is not taken for lost in between.
        cache.set(_key("seen", job), 1, timeout=ttl)
        if cache.get(_key("lease", job)) == token:
            cache.delete(_key("lease", job))


def should_requeue(job: str, *, queued_at: datetime) -> bool | None:
    """For a job whose row is still in its transitional state: True to queue
    it again now, False to leave it (a worker holds it, or it may still be
    waiting in the queue), None to give up (tried PLAYGROUND_JOB_ATTEMPTS
    times). A job that started and lost its lease was lost at once; one that
    never started, once it waited PLAYGROUND_JOB_QUEUE_SECONDS."""
    keys = {kind: _key(kind, job) for kind in ("lease", "seen", "started", "requeued", "tries")}
    found = cache.get_many(list(keys.values()))
    if keys["lease"] in found or keys["seen"] in found:
        return False
    if keys["requeued"] in found:
        return False
    waited = (timezone.now() - queued_at).total_seconds()
    if keys["started"] not in found and waited < settings.PLAYGROUND_JOB_QUEUE_SECONDS:
        return False
    tries = found.get(keys["tries"], 0)
    if tries >= settings.PLAYGROUND_JOB_ATTEMPTS:
        return None
    # Another sweep running at once must not queue it twice.
    if not cache.add(keys["requeued"], 1, timeout=int(settings.PLAYGROUND_JOB_QUEUE_SECONDS)):
        return False
    cache.delete(keys["started"])
    cache.set(keys["tries"], tries + 1, timeout=24 * 3600)
    log.warning("job %s was lost (its worker died, or its message did); queueing it again (try %d of %d)",
                job, tries + 1, settings.PLAYGROUND_JOB_ATTEMPTS)
    return True



def enqueue(task, *args: object) -> None:
    """Queue ``task``; when the broker does not answer, log it and leave the
    job to the lost-job sweep (its row is already written, in a state the
    sweep looks for), rather than fail a request whose work is committed."""
    try:
        task.delay(*args)
    except Exception as exc:
        from playground.errors import dependency_down

        if dependency_down(exc) is None:
            raise
        log.warning("could not queue %s%r (%s); the lost-job sweep will", task.name, args, exc)
