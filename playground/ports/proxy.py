"""The instance-port proxy: an ASGI layer in front of the playground.

A request whose Host names a port's origin (``<instance>-<port>.<domain>``,
see ``actions.parse_port_host``) never reaches Django: this module answers
it, forwarding HTTP (any method, bodies streamed both ways) and WebSocket
traffic to the instance's address on its session network, which the web
tier reaches directly. Any other request goes on to the playground, with the
port it came to noted for the port links it may write.

Who gets through: a link's grant (``?pg_grant=``) is traded for the proxy's
own cookie on that origin (HttpOnly, SameSite=Lax) and a redirect to the
same URL without the grant; then the cookie lets its user in while they own
the live session of the running instance. The playground's own cookies and
the proxy's cookie are never passed on; the Host becomes
``localhost:<port>``, as a development server expects, and redirects to it
are written back to the port's origin.

Everything blocking (the database) runs on the terminal thread pool; the
upstream connections are asyncio streams, so nothing waits on the event loop.

Backpressure, both ways: Daphne's ``send`` queues without limit what a slow
browser does not read, so after each piece of an answer (an HTTP body chunk, a
WebSocket message) the proxy waits until the browser's connection holds less
than ``rawsocket.WRITE_LIMIT`` (1 MiB) before reading more from the instance;
the instance's server then blocks on its writes, as with a slow client of its
own. Towards the instance, while a WebSocket's messages wait for a slow
instance the browser's socket is not read (``rawsocket.pause_reading``), and
request bodies go no faster than the instance reads them (``drain``); Daphne
holds a request's body whole before the application starts, which
``rawsocket.limit_request_bodies`` bounds (``PLAYGROUND_MAX_REQUEST_BYTES``).
What a connection holds in this process is then about 1 MiB, whatever either
end does, besides that bounded body.
"""
from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import time
from urllib.parse import quote, unquote_plus

from django.conf import settings
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Origin

from playground import rawsocket
from playground.errors import NotFoundError, NotReady, PlaygroundError, SessionOver, error_body
from playground.sessions.terminal import db

from . import actions
from .actions import GRANT_PARAM, Pass, Target

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection to an instance's port."""
HEAD_TIMEOUT = 120.0
"""Seconds an instance's server may take to start its answer."""
HEAD_LIMIT = 64 * 1024
"""Largest response head (status line and headers) taken from a server."""
CHUNK = 64 * 1024
WS_MAX_MESSAGE = 1024 * 1024
"""Largest WebSocket message taken from a server (Daphne takes no larger one
from a browser): a larger one closes the instance's side with 1009."""
WS_MAX_QUEUE = (2, 1)
"""Frames read ahead from an instance's WebSocket (high, low water) while the
browser is slow: the rest waits in the instance's socket."""
TARGET_TTL = 2.0
"""Seconds a successful access check is reused (a page loads many assets)."""

# RFC 9110 7.6.1, and what only concerns this hop.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
    b"upgrade", b"proxy-authorization", b"proxy-authenticate", b"host", b"expect",
})
WS_HANDSHAKE = frozenset({
    b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
    b"sec-websocket-protocol", b"sec-websocket-accept", b"origin", b"user-agent", b"cookie",
})
# Set by this proxy alone.
FORWARDING = frozenset({b"x-forwarded-host", b"x-forwarded-proto"})
WS_SKIPPED = HOP_BY_HOP | WS_HANDSHAKE | FORWARDING
NO_BODY_STATUSES = frozenset({204, 304})
# Close codes an endpoint may not send (1005, 1006, 1015) become these.
_CLOSE_SUBSTITUTES = {1005: 1000, 1006: 1011, 1015: 1011}


def host_router(playground):
    """The ASGI application: port origins to the proxy, the rest to ``playground``."""

    async def route(scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await playground(scope, receive, send)
        host = _header(scope, b"host") or ""
        found = actions.parse_port_host(host)
        if found is not None:
            proxy = _proxy_http if scope["type"] == "http" else _proxy_websocket
            try:
                return await proxy(scope, receive, send, _Origin(host, *found))
            except Exception:  # logged here; Daphne answers a bare 500, no traceback
                log.exception("port proxy: %s %s failed", host, scope.get("path"))
                raise
        token = actions.request_port.set(_port_of(host, scope))
        try:
            return await playground(scope, receive, send)
        finally:
            actions.request_port.reset(token)

    return route


class _Origin:
    """The port's origin a request came to."""

    def __init__(self, host: str, instance_id: str, port: int) -> None:
        self.host = host
        self.instance_id = instance_id
        self.port = port
        self.public = f"{settings.PLAYGROUND_PORTS_SCHEME}://{host}"
        # What the server in the instance is told it is (Host, Origin).
        self.upstream_host = f"localhost:{port}"
        self.upstream = f"http://{self.upstream_host}"


# -- access --------------------------------------------------------------------------

_targets: dict[tuple[int, str], tuple[float, Target]] = {}


async def _target(granted: Pass) -> Target:
    key = (granted.user_id, granted.instance_id)
    cached = _targets.get(key)
    now = time.monotonic()
    if cached and cached[0] > now:
        return cached[1]
    target = await db(actions.proxy_target)(granted=granted)
    if len(_targets) > 10_000:
        _targets.clear()
    _targets[key] = (now + TARGET_TTL, target)
    return target


def _cookie_pass(scope, origin: _Origin) -> Pass | None:
    value = _cookies(scope).get(actions.cookie_name())
    if not value:
        return None
    return actions.read_cookie(value, instance_id=origin.instance_id, port=origin.port)


NO_PASS = (
    "This address is an instance's port: open it from its session page (or with the "
    "url the API gives in ports[]), whose link lets you in."
)
STALE_LINK = "This link has expired or is not valid: open the port again from its session page."


# -- HTTP -----------------------------------------------------------------------------

async def _proxy_http(scope, receive, send, origin: _Origin) -> None:
    query = scope.get("query_string", b"").decode("latin-1")
    parts = query.split("&") if query else []
    grants = [unquote_plus(p.partition("=")[2]) for p in parts if p.partition("=")[0] == GRANT_PARAM]
    cookie_pass = _cookie_pass(scope, origin)
    if grants:
        try:
            granted = await db(actions.consume_grant)(grants[-1], instance_id=origin.instance_id, port=origin.port)
        except Exception as exc:  # noqa: BLE001 - the cache (Redis) does not answer: say so, not 500
            log.warning("port proxy: cannot note a grant's use: %s", exc)
            return await _refuse(scope, send, 503, "unavailable", "Try again in a moment.", retry_after=5)
        # Used already (a reload of the link): the cookie it set lets its owner in.
        granted = granted or cookie_pass
        if granted is None:
            return await _refuse(scope, send, 403, "forbidden", STALE_LINK)
        try:
            await _target(granted)
        except PlaygroundError as exc:
            return await _refuse(scope, send, exc.status, exc.code, exc.message)
        rest = "&".join(p for p in parts if p.partition("=")[0] != GRANT_PARAM)
        clean = _raw_path(scope) + (f"?{rest}" if rest else "")
        cookie = f"{actions.cookie_name()}={actions.make_cookie(granted)}; Path=/; HttpOnly; SameSite=Lax"
        if settings.PLAYGROUND_PORTS_SCHEME == "https":
            cookie += "; Secure"
        return await _answer(send, 302, b"", [
            (b"location", clean.encode("latin-1")),
            (b"set-cookie", cookie.encode("latin-1")),
            (b"cache-control", b"no-store"),
            (b"referrer-policy", b"no-referrer"),
        ])
    if cookie_pass is None:
        return await _refuse(scope, send, 403, "forbidden", NO_PASS)
    try:
        target = await _target(cookie_pass)
    except PlaygroundError as exc:
        return await _refuse(scope, send, exc.status, exc.code, exc.message)
    await _forward(scope, receive, send, origin, target)


async def _forward(scope, receive, send, origin: _Origin, target: Target) -> None:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(target.ip, origin.port, limit=HEAD_LIMIT), CONNECT_TIMEOUT
        )
    except (TimeoutError, OSError) as exc:
        why = "connection refused" if isinstance(exc, ConnectionRefusedError) else "no answer"
        return await _refuse(scope, send, 502, "bad_gateway", _nothing_answers(origin, target, why))
    pump = None
    try:
        first = await receive()
        head, chunked = _request_head(scope, origin, first)
        writer.write(head)
        pump = asyncio.create_task(_pump_request(receive, writer, first, chunked))
        try:
            status, headers = await asyncio.wait_for(_response_head(reader), HEAD_TIMEOUT)
            framing = _framing(scope["method"], status, headers)
        except TimeoutError:
            return await _refuse(scope, send, 504, "gateway_timeout",
                                 f"Port {origin.port} of {target.hostname} did not answer in {HEAD_TIMEOUT:.0f} s.")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return await _refuse(scope, send, 502, "bad_gateway",
                                 f"Port {origin.port} of {target.hostname} did not answer with HTTP.")
        await send({"type": "http.response.start", "status": status,
                    "headers": _response_headers(headers, origin, target)})
        try:
            async for chunk in _response_body(reader, framing):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await rawsocket.drained(scope)  # a slow reader slows the server
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the server went away mid-answer, or broke HTTP: end what was sent
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        if pump is not None:
            pump.cancel()
        writer.close()


def _nothing_answers(origin: _Origin, target: Target, why: str) -> str:
    return (
        f"Nothing answers on port {origin.port} of {target.hostname} ({why}). A server there "
        f"must listen on 0.0.0.0:{origin.port} (all addresses), not on 127.0.0.1 only."
    )


def _request_head(scope, origin: _Origin, first: dict) -> tuple[bytes, bool]:
    """The request line and headers for the instance's server, and whether
    the body goes chunked."""
    headers = scope.get("headers") or []
    dropped = _connection_listed(headers)
    lines = [f"{scope['method']} {_raw_path(scope)}{_query(scope)} HTTP/1.1".encode("latin-1"),
             b"host: " + origin.upstream_host.encode()]
    length = None
    forwarded_for = None
    for name, value in headers:
        if name in HOP_BY_HOP or name in dropped or name in FORWARDING:
            continue
        if name == b"content-length":
            length = value
            continue
        if name == b"cookie":
            value = _filtered_cookies(value)
            if not value:
                continue
        elif name in (b"origin", b"referer"):
            value = _rewrite_prefix(value, origin.public, origin.upstream)
        elif name == b"x-forwarded-for":
            forwarded_for = value
            continue
        lines.append(name + b": " + value)
    client = (scope.get("client") or ("",))[0] or ""
    lines.append(b"x-forwarded-for: " + (forwarded_for + b", " if forwarded_for else b"") + client.encode())
    lines.append(b"x-forwarded-host: " + origin.host.encode("latin-1"))
    lines.append(b"x-forwarded-proto: " + settings.PLAYGROUND_PORTS_SCHEME.encode())
    lines.append(b"connection: close")
    chunked = False
    if length is not None:
        lines.append(b"content-length: " + length)
    elif not first.get("more_body"):
        body = first.get("body") or b""
        if body or scope["method"] not in ("GET", "HEAD", "DELETE", "OPTIONS", "TRACE"):
            lines.append(b"content-length: " + str(len(body)).encode())
    else:
        chunked = True
        lines.append(b"transfer-encoding: chunked")
    return b"\r\n".join(lines) + b"\r\n\r\n", chunked


async def _pump_request(receive, writer: asyncio.StreamWriter, first: dict, chunked: bool) -> None:
    """Send the request body as it comes, then wait for the client to leave
    (closing the upstream connection then ends the answer's relay)."""
    message = first
    try:
        while True:
            if message["type"] == "http.disconnect":
                writer.transport.abort()
                return
            body = message.get("body") or b""
            if body:
                writer.write(b"%x\r\n%s\r\n" % (len(body), body) if chunked else body)
                await writer.drain()
            if not message.get("more_body"):
                break
            message = await receive()
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        while (await receive())["type"] != "http.disconnect":
            pass
        writer.transport.abort()
    except (OSError, ConnectionError):
        return


async def _response_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]]]:
    while True:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ValueError("not HTTP/1.x")
        status = int(rest[:3])
        if status < 100 or status > 999:
            raise ValueError("bad status")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise ValueError("bad header line")
            headers.append((name.lower(), value.strip()))
        if 100 <= status < 200:
            continue  # an interim answer (100 Continue...): the final one follows
        return status, headers


def _framing(method: str, status: int, headers: list[tuple[bytes, bytes]]) -> str | int:
    """How the answer's body ends: ``"none"``, ``"chunked"``, a length, or ``"close"``."""
    if method == "HEAD" or status in NO_BODY_STATUSES:
        return "none"
    values = dict(headers)
    if b"chunked" in values.get(b"transfer-encoding", b"").lower():
        return "chunked"
    if b"content-length" in values:
        return int(values[b"content-length"])
    return "close"


async def _response_body(reader: asyncio.StreamReader, framing: str | int):
    if framing == "none":
        return
    if framing == "chunked":
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, dropped
                    pass
                return
            remaining = size
            while remaining:
                chunk = await reader.read(min(CHUNK, remaining))
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(chunk)
                yield chunk
            await reader.readexactly(2)
    elif framing == "close":
        while chunk := await reader.read(CHUNK):
            yield chunk
    else:
        remaining = framing
        while remaining > 0:
            chunk = await reader.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _response_headers(headers, origin: _Origin, target: Target) -> list[tuple[bytes, bytes]]:
    dropped = _connection_listed(headers)
    chunked = b"chunked" in dict(headers).get(b"transfer-encoding", b"").lower()
    upstreams = [origin.upstream, f"http://{target.ip}:{origin.port}"]
    if origin.port == 80:
        upstreams += ["http://localhost", f"http://{target.ip}"]
    out = []
    for name, value in headers:
        if name in HOP_BY_HOP or name in dropped or (chunked and name == b"content-length"):
            continue
        if name in (b"location", b"content-location"):
            for upstream in upstreams:
                rewritten = _rewrite_prefix(value, upstream, origin.public)
                if rewritten is not value:
                    value = rewritten
                    break
        elif name == b"set-cookie":
            value = _host_only(value)
        out.append((name, value))
    return out


# -- WebSocket --------------------------------------------------------------------------

async def _proxy_websocket(scope, receive, send, origin: _Origin) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    cookie_pass = _cookie_pass(scope, origin)
    if cookie_pass is None or not _same_origin(scope, origin):
        # The cookie lets a browser in; only a page of the port's own origin
        # may use it (a page elsewhere would act as the learner).
        return await send({"type": "websocket.close", "code": 4403})
    try:
        target = await _target(cookie_pass)
    except PlaygroundError as exc:
        code = {NotFoundError: 4404, SessionOver: 4410, NotReady: 4409}.get(type(exc), 4403)
        return await send({"type": "websocket.close", "code": code})
    headers = scope.get("headers") or []
    dropped = _connection_listed(headers)
    extra = []
    browser_origin = None
    user_agent = None
    for name, value in headers:
        if name == b"origin":
            browser_origin = _rewrite_prefix(value, origin.public, origin.upstream).decode("latin-1")
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif name == b"cookie":
            if cookies := _filtered_cookies(value):
                extra.append(("Cookie", cookies.decode("latin-1")))
        elif name not in WS_SKIPPED and name not in dropped:
            extra.append((name.decode("latin-1"), value.decode("latin-1")))
    extra.append(("X-Forwarded-Host", origin.host))
    extra.append(("X-Forwarded-Proto", settings.PLAYGROUND_PORTS_SCHEME))
    try:
        upstream = await ws_connect(
            f"ws://{origin.upstream_host}{_raw_path(scope)}{_query(scope)}",
            host=target.ip, port=origin.port, proxy=None,
            origin=Origin(browser_origin) if browser_origin else None,
            subprotocols=scope.get("subprotocols") or None,
            additional_headers=extra, user_agent_header=user_agent, compression=None,
            open_timeout=CONNECT_TIMEOUT, ping_interval=None, max_size=WS_MAX_MESSAGE,
            max_queue=WS_MAX_QUEUE,
        )
    except (TimeoutError, OSError, InvalidHandshake, InvalidURI) as exc:
        log.info("port proxy: WebSocket to %s:%s refused: %s", target.hostname, origin.port, exc)
        # Before the handshake's answer: the browser sees it refused.
        return await send({"type": "websocket.close", "code": 1014})
    await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

    queue = getattr(receive, "__self__", None)  # Daphne's receive is its queue's get
    backlog = queue.qsize if isinstance(queue, asyncio.Queue) else (lambda: 0)

    async def browser_to_instance() -> None:
        paused = False
        while True:
            message = await receive()
            # Messages waiting behind this one: the instance reads slower than
            # the browser sends. Leave the rest in the browser's socket.
            if backlog() and not paused:
                rawsocket.pause_reading(scope)
                paused = True
            elif paused and not backlog():
                rawsocket.resume_reading(scope)
                paused = False
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] != "websocket.receive":
                continue
            data = message.get("bytes")
            with contextlib.suppress(ConnectionClosed):
                await upstream.send(data if data is not None else message.get("text") or "")

    async def instance_to_browser() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for data in upstream:
                if isinstance(data, str):
                    await send({"type": "websocket.send", "text": data})
                else:
                    await send({"type": "websocket.send", "bytes": data})
                await rawsocket.drained(scope)
        code = upstream.close_code or 1000
        await send({"type": "websocket.close", "code": _CLOSE_SUBSTITUTES.get(code, code),
                    "reason": (upstream.close_reason or "")[:100]})

    tasks = [asyncio.create_task(browser_to_instance()), asyncio.create_task(instance_to_browser())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await upstream.close()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- small helpers --------------------------------------------------------------------------

def _same_origin(scope, origin: _Origin) -> bool:
    """The handshake's Origin is the port's own (a cookie handshake without one is refused)."""
    return (_header(scope, b"origin") or "").strip().lower() == origin.public.lower()


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


def _port_of(host: str, scope) -> int:
    """The port of a Host header (or the scheme's default)."""
    _, colon, port = host.rpartition(":")
    if colon and port.isdigit() and not host.endswith("]"):
        return int(port)
    return 443 if scope.get("scheme") in ("https", "wss") else 80


def _raw_path(scope) -> str:
    raw = scope.get("raw_path")
    if raw:
        return raw.decode("latin-1").split("?", 1)[0] or "/"
    return quote(scope.get("path") or "/")


def _query(scope) -> str:
    query = scope.get("query_string") or b""
    return "?" + query.decode("latin-1") if query else ""


def _cookies(scope) -> dict[str, str]:
    found = {}
    for name, value in scope.get("headers") or ():
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, eq, val = part.strip().partition("=")
                if eq:
                    found.setdefault(key, val)
    return found


def _filtered_cookies(value: bytes) -> bytes:
    """A Cookie header without the proxy's and the playground's cookies."""
    ours = {actions.COOKIE_NAME, actions.cookie_name(), settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}
    kept = [p.strip() for p in value.split(b";")
            if p.strip() and p.strip().partition(b"=")[0].decode("latin-1") not in ours]
    return b"; ".join(kept)


def _connection_listed(headers) -> set[bytes]:
    listed = set()
    for name, value in headers:
        if name == b"connection":
            listed.update(v.strip().lower() for v in value.split(b",") if v.strip())
    return listed


def _rewrite_prefix(value: bytes, old: str, new: str) -> bytes:
    """``value`` with ``old`` at its start replaced (the same object if not there)."""
    old_bytes = old.encode("latin-1")
    if value == old_bytes or value.startswith((old_bytes + b"/", old_bytes + b"?")):
        return new.encode("latin-1") + value[len(old_bytes):]
    return value


def _host_only(set_cookie: bytes) -> bytes:
    """A Set-Cookie without a ``Domain``: a server in an instance may not set
    cookies for its parent domain (where the playground may live)."""
    parts = set_cookie.split(b";")
    return b";".join(p for i, p in enumerate(parts) if i == 0 or not p.strip().lower().startswith(b"domain="))


async def _answer(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _refuse(scope, send, status: int, code: str, message: str, *, retry_after: int | None = None) -> None:
    """docs/api.md's JSON error, or a small page for a browser that asks for HTML."""
    accept = (_header(scope, b"accept") or "").lower()
    if "text/html" in accept:
        body = _ERROR_PAGE.format(status=status, message=html.escape(message)).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        body = json.dumps(error_body(code, message)).encode()
        content_type = b"application/json"
    headers = [(b"content-type", content_type), (b"cache-control", b"no-store")]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await _answer(send, status, body, headers)


_ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{status} · Container playground</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1d2330}}
h1{{font-size:1.3rem}}</style></head>
<body><h1>Container playground: {status}</h1><p id="message">{message}</p></body></html>
"""
