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

    from playground.classrooms import tasks as class_tasks
    from playground.labs import tasks as lab_tasks
    from playground.sessions import tasks

    sender.add_periodic_task(settings.PLAYGROUND_SWEEP_SECONDS, tasks.sweep_sessions.s(), name="sweep sessions")
    sender.add_periodic_task(settings.PLAYGROUND_SWEEP_SECONDS, tasks.recover_jobs.s(), name="recover lost jobs")
    # Runs with a size of 0 too: it then empties a pool left from before.
    sender.add_periodic_task(settings.PLAYGROUND_POOL_SECONDS, tasks.fill_pools.s(), name="fill hot-start pools")
    sender.add_periodic_task(settings.PLAYGROUND_HEALTH_SECONDS, tasks.check_hosts.s(), name="check lab hosts")
    sender.add_periodic_task(settings.PLAYGROUND_RECONCILE_SECONDS, tasks.reconcile_hosts.s(), name="reconcile lab hosts")
    sender.add_periodic_task(settings.PLAYGROUND_DISK_CHECK_SECONDS, tasks.enforce_disk_limits.s(), name="disk watchdog")

    from playground.ports import tasks as port_tasks

    sender.add_periodic_task(settings.PLAYGROUND_PORTS_SECONDS, port_tasks.scan_ports.s(), name="find instance ports")

    from playground.stats import tasks as stats_tasks

    sender.add_periodic_task(settings.PLAYGROUND_STATS_SECONDS, stats_tasks.sample_stats.s(),
                             name="sample instance stats")
    sender.add_periodic_task(settings.PLAYGROUND_CLASS_WARM_SECONDS, class_tasks.warm_classes.s(),
                             name="warm classes about to start")
    sender.add_periodic_task(settings.PLAYGROUND_SWEEP_SECONDS, lab_tasks.recover_setups.s(),
                             name="recover lost lab set-ups")

    from playground.accounts import tasks as account_tasks

    sender.add_periodic_task(settings.PLAYGROUND_GUEST_CLEANUP_SECONDS, account_tasks.delete_stale_guests.s(),
                             name="delete stale guests")
