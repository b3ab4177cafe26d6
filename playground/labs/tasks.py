"""Celery tasks of labs: thin, take ids, safe to run twice."""
from __future__ import annotations

from celery import shared_task

from . import actions


@shared_task(ignore_result=True)
def set_up_lab(session_id: str) -> None:
    actions.set_up(session_id=session_id)
