"""A WebSocket on its own socket: the terminal's frames without Twisted.

Through Daphne every keystroke and every echo passes Twisted's reactor,
Autobahn's framing, Daphne's queue and Channels' dispatch: about 0.4 ms of
Python per keystroke, and over 1 ms when the caches went cold since the last
one (as between the keys of someone typing), most of the echo's time. On its
own socket a frame costs a read, the ``websockets`` library's sans-I/O parser
and a write.

``offer()`` (called once from ``asgi.py``) makes Daphne put
``"playground.socket"`` in the ``extensions`` of a WebSocket's scope when the
connection is a plain socket (not TLS). After accepting, a consumer may call
``take()``: the socket leaves Twisted (which neither reads nor writes it again,
nor pings it, nor times it out) together with what Twisted had yet to send (the
handshake's answer) and what Autobahn had read and not yet parsed; the messages
Daphne had queued for the application come back to be handled first. When the
connection ends, the socket goes back to Twisted to be closed, and Daphne tells
the application (``websocket.disconnect``) as for any connection.

``offer()`` also puts the connection's Twisted protocol in every HTTP and
WebSocket scope (``"playground.flow"``), for flow control through ASGI
(``drained``, ``pause_reading``: the port proxy's backpressure), and
``limit_request_bodies()`` refuses a request body over a size as it arrives.

The hand-over reaches into Daphne's, Twisted's, Autobahn's and Channels'
internals (and drives ``websockets``' sans-I/O protocol from outside), which
no release promises to keep: ``offer()`` offers sockets only when the
installed versions are the ones this was written for (``WRITTEN_FOR``, the
pins of requirements.txt). On any other it logs a warning, once, and every
terminal goes through ASGI, as with ``PLAYGROUND_TERMINAL_DIRECT=false``:
slower, never broken.

Everything here runs on the event loop's thread, as Twisted does.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import socket
import time
from collections import deque
from collections.abc import Callable

from websockets.frames import Opcode
from websockets.protocol import CLOSED, OPEN, Protocol, Side

log = logging.getLogger(__name__)
# websockets logs every closed connection at INFO; the web tier's own log says enough.
_frames_log = logging.getLogger(f"{__name__}.frames")
_frames_log.setLevel(logging.WARNING)

EXTENSION = "playground.socket"
CLOSE_TIMEOUT = 2.0
"""Seconds to wait for the client's half of the closing handshake."""
READ_SIZE = 256 * 1024

_WOULD_BLOCK = (BlockingIOError, InterruptedError)


WRITTEN_FOR = {
    "daphne": "4.2.3",
    "twisted": "26.10.0",
    "autobahn": "26.10.2",
    "channels": "4.3.2",
    "websockets": "17.4",
}
"""The versions whose internals the hand-over was written against and tested
with (requirements.txt pins the same: tests/unit/test_fast_path_guard.py)."""

_mismatch_logged = False


def version_mismatches() -> dict[str, str | None]:
    """Each package of ``WRITTEN_FOR`` installed at another version (None: not
    installed at all), with that version."""
    found: dict[str, str | None] = {}
    for name, wanted in WRITTEN_FOR.items():
        try:
            have: str | None = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have != wanted:
            found[name] = have
    return found


def fast_path_supported() -> bool:
    """Whether sockets may be handed over; on other versions than
    ``WRITTEN_FOR``, False, and a warning in the log (once per process)."""
    global _mismatch_logged
    mismatches = version_mismatches()
    if not mismatches:
        return True
    if not _mismatch_logged:
        _mismatch_logged = True
        log.warning(
            "terminal WebSockets go through ASGI, not on their own sockets: the hand-over was written for %s; "
            "installed: %s",
            ", ".join(f"{name} {WRITTEN_FOR[name]}" for name in mismatches),
            ", ".join(f"{name} {have or 'missing'}" for name, have in mismatches.items()),
        )
    return False


def offer() -> None:
    """Make Daphne offer the socket of each plain WebSocket connection in its
    scope (idempotent; nothing when not running under Daphne). Flow control
    (``"playground.flow"``) is offered in any case; sockets only where
    ``fast_path_supported()``."""
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return
    if getattr(Server, "_playground_offers_sockets", False):
        return
    create = Server.create_application
    sockets = fast_path_supported()

    def create_application(self, protocol, scope):
        extensions = scope.setdefault("extensions", {})
        extensions[FLOW] = {"protocol": protocol}
        if sockets and isinstance(protocol, WebSocketProtocol) and _plain(protocol.transport):
            extensions[EXTENSION] = {"protocol": protocol}
        return create(self, protocol, scope)

    Server.create_application = create_application
    Server._playground_offers_sockets = True


# -- flow control through Daphne ------------------------------------------------------
#
# Daphne's ASGI ``send`` hands the bytes to Twisted, which queues whatever the
# socket does not take at once, without limit and without telling the
# application: a client that reads slowly makes the web process hold all that
# was sent it. With the connection's Twisted protocol in the scope (``offer()``
# puts it there for HTTP and WebSocket alike) an application can wait for that
# queue to drain (``drained``) and stop reading a client it cannot keep up with
# (``pause_reading``).

FLOW = "playground.flow"
WRITE_LIMIT = 1024 * 1024
"""Bytes a connection may have queued for its client before ``drained`` waits."""
_DRAIN_POLLS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
"""Seconds between looks at a full queue (a stalled client costs ten wakeups a second)."""


def _transport_of(scope: dict):
    offered = scope.get("extensions", {}).get(FLOW)
    if not offered:
        return None
    protocol = offered["protocol"]
    if hasattr(protocol, "channel"):  # HTTP: the request's connection, None once finished
        channel = protocol.channel
        return getattr(channel, "transport", None) if channel is not None else None
    return getattr(protocol, "transport", None)


def queued_bytes(scope: dict) -> int:
    """Bytes Twisted holds for the client of ``scope`` (0 when not under Daphne,
    or for a transport it cannot tell)."""
    transport = _transport_of(scope)
    for _ in range(3):  # TLS wraps the TCP connection, whose buffer is the one that fills
        if transport is None:
            return 0
        if hasattr(transport, "dataBuffer"):
            return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        transport = getattr(transport, "transport", None)
    return 0


def _gone(transport) -> bool:
    return transport is None or getattr(transport, "disconnected", False) or getattr(transport, "disconnecting", False)


async def drained(scope: dict, limit: int = WRITE_LIMIT) -> None:
    """Return once the client of ``scope`` has less than ``limit`` bytes queued
    (or is gone): call it after each ``send`` of a stream, so a slow reader
    slows the stream instead of filling this process's memory."""
    if queued_bytes(scope) < limit:
        return
    polls = 0
    while queued_bytes(scope) >= limit // 2 and not _gone(_transport_of(scope)):
        await asyncio.sleep(_DRAIN_POLLS[min(polls, len(_DRAIN_POLLS) - 1)])
        polls += 1


def pause_reading(scope: dict) -> None:
    """Stop reading the client of ``scope`` (its bytes wait in the kernel, then in
    the client's own buffers) until ``resume_reading``."""
    transport = _transport_of(scope)
    if transport is not None and not _gone(transport) and hasattr(transport, "pauseProducing"):
        transport.pauseProducing()


def resume_reading(scope: dict) -> None:
    transport = _transport_of(scope)
    if transport is not None and not _gone(transport) and hasattr(transport, "resumeProducing"):
        transport.resumeProducing()


# -- request bodies ------------------------------------------------------------------
#
# Twisted reads a request's whole body (into memory, or a temporary file past
# 100 kB) before Daphne starts the application, and Daphne then queues all of
# it in memory: Django's own size checks come too late. ``limit_request_bodies``
# refuses a body over the limit as it arrives: at once when its Content-Length
# says so, else when the bytes received pass it. The answer goes out at once;
# the rest of the body is read and dropped for at most BODY_LINGER seconds (so
# a client that sends before it reads still gets the answer, not a reset, as
# nginx's lingering close does), then the connection closes.

BODY_LINGER = 5.0


def limit_request_bodies(limit: int) -> None:
    """Make Daphne answer 400 ``invalid`` (docs/api.md's JSON) and close the
    connection as soon as a request's body is known to pass ``limit`` bytes
    (idempotent; nothing when not running under Daphne)."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:
        return
    WebRequest._playground_body_limit = limit
    if getattr(WebRequest, "_playground_limits_bodies", False):
        return
    got_length, handle_chunk, process = WebRequest.gotLength, WebRequest.handleContentChunk, WebRequest.process

    def gotLength(self, length):
        self._playground_body = 0
        if length is not None and length > self._playground_body_limit:
            return _refuse_body(self)
        return got_length(self, length)

    def handleContentChunk(self, data):
        if getattr(self, "_playground_refused", False):
            return
        self._playground_body = getattr(self, "_playground_body", 0) + len(data)
        if self._playground_body > self._playground_body_limit:
            return _refuse_body(self)
        return handle_chunk(self, data)

    def guarded_process(self):
        if getattr(self, "_playground_refused", False):
            # Answered already (the application never sees a cut body); the
            # whole body came: nothing to linger for.
            transport = getattr(self.channel, "transport", None)
            if transport is not None:
                transport.loseConnection()
            return None
        return process(self)

    WebRequest.gotLength = gotLength
    WebRequest.handleContentChunk = handleContentChunk
    WebRequest.process = guarded_process
    WebRequest._playground_limits_bodies = True


def _refuse_body(request) -> None:
    import io
    import json

    request._playground_refused = True
    request.content = io.BytesIO()  # what was kept is dropped
    channel = request.channel
    transport = getattr(channel, "transport", None)
    if transport is None:
        return
    body = json.dumps({"error": {"code": "invalid", "message": (
        f"The request body is larger than {request._playground_body_limit} bytes.")}}).encode()
    transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
    from twisted.internet import reactor

    reactor.callLater(BODY_LINGER, transport.loseConnection)


def _plain(transport) -> bool:
    """A connection whose socket carries the WebSocket's bytes as they are."""
    from twisted.internet.tcp import Connection as TCPConnection

    return isinstance(transport, TCPConnection) and getattr(transport, "socket", None) is not None


def _nothing(*args, **kwargs) -> None:
    return None


def take(scope: dict, *, on_message: Callable[[bytes | str], None]) -> tuple[Connection, list[dict]] | None:
    """The accepted WebSocket of ``scope`` on its own socket, with the ASGI
    messages Daphne had queued for the application (handle them first); None
    when the server does not offer it or the connection is not in a state to
    be handed over (then go on through ASGI).

    ``on_message`` gets each message the client sends: ``bytes`` for binary,
    ``str`` for text. Reading starts with ``Connection.start()``."""
    offered = scope.get("extensions", {}).get(EXTENSION)
    if not offered:
        return None
    protocol = offered["protocol"]
    transport = protocol.transport
    if (
        getattr(protocol, "_playground_taken", False)
        or protocol.state != protocol.STATE_OPEN
        or protocol.current_frame is not None  # Autobahn is inside a frame
        or protocol.inside_message
        or protocol.websocket_extensions_in_use
        or not transport.connected
        or transport.disconnecting
    ):
        return None
    protocol._playground_taken = True
    transport.stopReading()
    transport.stopWriting()
    unsent = bytes(transport.dataBuffer[transport.offset :]) + b"".join(transport._tempDataBuffer)
    transport.dataBuffer, transport.offset = b"", 0
    transport._tempDataBuffer, transport._tempDataLen = [], 0
    # Nothing in Twisted, Autobahn or Daphne touches the socket from now on.
    transport.startReading = transport.startWriting = _nothing
    protocol.check_timeouts = _nothing  # Daphne's pings and timeouts: ours now
    protocol.handle_exception = _nothing  # the application closes with 1011 itself
    unparsed, protocol.data = protocol.data, b""
    queued = []
    while not protocol.application_queue.empty():
        queued.append(protocol.application_queue.get_nowait())
    server = protocol.factory.server_class
    connection = Connection(
        transport,
        on_message=on_message,
        max_size=server.websocket_max_message_size or None,  # Daphne's 0 is "no limit"
        ping_interval=server.ping_interval,
        ping_timeout=server.ping_timeout,
        unsent=unsent,
        unparsed=unparsed,
    )
    return connection, queued


class Connection:
    """One WebSocket (server side) on a non-blocking socket: frames parsed and
    made by ``websockets``' sans-I/O ``Protocol``, reads and writes straight
    from the event loop. Writes go out at once; what the socket does not take
    waits, in order, for it to drain."""

    def __init__(self, transport, *, on_message: Callable[[bytes | str], None], max_size: int,
                 ping_interval: float, ping_timeout: float, unsent: bytes = b"", unparsed: bytes = b"") -> None:
        self._transport = transport
        self._sock: socket.socket = transport.socket
        self._fd = self._sock.fileno()
        self._loop = asyncio.get_running_loop()
        self._ws = Protocol(Side.SERVER, state=OPEN, max_size=max_size, logger=_frames_log)
        self._on_message = on_message
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._out: deque[memoryview] = deque()
        self._writing = False
        self._reading = False
        self._shut = False  # our side of TCP, once the protocol ended its stream and all is out
        self._parts: list[bytes] = []  # a fragmented message's frames so far
        self._opcode: Opcode | None = None
        self._unparsed = unparsed
        self._last_heard = time.monotonic()
        self._pinged = False
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self.ended = False
        if unsent:
            self._out.append(memoryview(unsent))
            self._flush()

    @property
    def buffered(self) -> int:
        """Bytes written and not yet taken by the socket."""
        return sum(len(chunk) for chunk in self._out)

    def start(self) -> None:
        """Begin reading (the bytes Autobahn had read first)."""
        if self.ended or self._reading:
            return
        self._loop.add_reader(self._fd, self._on_readable)
        self._reading = True
        if not self._closing:
            self._arm(self._ping_interval)
        if self._unparsed:
            data, self._unparsed = self._unparsed, b""
            self._received(data)

    # -- sending --------------------------------------------------------------------
    def send_bytes(self, data: bytes) -> None:
        if self._ws.state is OPEN:
            self._ws.send_binary(data)
            self._push()

    def send_text(self, text: str) -> None:
        if self._ws.state is OPEN:
            self._ws.send_text(text.encode())
            self._push()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the connection ends when the client
        answers, or after ``CLOSE_TIMEOUT``."""
        if self._ws.state is OPEN:
            self._ws.send_close(code, reason)
            self._push()

    def _push(self) -> None:
        if self.ended:  # the socket is Twisted's again (closed): nothing more goes out
            self._ws.data_to_send()
            return
        for data in self._ws.data_to_send():
            if data:  # (b"" is the protocol's end of stream: self._ws.eof_sent)
                self._out.append(memoryview(data))
        self._flush()
        if self._ws.state is not OPEN and not self._closing and not self.ended:
            self._closing = True  # the keepalive gives way to the closing handshake's deadline
            self._arm(CLOSE_TIMEOUT)

    def _flush(self) -> None:
        while self._out:
            chunk = self._out[0]
            try:
                sent = self._sock.send(chunk)
            except _WOULD_BLOCK:
                sent = 0
            except OSError as exc:
                return self._end(f"write failed: {exc}")
            if sent < len(chunk):
                self._out[0] = chunk[sent:]
                if not self._writing:
                    self._loop.add_writer(self._fd, self._flush)
                    self._writing = True
                return
            self._out.popleft()
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        if self._ws.eof_sent and not self._shut and not self.ended:
            self._shut = True
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if self._shut and self._ws.state is CLOSED:
            self._end("closed")

    # -- receiving -------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(READ_SIZE)
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            return self._end(f"read failed: {exc}")
        if not data:
            self._ws.receive_eof()
            self._push()
            return self._end("the client closed the connection")  # (if _push did not already)
        self._received(data)

    def _received(self, data: bytes) -> None:
        self._last_heard = time.monotonic()
        self._pinged = False
        self._ws.receive_data(data)
        for frame in self._ws.events_received():
            if self.ended:
                return
            opcode = frame.opcode
            if opcode is Opcode.CONT:
                self._parts.append(frame.data)
                if not frame.fin:
                    continue
                opcode, self._opcode = self._opcode, None
                data, self._parts = b"".join(self._parts), []
            elif opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if not frame.fin:
                    self._opcode, self._parts = opcode, [frame.data]
                    continue
                data = frame.data
            else:  # ping (answered by the protocol), pong, close
                continue
            if opcode is Opcode.TEXT:
                try:
                    message: bytes | str = data.decode()
                except UnicodeDecodeError as exc:
                    self._ws.fail(1007, f"{exc.reason} at position {exc.start}")
                    break
            else:
                message = data
            if self._ws.state is OPEN:
                self._on_message(message)
        self._push()

    # -- keepalive and the end -----------------------------------------------------------
    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.ended:
            return
        if self._ws.state is not OPEN:  # the client never finished the closing handshake
            return self._end("no answer to the close frame")
        quiet = time.monotonic() - self._last_heard
        if self._pinged and quiet >= self._ping_interval + self._ping_timeout:
            return self._end("no answer to a ping")
        if quiet >= self._ping_interval and not self._pinged:
            self._ws.send_ping(b"")
            self._pinged = True
            self._push()
        self._arm(self._ping_interval if not self._pinged else self._ping_timeout)

    def _end(self, why: str) -> None:
        """Give the socket back to Twisted, which closes it and tells Daphne."""
        if self.ended:
            return
        self.ended = True
        log.debug("websocket on fd %s: %s", self._fd, why)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        self._out.clear()
        from twisted.internet import error
        from twisted.python import failure

        clean = self._ws.close_rcvd is not None and self._ws.close_sent is not None
        reason = error.ConnectionDone() if clean else error.ConnectionLost(why)
        self._transport.connectionLost(failure.Failure(reason))
