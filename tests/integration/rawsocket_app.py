"""A bare ASGI application for test_rawsocket_daphne.py, run by a real Daphne
(``python -m daphne tests.integration.rawsocket_app:application``): every
WebSocket is accepted, taken off Twisted with ``playground.rawsocket`` and
echoed, message by message (binary as binary, text as text), the messages
Daphne had queued before the take first.

Paths:
  ``/asgi/``     never take: everything goes through Daphne (the baseline);
  ``/slow/``     wait 0.3 s between accepting and taking, so that what the
                 client sends right after the handshake is queued by Daphne;
  ``/hold/N/``   wait (at most 10 s) until Daphne has queued N messages, then take;
  anything else: take at once.

Text commands (answered, not echoed):
  ``who``             "direct" when the socket was taken, "asgi" when not;
  ``queued``          how many ``websocket.receive`` messages the take handed back;
  ``close:NNNN``      close with that code;
  ``disconnects``     how many ``websocket.disconnect`` the application got so far;
  ``disconnected:P``  how many of them were for connections to path P;
  ``strays``          how many messages other than ``websocket.disconnect``
                      reached ``receive()`` after a take (there should be none).

Importing ``playground`` loads its Celery app (lazily configured: Django's
settings are never read), nothing of Django is set up here.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from playground import rawsocket

rawsocket.offer()
logging.getLogger("playground.rawsocket").setLevel(logging.DEBUG)  # why each connection ended, in Daphne's log

SLOW = 0.3
HOLD_LIMIT = 10.0

disconnects = 0
disconnected_paths: Counter[str] = Counter()
strays: list[str] = []


def _answer(message: bytes | str, *, taken: bool, queued: int | None) -> tuple[str, bytes | str | int]:
    """("send", data) or ("close", code)."""
    if isinstance(message, str):
        if message == "who":
            return "send", "direct" if taken else "asgi"
        if message == "queued":
            return "send", "-" if queued is None else str(queued)
        if message == "disconnects":
            return "send", str(disconnects)
        if message.startswith("disconnected:"):
            return "send", str(disconnected_paths[message.removeprefix("disconnected:")])
        if message == "strays":
            return "send", str(len(strays))
        if message.startswith("close:"):
            return "close", int(message.removeprefix("close:"))
    return "send", message


def _disconnected(scope: dict, message: dict) -> None:
    global disconnects
    disconnects += 1
    disconnected_paths[scope["path"]] += 1


async def _hold(scope: dict) -> None:
    path = scope["path"]
    if path == "/slow/":
        await asyncio.sleep(SLOW)
    elif path.startswith("/hold/"):
        wanted = int(path.split("/")[2])
        # Peeks at Daphne's queue of messages for the application (what take() drains).
        protocol = scope["extensions"][rawsocket.EXTENSION]["protocol"]
        deadline = time.monotonic() + HOLD_LIMIT
        while protocol.application_queue.qsize() < wanted and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


async def application(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"websockets only\n"})
        return
    if scope["type"] != "websocket":
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return _disconnected(scope, message)
    await send({"type": "websocket.accept"})
    await _hold(scope)

    taken = None
    if scope["path"] != "/asgi/":
        conn: rawsocket.Connection | None = None

        def on_message(message: bytes | str) -> None:
            try:
                what, data = _answer(message, taken=True, queued=len(queued))
                if what == "close":
                    conn.close(data)
                elif isinstance(data, bytes):
                    conn.send_bytes(data)
                else:
                    conn.send_text(data)
            except Exception:
                logging.getLogger(__name__).exception("on_message failed")
                conn.close(1011)

        taken = rawsocket.take(scope, on_message=on_message)
    if taken is not None:
        conn, queued_messages = taken
        queued = [m for m in queued_messages if m["type"] == "websocket.receive"]
        for message in queued_messages:
            if message["type"] == "websocket.receive":
                on_message(message["bytes"] if message.get("bytes") is not None else message["text"])
            elif message["type"] == "websocket.disconnect":
                return _disconnected(scope, message)
        conn.start()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return _disconnected(scope, message)
            strays.append(message["type"])

    while True:  # through ASGI
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return _disconnected(scope, message)
        if message["type"] != "websocket.receive":
            continue
        data = message["bytes"] if message.get("bytes") is not None else message["text"]
        what, data = _answer(data, taken=False, queued=None)
        if what == "close":
            await send({"type": "websocket.close", "code": data})
        elif isinstance(data, bytes):
            await send({"type": "websocket.send", "bytes": data})
        else:
            await send({"type": "websocket.send", "text": data})
