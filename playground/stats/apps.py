from __future__ import annotations

from django.apps import AppConfig


class StatsConfig(AppConfig):
    name = "playground.stats"
    label = "stats"
    verbose_name = "Instance stats"
