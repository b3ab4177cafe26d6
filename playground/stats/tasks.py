"""Celery tasks of stats: thin; the rules are in actions."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import actions


@shared_task(ignore_result=True, expires=max(1.0, settings.PLAYGROUND_STATS_SECONDS))
def sample_stats(session_ids: list[str] | None = None) -> int:
    return len(actions.sample_stats(session_ids))
