"""Use cases of instance ports (docs/api.md, "Ports").

Finding ports: a Celery beat task asks each lab host which TCP ports the
running instances of live sessions listen on (one cheap exec per instance)
and keeps the answer in the cache per instance, so the web tier only reads
the cache when it writes an Instance's ``ports``.

Reaching them: each port is served by the proxy (``proxy.py``) on an origin
of its own, ``<scheme>://<instance>-<port>.<PLAYGROUND_PORTS_DOMAIN>:<the
playground's port>/``. The playground's cookies never reach that origin (it
is another host), so the link carries a short-lived grant signed for the
session's owner, that instance and that port; the proxy trades it for a
cookie of its own on that origin and then checks, on every request, that the
cookie's user still owns the live session of a running instance.

A grant is good once (``consume_grant``: its first use is noted in the cache
with an atomic ``add``, shared by every web process), so a link seen in a
history, a log or over a shoulder lets nobody else in. On https the cookie
is a ``__Host-`` cookie (Secure, Path=/, no Domain: no other host, not even
a sibling port origin, can set or shadow it); browsers refuse that prefix
without Secure, so on plain http it keeps its plain name.
"""
from __future__ import annotations

import contextvars
import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.cache import cache

from playground.errors import Invalid, NotFoundError, NotReady, SessionOver
from playground.sessions import hosts
from playground.sessions.actions import ask_running_instances, note_activity
from playground.sessions.models import Instance
from sandboxes.base import DriverError

log = logging.getLogger(__name__)

GRANT_PARAM = "pg_grant"
"""The query parameter of a port link that carries its grant."""
COOKIE_NAME = "playground_port"
"""The proxy's own cookie on a port's origin (``cookie_name()`` gives the one in use)."""
COOKIE_MAX_AGE = 24 * 3600
"""Longest a cookie's signature is good for; the session's life is checked too."""
_GRANT_SALT = "playground.ports.grant"
_COOKIE_SALT = "playground.ports.cookie"
SCAN_THREADS = 8
MAX_PORTS = 32
"""Ports listed per instance at most (the lowest): a port scan-like server
farm must not bloat every session answer."""

QUICK_START_PORT = 8000

_HOST_RE = re.compile(r"^(?P<iid>[0-9a-f]{32})-(?P<port>[0-9]{1,5})\.(?P<domain>[^:]+)(?::[0-9]+)?$")

# The port of the Host header a playground request came in on (set by the
# router in proxy.py): port links are written for that same port.
request_port: contextvars.ContextVar[int | None] = contextvars.ContextVar("playground_request_port", default=None)


# -- origins and links --------------------------------------------------------------

def port_origin(instance_id: str, port: int) -> str:
    scheme = settings.PLAYGROUND_PORTS_SCHEME
    # Outside a request through the ASGI router (a shell, a test client):
    # the quick start's port.
    public = settings.PLAYGROUND_PORTS_PUBLIC_PORT or request_port.get() or QUICK_START_PORT
    default = 443 if scheme == "https" else 80
    suffix = f":{public}" if public and public != default else ""
    return f"{scheme}://{instance_id}-{port}.{settings.PLAYGROUND_PORTS_DOMAIN}{suffix}"


def parse_port_host(host: str) -> tuple[str, int] | None:
    """``(instance id, port)`` when ``host`` (a Host header) names a port's
    origin under the proxy's domain, else None."""
    match = _HOST_RE.match(host.strip().lower())
    if match is None or match["domain"] != settings.PLAYGROUND_PORTS_DOMAIN.lower():
        return None
    port = int(match["port"])
    if not 1 <= port <= 65535:
        return None
    return match["iid"], port


def cookie_name() -> str:
    """The proxy's cookie: ``__Host-`` prefixed where the scheme lets it be Secure."""
    return f"__Host-{COOKIE_NAME}" if settings.PLAYGROUND_PORTS_SCHEME == "https" else COOKIE_NAME


def port_url(*, owner_id: int, instance_id: str, port: int, path: str = "/") -> str:
    """A link to ``port`` of an instance with a fresh grant for its owner."""
    # The nonce makes every grant a new one, so each link can be used once.
    grant = signing.dumps({"u": owner_id, "i": instance_id, "p": port, "n": secrets.token_urlsafe(9)},
                          salt=_GRANT_SALT, compress=False)
    return f"{port_origin(instance_id, port)}{path}?{urlencode({GRANT_PARAM: grant})}"


@dataclass(frozen=True)
class Pass:
    """Who a grant or cookie lets in, and where."""

    user_id: int
    instance_id: str
    port: int


def _load(value: str, *, salt: str, max_age: float, instance_id: str, port: int) -> Pass | None:
    try:
        data = signing.loads(value, salt=salt, max_age=max_age)
        found = Pass(user_id=data["u"], instance_id=str(data["i"]), port=int(data["p"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    if found.instance_id != instance_id or found.port != port:
        return None  # made for another origin
    return found


def read_grant(value: str, *, instance_id: str, port: int) -> Pass | None:
    """The grant of a link, if signed by us for this origin and still fresh."""
    return _load(value, salt=_GRANT_SALT, max_age=settings.PLAYGROUND_PORTS_GRANT_SECONDS,
                 instance_id=instance_id, port=port)


def consume_grant(value: str, *, instance_id: str, port: int) -> Pass | None:
    """``read_grant``, once: a grant already used (by anyone, on any web
    process) is None. Raises the cache's error when Redis does not answer."""
    granted = read_grant(value, instance_id=instance_id, port=port)
    if granted is None:
        return None
    key = "ports:grant-used:" + hashlib.sha256(value.encode()).hexdigest()[:40]
    # Kept as long as the grant's signature is good; then the age check refuses it anyway.
    if not cache.add(key, 1, timeout=settings.PLAYGROUND_PORTS_GRANT_SECONDS + 5):
        return None
    return granted


def make_cookie(granted: Pass) -> str:
    return signing.dumps({"u": granted.user_id, "i": granted.instance_id, "p": granted.port},
                         salt=_COOKIE_SALT, compress=False)


def read_cookie(value: str, *, instance_id: str, port: int) -> Pass | None:
    return _load(value, salt=_COOKIE_SALT, max_age=COOKIE_MAX_AGE, instance_id=instance_id, port=port)


# -- who may reach what -----------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    ip: str
    hostname: str


def proxy_target(*, granted: Pass) -> Target:
    """Where the proxy sends a request that ``granted`` lets in.

    ``NotFoundError`` when the instance is unknown or not the grant's user's
    (alike), ``SessionOver`` once its session ended, ``NotReady`` while it
    does not run."""
    instance = (
        Instance.objects.select_related("session")
        .filter(id=granted.instance_id, session__owner_id=granted.user_id)
        .first()
    )
    if instance is None:
        raise NotFoundError("No such instance port.")
    if not instance.session.is_live:
        raise SessionOver(f"The session of {instance.hostname} is over.")
    if instance.state != Instance.State.RUNNING or not instance.ip:
        raise NotReady(f"{instance.hostname} is {instance.state}.")
    # Using what one serves counts as activity for the idle timeout.
    note_activity(session_id=instance.session_id)
    return Target(ip=instance.ip, hostname=instance.hostname)


# -- ports as the API shows them -----------------------------------------------------------

def _cache_key(instance_id: str) -> str:
    return f"ports:{instance_id}"


def found_ports(instance_id: str) -> list[int]:
    try:
        return cache.get(_cache_key(instance_id)) or []
    except Exception:  # noqa: BLE001 - Redis down: none known now, the rest of the answer stands
        return []


def ports_of(instance: Instance) -> list[dict]:
    """``ports`` of an Instance's JSON: what the last scan found, each with a link."""
    if instance.session_id is None or instance.state != Instance.State.RUNNING:
        return []
    ports = found_ports(instance.id)
    if not ports:
        return []
    owner_id = instance.session.owner_id
    return [{"port": p, "url": port_url(owner_id=owner_id, instance_id=instance.id, port=p)} for p in ports]


def open_port(*, instance: Instance, port: int) -> dict:
    """A link to any port of an instance (the page's "open port" box)."""
    if not 1 <= port <= 65535:
        raise Invalid("port must be between 1 and 65535.")
    if not instance.session.is_live:
        raise SessionOver("This session is over.")
    return {"port": port, "url": port_url(owner_id=instance.session.owner_id, instance_id=instance.id, port=port)}


# -- the scan (a Celery beat task) --------------------------------------------------------------

def scan_ports(session_ids: list[str] | None = None) -> dict[str, list[int]]:
    """Ask the lab hosts which ports each running instance of a watched live
    session listens on (or of ``session_ids``); keep the answers in the
    cache. Returns them by instance id.

    One round at a time per deployment; instances are asked in parallel."""
    found = ask_running_instances(task="ports-scan", ask=_scan_one, threads=SCAN_THREADS, session_ids=session_ids)
    if found:
        ttl = max(30, int(settings.PLAYGROUND_PORTS_SECONDS * 10))
        cache.set_many({_cache_key(iid): ports for iid, ports in found.items()}, timeout=ttl)
    return found


def _scan_one(host: str, state: dict | None) -> list[int] | None:
    if not state:
        return None
    started = time.monotonic()
    try:
        ports = hosts.driver_for(host).listening_ports(state)
    except DriverError as exc:
        # Stopped or gone: the reconciler and the health check notice it.
        log.debug("ports: no answer from an instance on %s (%s)", host, exc.message)
        return None
    hidden = set(settings.PLAYGROUND_PORTS_HIDDEN)
    shown = [p for p in ports if p >= 1 and p not in hidden][:MAX_PORTS]
    log.debug("ports: %s in %.0f ms", shown, (time.monotonic() - started) * 1000)
    return shown
