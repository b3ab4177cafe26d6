"""Celery tasks of labs: thin, take ids, safe to run twice."""
from __future__ import annotations

from celery import shared_task

from . import actions


@shared_task(ignore_result=True)
def set_up_lab(session_id: str) -> None:
    actions.set_up(session_id=session_id)


@shared_task(ignore_result=True)
def skip_steps(session_id: str) -> None:
    actions.run_skip(session_id=session_id)


@shared_task(ignore_result=True, expires=30)
def recover_setups() -> dict[str, int]:
    return {**actions.recover_lost_setups(), **actions.recover_lost_skips()}
