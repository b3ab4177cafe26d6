"""``GET /metrics``: served only to the addresses ``PLAYGROUND_METRICS_ALLOW``
lists (default loopback), everyone else gets docs/api.md's 404 ``not_found``, as
for a path that does not exist.

The address is the client's as the project resolves it everywhere
(``playground.accounts.addresses``, ``PLAYGROUND_TRUSTED_PROXIES``). Two
more refusals keep a proxy in front from opening it to the world by mistake:
a request that carries ``X-Forwarded-For`` from a peer that is not a trusted
proxy (an nginx the playground was not told about: every request through it
would come from loopback), and a request to the instance ports' domain or a
name under it (``PLAYGROUND_PORTS_DOMAIN``: learners' pages are served
there)."""
from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port

from playground.accounts.addresses import client_address
from playground.errors import error_body

log = logging.getLogger(__name__)


def _within(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip.version == net.version and ip in net for net in networks)


def refusal(request: HttpRequest) -> str | None:
    """Why ``request`` may not read the metrics, or None when it may."""
    allowed = settings.PLAYGROUND_METRICS_ALLOW
    if not allowed:
        return "PLAYGROUND_METRICS_ALLOW is none"
    domain, _ = split_domain_port(request.META.get("HTTP_HOST", ""))
    ports = settings.PLAYGROUND_PORTS_DOMAIN.lower()
    if domain.endswith("." + ports):
        return f"asked on the instance ports' domain ({domain})"
    peer = request.META.get("REMOTE_ADDR", "")
    if request.META.get("HTTP_X_FORWARDED_FOR") and not _within(peer, settings.PLAYGROUND_TRUSTED_PROXIES):
        return f"X-Forwarded-For from {peer}, which is no trusted proxy (PLAYGROUND_TRUSTED_PROXIES)"
    address = client_address(request)
    if not _within(address, allowed):
        return f"{address or 'an unknown address'} is not in PLAYGROUND_METRICS_ALLOW"
    return None


def metrics(request: HttpRequest) -> HttpResponse:
    why = refusal(request)
    if why is not None:
        log.info("metrics refused: %s", why)
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse(error_body("method_not_allowed", f"Method {request.method} not allowed."),
                                status=405)
        response["Allow"] = "GET, HEAD"
        return response
    from prometheus_client import CONTENT_TYPE_LATEST

    from .collector import exposition
    from .sources import LiveSources

    response = HttpResponse(exposition(LiveSources()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
