"""The state the metrics show, read when scraped: from the database, the
lab hosts' health in the cache, the terminal slots and the broker's lists.
Blocking (the database, Redis): the view calls it from a request thread."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from . import events


@dataclass(frozen=True)
class HostView:
    url: str
    state: str  # active, cordoned, draining
    up: bool
    memory_bytes: int | None = None
    memory_available_bytes: int | None = None
    cpus: float | None = None


Counts = dict[tuple[str, ...], int]


class LiveSources:
    """What ``collector.PlaygroundCollector`` asks; unit tests give it a fake
    with the same methods."""

    def images(self) -> list[str]:
        return list(settings.PLAYGROUND_IMAGES)

    def live_sessions(self) -> Counts:
        """(host, image of its first instance, state) -> live sessions."""
        from django.db.models import Count, OuterRef, Subquery

        from playground.sessions.models import Instance, Session

        first_image = Instance.objects.filter(session=OuterRef("pk")).order_by("number").values("image")[:1]
        rows = (Session.objects.filter(state__in=Session.LIVE_STATES)
                .annotate(first_image=Subquery(first_image))
                .values("host", "first_image", "state").annotate(n=Count("id")).order_by())
        return {(row["host"], row["first_image"] or "", row["state"]): row["n"] for row in rows}

    def _instances(self, *, pooled: bool) -> Counts:
        from django.db.models import Count

        from playground.sessions.actions import LIVE_INSTANCE_STATES
        from playground.sessions.models import Instance, Session

        found = Instance.objects.filter(state__in=LIVE_INSTANCE_STATES, session__isnull=pooled)
        if not pooled:
            found = found.filter(session__state__in=Session.LIVE_STATES)
        rows = found.values("host", "image", "state").annotate(n=Count("id")).order_by()
        return {(row["host"], row["image"], row["state"]): row["n"] for row in rows}

    def live_instances(self) -> Counts:
        """(host, image, state) -> instances of live sessions."""
        return self._instances(pooled=False)

    def pooled_instances(self) -> Counts:
        """(host, image, state) -> hot-start instances waiting to be claimed."""
        return self._instances(pooled=True)

    def pool_targets(self) -> dict[str, int]:
        """image -> ready instances wanted on each lab host that takes new sessions."""
        from playground.sessions.actions import pool_sizes

        return pool_sizes()

    def lab_hosts(self) -> list[HostView]:
        from django.db import DatabaseError

        from playground.sessions import hosts
        from playground.sessions.models import LabHost

        urls = hosts.lab_hosts()  # seeds the table from PLAYGROUND_LAB_HOSTS; the last list known when it is down
        try:
            states = dict(LabHost.objects.values_list("url", "state"))
        except DatabaseError:  # health still counts most while the database is away
            states = {}
        views = []
        for url in urls:
            health = hosts.health_of(url)
            views.append(HostView(url=url, state=states.get(url, "active"), up=health.ok,
                                  memory_bytes=health.memory_bytes,
                                  memory_available_bytes=health.memory_available_bytes, cpus=health.cpus))
        return views

    def terminal_connections(self) -> int | None:
        """Terminal WebSockets open across the web processes: the slots
        ``playground.sessions.connections`` holds in the cache (each expires
        within two minutes of its process dying). None when they are not
        counted (no cap, or no Redis cache)."""
        from django.core.cache import cache

        if settings.PLAYGROUND_WS_CONNECTIONS_PER_USER <= 0:
            return None
        client = events.redis_client(timeout=settings.REDIS_TIMEOUT)
        if client is None:
            return None
        return sum(1 for _ in client.scan_iter(match=cache.make_key("terminals:*"), count=1000))

    def celery_queues(self) -> tuple[dict[str, int], int]:
        """(queue -> messages waiting, messages handed to a worker and not yet
        acknowledged), from the broker's Redis as kombu keeps them: a list per
        queue and priority step, and the ``unacked`` hash."""
        import redis
        from kombu.transport.redis import PRIORITY_STEPS, Channel

        from playground.celery import app

        queue = app.conf.task_default_queue
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=settings.REDIS_TIMEOUT,
                                      socket_connect_timeout=settings.REDIS_TIMEOUT)
        try:
            pipe = client.pipeline(transaction=False)
            for step in PRIORITY_STEPS:
                pipe.llen(f"{queue}{Channel.sep}{step}" if step else queue)
            pipe.hlen(Channel.unacked_key)
            *lengths, unacked = pipe.execute()
        finally:
            client.close()
        return {queue: sum(lengths)}, unacked

    def events(self) -> dict:
        return events.read()
