"""What /healthz reports: the database, the broker and the lab hosts."""
from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection

from playground.errors import error_body
from playground.sessions import hosts


def report() -> tuple[dict, bool]:
    checks: dict[str, object] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure is the answer itself
        checks["database"] = f"error: {exc}"
    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2).ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {exc}"
    lab_hosts = {}
    for host in hosts.lab_hosts():
        try:
            health = hosts.health_of(host)
            lab_hosts[host] = "ok" if health.ok else f"error: {health.error}"
        except Exception as exc:
            lab_hosts[host] = f"error: {exc}"
    checks["lab_hosts"] = lab_hosts
    healthy = checks["database"] == "ok" and checks["broker"] == "ok" and "ok" in lab_hosts.values()
    body: dict = {"status": "ok" if healthy else "unhealthy", "deployment": settings.PLAYGROUND_DEPLOYMENT, **checks}
    if not healthy:
        body.update(error_body("unhealthy", "A part the playground needs does not answer; see the checks."))
    return body, healthy
