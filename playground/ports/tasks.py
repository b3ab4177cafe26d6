"""Celery tasks of ports: thin; the rules are in actions."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import actions


@shared_task(ignore_result=True, expires=max(1.0, settings.PLAYGROUND_PORTS_SECONDS))
def scan_ports(session_ids: list[str] | None = None) -> dict[str, list[int]]:
    return actions.scan_ports(session_ids)
