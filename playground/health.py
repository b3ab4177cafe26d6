"""What /healthz reports: the database, the broker (Redis) and the lab
hosts, each on its own, and under "down" the ones that do not answer. A lab
host's health comes from the beat's view in the cache, or from this process's
own when Redis is down (a Redis outage is not a lab-host outage)."""
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
    except Exception as exc:  # noqa: BLE001 - any failure is the answer itself
        checks["database"] = f"error: {exc}"
    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=settings.REDIS_TIMEOUT,
                             socket_connect_timeout=settings.REDIS_TIMEOUT).ping()
        checks["broker"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is the answer itself
        checks["broker"] = f"error: {exc}"
    lab_hosts = {}
    for host in hosts.lab_hosts():
        try:
            health = hosts.health_of(host)
            lab_hosts[host] = "ok" if health.ok else f"error: {health.error}"
        except Exception as exc:  # noqa: BLE001 - any failure is the answer itself
            lab_hosts[host] = f"error: {exc}"
    checks["lab_hosts"] = lab_hosts
    healthy = checks["database"] == "ok" and checks["broker"] == "ok" and "ok" in lab_hosts.values()
    body: dict = {"status": "ok" if healthy else "unhealthy", "deployment": settings.PLAYGROUND_DEPLOYMENT, **checks}
    if not healthy:
        down = [name for name in ("database", "broker") if checks[name] != "ok"]
        if "ok" not in lab_hosts.values():
            down.append("lab_hosts")
        body["down"] = down
        body.update(error_body("unhealthy", f"A part the playground needs does not answer: {', '.join(down)}."))
    return body, healthy
