"""Reading /metrics in tests: the samples of an exposition, the metric names
docs/grafana-dashboard.json's queries use, and sources with one of everything."""
from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from playground.metrics import events
from playground.metrics.sources import HostView

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def samples(text: str | bytes) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted label pairs) -> value."""
    if isinstance(text, bytes):
        text = text.decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def total(found: dict, name: str, **labels: str) -> float:
    """``name``'s samples whose labels include ``labels``, added up."""
    return sum(v for (sample, pairs), v in found.items()
               if sample == name and set(labels.items()) <= set(pairs))


def queries(node: object = DASHBOARD) -> list[str]:
    """Every ``expr`` in the dashboard, panels nested in rows included."""
    if node is DASHBOARD:
        node = json.loads(DASHBOARD.read_text())
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [expr for child in node.values() for expr in queries(child)]
    if isinstance(node, list):
        return [expr for child in node for expr in queries(child)]
    return []


def dashboard_metrics() -> set[str]:
    """The sample names the dashboard's queries read (``playground_...``)."""
    return {name for expr in queries() for name in re.findall(r"\bplayground_[a-zA-Z0-9_]+", expr)}


class FullSources:
    """Something in every metric: two lab hosts, one of them cordoned and
    down, sessions, instances, a pool, queued jobs and counted events."""

    def __init__(self, **overrides) -> None:
        self.overrides = overrides

    def _or(self, name: str, default):
        answer = self.overrides.get(name, default)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def images(self):
        return ["shell", "docker"]

    def live_sessions(self):
        return self._or("live_sessions", {("unix:///a", "shell", "running"): 3, ("unix:///a", "docker", "starting"): 1})

    def live_instances(self):
        return self._or("live_instances", {("unix:///a", "shell", "running"): 4,
                                           ("unix:///a", "docker", "provisioning"): 1})

    def pooled_instances(self):
        return self._or("pooled_instances", {("unix:///a", "shell", "running"): 2})

    def pool_targets(self):
        return self._or("pool_targets", {"shell": 2, "docker": 1})

    def lab_hosts(self):
        return self._or("lab_hosts", [
            HostView(url="unix:///a", state="active", up=True, memory_bytes=8 << 30,
                     memory_available_bytes=6 << 30, cpus=2.0),
            HostView(url="tcp://b:2376", state="cordoned", up=False),
        ])

    def terminal_connections(self):
        return self._or("terminal_connections", 5)

    def celery_queues(self):
        return self._or("celery_queues", ({"celery": 7}, 2))

    def events(self):
        start = events.Histogram(buckets={"0.25": 2, "1.0": 1, "+Inf": 1}, count=4, sum=70.5)
        return self._or("events", {
            events.PROVISIONING_FAILURES.name: {("docker", "refused", "session"): 2},
            events.CLASS_JOINS.name: {("code",): 30},
            events.API_ERRORS.name: {("not_found",): 4, ("teapot",): 1},
            events.TERMINALS_OPENED.name: {(): 12},
            events.SESSION_START.name: {("shell", "true"): start},
        })
