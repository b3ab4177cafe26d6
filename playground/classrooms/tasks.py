"""Celery tasks of classes: thin, safe to run twice; the rules are in actions."""
from __future__ import annotations

from celery import shared_task

from . import actions


@shared_task(ignore_result=True, expires=60)
def warm_classes() -> dict[str, int]:
    return actions.warm_classes()
