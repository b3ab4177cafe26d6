"""Who is on the other end of a WebSocket, decided at the handshake (docs/api.md).

* ``Authorization: Token <key>`` (scripts): the token decides, whatever
  cookie comes with it; a bad key is refused (4401), never ignored in favour
  of the cookie. No Origin is needed: a browser cannot put the header on a
  WebSocket, so a token handshake is no cross-site request.
* Otherwise Django's cookie session (browsers, guests included), which must
  come with an ``Origin`` among ``ALLOWED_HOSTS``: the browser sends the
  cookie to any page that opens the socket, so a foreign or missing Origin is
  refused (4403). Channels' ``AllowedHostsOriginValidator`` would also refuse
  token handshakes without an Origin, hence this rule of our own.

Refusals are sent as close codes, which a browser only sees after an
accepted handshake: the socket is accepted, then closed at once.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from django.conf import settings
from django.http.request import validate_host

UNAUTHENTICATED = 4401
FORBIDDEN = 4403


def websocket_application(inner):
    """``inner`` (a URLRouter of consumers) behind the handshake rules; the
    scope it sees has ``user`` (authenticated) and ``auth`` (``"token"`` or
    ``"cookie"``)."""
    return _HandshakeAuth(inner)


class _HandshakeAuth:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.cookie_stack = AuthMiddlewareStack(_CookieRule(inner))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        key = _token_key(scope)
        if key is None:
            return await self.cookie_stack(scope, receive, send)
        user = await _token_user(key) if key else None
        if user is None:
            return await refuse(UNAUTHENTICATED, receive, send)
        return await self.inner({**scope, "user": user, "auth": "token"}, receive, send)


class _CookieRule:
    """After Channels' auth stack: a signed-in cookie session from one of our origins."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        user = getattr(scope.get("user"), "_wrapped", scope.get("user"))
        if user is None or not user.is_authenticated:
            return await refuse(UNAUTHENTICATED, receive, send)
        if not origin_allowed(_header(scope, b"origin")):
            return await refuse(FORBIDDEN, receive, send)
        return await self.inner({**scope, "user": user, "auth": "cookie"}, receive, send)


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return None


def _token_key(scope) -> str | None:
    """The key of an ``Authorization: Token`` header; ``""`` for a malformed
    one; None when there is no such header (another scheme is not ours, as
    for DRF's TokenAuthentication)."""
    raw = _header(scope, b"authorization")
    if raw is None:
        return None
    parts = raw.decode("latin-1").split()
    if not parts or parts[0].lower() != "token":
        return None
    return parts[1] if len(parts) == 2 else ""


async def _token_user(key: str):
    # On the terminals' thread pool, not on Channels' single database thread.
    from playground.sessions.terminal import db

    return await db(_token_owner)(key)


def _token_owner(key: str):
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


def origin_allowed(origin: bytes | None) -> bool:
    """Whether an Origin header names one of the playground's own hosts."""
    if not origin:
        return False
    try:
        parts = urlsplit(origin.decode("latin-1").strip())
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if ":" in host:  # an IPv6 address, written as ALLOWED_HOSTS writes it
        host = f"[{host}]"
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:  # as Django itself allows
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return validate_host(host, allowed)


async def refuse(code: int, receive, send) -> None:
    """Accept the handshake and close with ``code`` (an ASGI app of its own)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def close_oversized_frames_cleanly() -> None:
    """Make Daphne answer a frame over its size limit (1 MiB by default, its
    ``--websocket-max-message-size``) with close code 1009, as docs/api.md says.

    Autobahn, under Daphne, fails such a connection by dropping the TCP
    connection (``failByDrop``, on by default for servers): the client would
    only see 1006. Close frames instead. Called once, from ``asgi.py``, before
    Daphne builds its WebSocket factory.
    """
    try:
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:  # not running under Daphne
        return
    if getattr(WebSocketFactory, "_playground_close_frames", False):
        return
    reset = WebSocketFactory.resetProtocolOptions

    def reset_with_close_frames(self) -> None:
        reset(self)
        self.failByDrop = False

    WebSocketFactory.resetProtocolOptions = reset_with_close_frames
    WebSocketFactory._playground_close_frames = True
