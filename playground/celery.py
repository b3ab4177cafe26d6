from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")

app = Celery("playground")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def schedule_periodic_tasks(sender: Celery, **kwargs) -> None:
    from django.conf import settings

    from playground.sessions import tasks

    sender.add_periodic_task(settings.PLAYGROUND_SWEEP_SECONDS, tasks.sweep_sessions.s(), name="sweep sessions")
    sender.add_periodic_task(settings.PLAYGROUND_HEALTH_SECONDS, tasks.check_hosts.s(), name="check lab hosts")
    sender.add_periodic_task(settings.PLAYGROUND_RECONCILE_SECONDS, tasks.reconcile_hosts.s(), name="reconcile lab hosts")
