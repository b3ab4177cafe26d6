"""docs/grafana-dashboard.json charts only what /metrics exports."""
from __future__ import annotations

import json

from playground.metrics import collector
from tests.unit.metrics_helpers import DASHBOARD, FullSources, dashboard_metrics, queries, samples


def test_every_metric_the_dashboard_queries_is_exported():
    named = dashboard_metrics()
    assert len(queries()) >= 10 and len(named) >= 15, "the dashboard charts too little"
    exported = {name for name, _ in samples(collector.exposition(FullSources()))}
    assert not named - exported, f"the dashboard queries metrics /metrics does not export: {sorted(named - exported)}"


def test_the_dashboard_is_an_importable_grafana_dashboard():
    board = json.loads(DASHBOARD.read_text())
    assert board["title"] and board["uid"] and board["schemaVersion"]
    # Imported into any Grafana: the data source is chosen at import, not named here.
    assert {item["name"] for item in board["__inputs"]} == {"DS_PROMETHEUS"}
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in panels)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
