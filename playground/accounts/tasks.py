"""Celery tasks of accounts: thin, safe to run twice; the rules are in actions."""
from __future__ import annotations

from celery import shared_task

from . import actions


@shared_task(ignore_result=True, expires=600)
def delete_stale_guests() -> int:
    return actions.delete_stale_guests()
