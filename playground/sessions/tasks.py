"""Celery tasks: thin, take ids, safe to run twice; the rules are in actions."""
from __future__ import annotations

import logging

from celery import shared_task

from sandboxes.base import DriverError

from . import actions, hosts

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def provision_instance(instance_id: str) -> None:
    actions.provision_instance(instance_id=instance_id)


@shared_task(ignore_result=True)
def teardown_session(session_id: str) -> None:
    actions.teardown_session(session_id=session_id)


@shared_task(bind=True, ignore_result=True, max_retries=None)
def setup_template(self, session_id: str) -> str:
    outcome = actions.setup_template(session_id=session_id)
    if outcome == "wait":  # instances still starting: ask again shortly
        raise self.retry(countdown=0.5)
    return outcome


@shared_task(ignore_result=True, expires=60)
def fill_pools() -> dict[str, int]:
    return actions.fill_pools()


@shared_task(ignore_result=True, expires=30)
def sweep_sessions() -> list[str]:
    return actions.expire_due_sessions()


@shared_task(ignore_result=True, expires=30)
def recover_jobs() -> dict[str, int]:
    return actions.recover_lost_jobs()


@shared_task(ignore_result=True, expires=30)
def check_hosts() -> dict[str, bool]:
    return actions.check_hosts()


@shared_task(ignore_result=True, expires=120)
def reconcile_hosts() -> dict[str, dict]:
    report = {}
    for host in hosts.lab_hosts():
        try:
            report[host] = actions.reconcile_host(host=host)
        except DriverError as exc:
            log.warning("reconciler: %s did not answer (%s)", host, exc.message)
    return report


@shared_task(ignore_result=True, expires=60)
def enforce_disk_limits() -> dict[str, list[str]]:
    report = {}
    for host in hosts.lab_hosts():
        try:
            report[host] = actions.enforce_disk_limit(host=host)
        except DriverError as exc:
            log.warning("disk watchdog: %s did not answer (%s)", host, exc.message)
    return report
