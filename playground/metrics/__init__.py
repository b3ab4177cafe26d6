"""Metrics an operator scrapes: ``GET /metrics`` in the Prometheus text format.

Several processes (each Daphne, the Celery worker, beat) see part of what
happens, and one scrape of any web process must show all of it. So nothing is
kept in a process's memory; the metrics are of two kinds:

- **state**, computed when scraped (``sources.py``): live sessions and
  instances by image and host and the hot-start pools from the database; the
  lab hosts' health from the view beat keeps in the cache
  (``playground.sessions.hosts``); open terminal connections from the slots
  ``playground.sessions.connections`` counts in Redis; the Celery queue's
  depth from the broker's own lists.
- **events**, counted in Redis by whichever process sees them (``events.py``):
  provisioning failures, class joins, API errors, terminal connections
  opened, and how long sessions take to start (a histogram).

``collector.py`` turns both into prometheus_client metric families on a
registry of its own; ``views.py`` serves them to the addresses
``PLAYGROUND_METRICS_ALLOW`` lists. docs/operations.md ("Metrics") lists
every metric; docs/grafana-dashboard.json charts them.

Callers where events happen use the functions below, one line each; a
failure to count never fails what is counted.
"""
from __future__ import annotations

from .events import api_error, class_joined, provisioning_failed, session_started, terminal_opened

__all__ = ["api_error", "class_joined", "provisioning_failed", "session_started", "terminal_opened"]
