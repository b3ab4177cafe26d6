"""The one collector behind ``/metrics``: state read from its sources when
scraped, and the events counted in Redis, as prometheus_client metric
families on a registry of its own (never the library's global one, which
would add this process's own Python metrics: a scrape reaches one process
of several).

A source that does not answer (the database, Redis, the broker) leaves its
metrics out of that scrape, and ``playground_metrics_source_up`` says which;
the rest are served. Label sets that are known in advance (the lab hosts, the
images, docs/api.md's error codes) are exported at 0 before anything happened,
so rates and sums have a series to start from.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import events

log = logging.getLogger(__name__)

SESSION_STATES = ("starting", "running")
INSTANCE_STATES = ("provisioning", "running")
HOST_STATES = ("active", "cordoned", "draining")


class PlaygroundCollector(Collector):
    def __init__(self, sources) -> None:
        self.sources = sources

    def describe(self) -> list[Metric]:
        return []  # nothing is collected when registered: a scrape does that

    def collect(self) -> Iterator[Metric]:
        up: dict[str, bool] = {}
        images = self.sources.images()
        hosts = self._ask(up, "lab_hosts", self.sources.lab_hosts)
        host_urls = [host.url for host in hosts or ()]
        yield from self._database(up, images, host_urls, hosts)
        if hosts is not None:
            yield from self._hosts(hosts)
        yield from self._redis(up, images)
        queues = self._ask(up, "broker", self.sources.celery_queues)
        if queues is not None:
            waiting, unacked = queues
            queue_length = GaugeMetricFamily(
                "playground_celery_queue_length",
                "Jobs waiting in the Celery queue (the broker's lists, every priority step).", labels=["queue"])
            for name, n in waiting.items():
                queue_length.add_metric([name], n)
            yield queue_length
            yield GaugeMetricFamily(
                "playground_celery_unacked_messages",
                "Jobs a worker has taken and not finished (acknowledged late, after they ran).", value=unacked)
        source_up = GaugeMetricFamily(
            "playground_metrics_source_up",
            "1 when this scrape could read the source (database, lab_hosts, redis, broker), else 0: "
            "that source's metrics are missing from it.", labels=["source"])
        for source, ok in up.items():
            source_up.add_metric([source], 1 if ok else 0)
        yield source_up

    @staticmethod
    def _ask(up: dict[str, bool], source: str, call):
        try:
            answer = call()
        except Exception as exc:  # noqa: BLE001 - the other metrics are still worth serving
            log.warning("metrics: could not read %s (%s: %s)", source, type(exc).__name__, exc)
            up[source] = False
            return None
        up.setdefault(source, True)
        return answer

    # -- the database -------------------------------------------------------------------------
    def _database(self, up, images, host_urls, hosts) -> Iterator[Metric]:
        sessions = self._ask(up, "database", self.sources.live_sessions)
        instances = self._ask(up, "database", self.sources.live_instances)
        pooled = self._ask(up, "database", self.sources.pooled_instances)
        targets = self._ask(up, "database", self.sources.pool_targets)
        if sessions is not None:
            yield _gauge("playground_live_sessions",
                         "Live sessions, by lab host, image of their first instance, and state.",
                         ["host", "image", "state"], sessions, _grid(host_urls, images, SESSION_STATES))
        if instances is not None:
            yield _gauge("playground_live_instances", "Instances of live sessions, by lab host, image and state.",
                         ["host", "image", "state"], instances, _grid(host_urls, images, INSTANCE_STATES))
        if targets is not None:
            active = [host.url for host in hosts or () if host.state == "active"]
            target = GaugeMetricFamily(
                "playground_pool_target",
                "Hot-start instances wanted ready per image on each lab host that takes new sessions.",
                labels=["host", "image"])
            for url in active:
                for image, size in sorted(targets.items()):
                    target.add_metric([url, image], size)
            yield target
        if pooled is not None:
            pooled_images = sorted(targets or {})
            yield _gauge("playground_pool_instances",
                         "Hot-start instances waiting to be claimed, by lab host, image and state "
                         "(running: ready).", ["host", "image", "state"], pooled,
                         _grid(host_urls, pooled_images, INSTANCE_STATES))

    # -- the lab hosts -------------------------------------------------------------------------
    @staticmethod
    def _hosts(hosts) -> Iterator[Metric]:
        host_up = GaugeMetricFamily("playground_lab_host_up",
                                    "1 when the lab host's engine answered its last health check.", labels=["host"])
        host_state = GaugeMetricFamily(
            "playground_lab_host_state",
            "1 for the lab host's state: active (takes new sessions), cordoned, draining.", labels=["host", "state"])
        memory = GaugeMetricFamily("playground_lab_host_memory_bytes",
                                   "The lab host's memory, as its engine reports it.", labels=["host"])
        available = GaugeMetricFamily("playground_lab_host_memory_available_bytes",
                                      "Memory still available on the lab host at its last health check.",
                                      labels=["host"])
        cpus = GaugeMetricFamily("playground_lab_host_cpus", "The lab host's CPUs, as its engine reports them.",
                                 labels=["host"])
        for host in hosts:
            host_up.add_metric([host.url], 1 if host.up else 0)
            for state in HOST_STATES:
                host_state.add_metric([host.url, state], 1 if host.state == state else 0)
            for family, value in ((memory, host.memory_bytes), (available, host.memory_available_bytes),
                                  (cpus, host.cpus)):
                if value is not None:
                    family.add_metric([host.url], value)
        yield from (host_up, host_state, memory, available, cpus)

    # -- Redis: the events, and the terminal slots -----------------------------------------------
    def _redis(self, up, images) -> Iterator[Metric]:
        terminals = self._ask(up, "redis", self.sources.terminal_connections)
        if terminals is not None:
            yield GaugeMetricFamily(
                "playground_terminal_connections",
                "Terminal WebSockets open across every web process (counted while "
                "PLAYGROUND_WS_CONNECTIONS_PER_USER caps them).", value=terminals)
        found = self._ask(up, "redis", self.sources.events)
        if found is None:
            return
        known = {
            events.PROVISIONING_FAILURES.name: _grid(images, events.FAILURE_REASONS, events.FAILURE_KINDS),
            events.CLASS_JOINS.name: [(via,) for via in events.JOIN_VIAS],
            events.API_ERRORS.name: [(code,) for code in events.API_ERROR_CODES],
            events.TERMINALS_OPENED.name: [()],
            events.SESSION_START.name: _grid(images, ("false", "true")),
        }
        for event in events.EVENTS:
            samples = found.get(event.name, {})
            if event.kind == "counter":
                counter = CounterMetricFamily(event.name, event.help, labels=list(event.labels))
                for labels in sorted(set(samples) | set(known[event.name])):
                    counter.add_metric(list(labels), samples.get(labels, 0))
                yield counter
            else:
                yield _histogram(event, samples, known[event.name])


def _grid(*axes) -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = [()]
    for axis in axes:
        combos = [(*combo, value) for combo in combos for value in axis]
    return combos


def _gauge(name: str, help_text: str, labels: list[str], counts: dict, zeros: list) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=labels)
    for key in sorted(set(counts) | set(zeros)):
        family.add_metric(list(key), counts.get(key, 0))
    return family


def _histogram(event: events.Event, samples: dict, zeros: list) -> HistogramMetricFamily:
    family = HistogramMetricFamily(event.name, event.help, labels=list(event.labels))
    for labels in sorted(set(samples) | set(zeros)):
        found = samples.get(labels) or events.Histogram()
        cumulative, buckets = 0.0, []
        for bound in event.buckets:
            cumulative += found.buckets.get(repr(float(bound)), 0)
            buckets.append((floatToGoString(bound), cumulative))
        cumulative += found.buckets.get("+Inf", 0)
        buckets.append(("+Inf", cumulative))
        family.add_metric(list(labels), buckets, sum_value=found.sum)
    return family


def exposition(sources) -> bytes:
    """The text a scrape gets."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlaygroundCollector(sources))
    return generate_latest(registry)
