from __future__ import annotations

from django.apps import AppConfig


class PortsConfig(AppConfig):
    name = "playground.ports"
    label = "ports"
    verbose_name = "Instance ports"
