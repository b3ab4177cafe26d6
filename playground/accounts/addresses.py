"""The client's address: the one place that reads it, for HTTP requests and
ASGI scopes alike (rate limits, the per-address guest cap, the audit log).

``X-Forwarded-For`` is believed only as far as proxies the operator lists in
``PLAYGROUND_TRUSTED_PROXIES`` vouch for it: the direct peer must be one, and
then the address is the rightmost one in the header that is not a trusted
proxy. Every proxy appends the address it saw, so the entries right of the
client's were written by trusted proxies; anything further left was written
by the client and may be anything (the leftmost entry is the easiest to spoof).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> list[Network]:
    """Addresses or CIDRs (``10.0.0.1``, ``172.16.0.0/12``, ``::1``); ValueError names a bad one."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an address or a network (CIDR)") from None
    return networks


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port, as some proxies write it
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client seen on a dual-stack socket (::ffff:203.0.113.7) is that IPv4 client.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address, networks: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address_from(peer: str | None, forwarded_for: str | None,
                        trusted: Sequence[Network] | None = None) -> str:
    """The client's address from the connection's peer and the
    ``X-Forwarded-For`` header it sent ("" when the peer is unknown)."""
    networks = settings.PLAYGROUND_TRUSTED_PROXIES if trusted is None else trusted
    hop = _ip(peer or "")
    if hop is None:
        return (peer or "").strip()
    if not forwarded_for or not _trusted(hop, networks):
        return str(hop)
    for entry in reversed(forwarded_for.split(",")):
        address = _ip(entry)
        if address is None:
            break  # not written by a proxy we trust: the last trusted hop is all we know
        hop = address
        if not _trusted(hop, networks):
            break
    return str(hop)


def client_address(request) -> str:
    """The client's address of a Django (or DRF) request."""
    meta = request.META
    return client_address_from(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))


def scope_client_address(scope: dict) -> str:
    """The client's address of an ASGI scope (HTTP or WebSocket)."""
    peer = (scope.get("client") or ("",))[0] or ""
    forwarded = [value.decode("latin-1") for name, value in scope.get("headers") or ()
                 if name.lower() == b"x-forwarded-for"]
    return client_address_from(peer, ",".join(forwarded) or None)
