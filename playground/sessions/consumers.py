"""The terminal WebSocket, ``/ws/instances/{iid}/terminal/`` (docs/api.md).

Thin: the handshake's caller comes from ``playground.wsauth``, the rules from
``actions``, the shared TTY from ``terminal.Hub``. The session's channel-layer
group (``actions.session_group``) brings its status and expiry events; the
terminal's bytes never go through the channel layer.

Control: a class's instructor may open a learner's terminal. Their
connection is read-only (typing closes it with 4403, resizing is ignored)
until they send ``takeover``; from then until ``release`` (or until they
leave) the instructor types and the owner's input is dropped. Every
connection to the terminal gets ``{"type": "control", "by": ...}`` on connect
and on each change. ``takeover``/``release`` from the owner change nothing and
are answered with the control event again.

The socket: where Daphne offers it (``playground.rawsocket``, plain
connections) and ``PLAYGROUND_TERMINAL_DIRECT`` is on, the consumer takes the
accepted WebSocket's socket and reads and writes its frames itself, from the
event loop: a keystroke and its echo skip Twisted, Autobahn, Daphne's queue
and Channels. The handshake, the checks and the disconnect stay Daphne's and
Channels'. Elsewhere (TLS, another server) frames go through ASGI as usual.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from playground import metrics, rawsocket
from playground.errors import NotFoundError, SessionOver

from . import actions, connections, terminal

log = logging.getLogger(__name__)

FORBIDDEN = 4403
GONE = 4404
SESSION_OVER = 4410
RATE_LIMITED = 4429
SERVICE_RESTART = 1012
STOPPING_SECONDS = 5.0
"""The most a stopping server waits for a connection's cleanup."""

# Sane terminal sizes; xterm.js reports what fits its element.
COLS = (2, 1000)
ROWS = (2, 500)
PROVISIONING_POLL = 0.1
CONNECTIONS_RETRY = 10
"""Seconds a connection over the user's cap is told to wait (a tab closing frees a place)."""


class TokenBucket:
    """``rate`` a second, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, amount: float) -> float:
        """0 if ``amount`` may pass now, else the seconds until it could."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= amount:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.rate


class TerminalConsumer(AsyncWebsocketConsumer):
    async def __call__(self, scope, receive, send):
        """Channels' loop, leaner on the keystroke path: the socket's messages
        are awaited straight from Daphne's queue in this task, and the channel
        layer's (rare) events in a task of their own, where Channels would make
        and wait on a new task for every message of either."""
        self.scope = scope
        self.base_send = send
        self.rejoin = False  # the session's group must be joined again
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        events = None
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            events = asyncio.get_running_loop().create_task(self._layer_events())
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        except asyncio.CancelledError:
            await self._server_stopping()
            raise
        finally:
            if events is not None:
                events.cancel()

    async def _server_stopping(self) -> None:
        """Daphne cancels every connection when it stops (SIGTERM: a restart)
        and calls no ``disconnect``: do its work (an instructor's keyboard goes
        back to the learner, the session's group is left), then close with
        1012 (service restart); the client reconnects, to another process."""
        if not hasattr(self, "viewer"):
            return  # not connected yet
        try:
            await asyncio.wait_for(self.disconnect(SERVICE_RESTART), timeout=STOPPING_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the process ends anyway
            log.warning("terminal of %s: cleaning up on the way out: %s", getattr(self, "instance_id", "?"), exc)
        if getattr(self, "conn", None) is not None:
            self.conn.close(SERVICE_RESTART)
        else:
            try:
                await self.close(code=SERVICE_RESTART)
            except Exception:  # noqa: BLE001, S110 - the socket may be gone already
                pass

    async def _layer_events(self) -> None:
        while True:
            try:
                if self.rejoin and getattr(self, "group", None):
                    # A Redis that came back may have lost the session's
                    # group (it keeps nothing on disk): join it again.
                    await self.channel_layer.group_add(self.group, self.channel_name)
                    log.info("terminal of %s: session events again", self.instance_id)
                self.rejoin = False
                event = await self.channel_layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis may be back soon; the terminal goes on
                log.warning("terminal of %s: channel layer: %s", getattr(self, "instance_id", "?"), exc)
                self.rejoin = True
                await asyncio.sleep(1.0)
                continue
            await self.dispatch(event)

    async def dispatch(self, message):
        # Channels closes stale database connections before every message, a
        # hop to its one database thread per keystroke; our database calls run
        # through terminal.db, which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        try:
            await handler(message)
        except StopConsumer:
            raise
        except Exception:
            self._failed()
            raise  # Daphne closes the socket with 1011 (we do, when the socket is ours)

    def _failed(self) -> None:
        log.exception("terminal of %s failed", getattr(self, "instance_id", "?"))
        self._leave()
        if getattr(self, "conn", None) is not None:
            self.conn.close(1011)

    # -- connecting ------------------------------------------------------------------
    async def connect(self) -> None:
        self.hub: terminal.Hub | None = None
        self.viewer = terminal.Viewer()
        self.group: str | None = None
        self.tasks: set[asyncio.Task] = set()
        self.early_input = bytearray()
        self.size: tuple[int, int] | None = None
        self.last_activity = 0.0
        self.role = "owner"
        self.control = "owner"
        self.holds_control = False
        self.slot: str | None = None
        self.instance_id = self.scope["url_route"]["kwargs"]["iid"]
        self.user = self.scope["user"]
        self.input_bytes = TokenBucket(
            settings.PLAYGROUND_TERMINAL_INPUT_KB_RATE * 1024,
            settings.PLAYGROUND_TERMINAL_INPUT_KB_BURST * 1024,
        )
        self.input_frames = TokenBucket(
            settings.PLAYGROUND_TERMINAL_FRAME_RATE,
            settings.PLAYGROUND_TERMINAL_FRAME_BURST,
        )
        # Close codes only reach a browser after the handshake: accept first.
        await self.accept()
        self.conn: rawsocket.Connection | None = None
        queued: list[dict] = []
        if settings.PLAYGROUND_TERMINAL_DIRECT:
            taken = rawsocket.take(self.scope, on_message=self._on_socket_message)
            if taken is not None:
                self.conn, queued = taken
                self.viewer.deliver_to(self._deliver)
                _note_direct()
        if self.conn is None:
            self._spawn(self._send_frames())
        try:
            await self._open()
        finally:
            if self.conn is not None:
                # What the client sent meanwhile, in order: Daphne's queue first.
                for message in queued:
                    if message["type"] == "websocket.receive":
                        data = message.get("bytes")
                        self._on_socket_message(data if data is not None else message.get("text", ""))
                self.conn.start()

    async def _open(self) -> None:
        """The instance, the session's events, the hub."""
        self.slot = await terminal.in_pool(connections.take_slot, self.user.pk)
        if self.slot is None:
            cap = settings.PLAYGROUND_WS_CONNECTIONS_PER_USER
            self.viewer.event({
                "type": "error", "code": "too_many_connections", "retry_after": CONNECTIONS_RETRY,
                "message": f"You have {cap} terminal connections open already: close some tabs or windows.",
            })
            return self.viewer.close(RATE_LIMITED)
        connections.keep_renewing(terminal.in_pool)
        terminal.pool().submit(metrics.terminal_opened)  # not waited for, as release_slot below
        try:
            target = await self._lookup()
        except NotFoundError:
            return self.viewer.close(GONE)
        except SessionOver:
            return self._session_over()
        self.session_id = target.session_id
        self.role = target.role
        self.group = actions.session_group(target.session_id)
        try:
            await self.channel_layer.group_add(self.group, self.channel_name)
        except Exception as exc:  # noqa: BLE001 - the hub notices a session's end by itself too
            log.warning("terminal of %s: no session events until Redis answers: %s", self.instance_id, exc)
            self.rejoin = True
        # Read after joining the group: a takeover in between is then heard, not missed.
        self.control = await terminal.db(actions.terminal_control)(instance_id=self.instance_id)
        if target.state == "running":
            self._join(target)
        elif target.state == "provisioning":
            self.viewer.event({"type": "status", "state": "provisioning"})
            self._spawn(self._wait_running())
        else:
            self.viewer.event({"type": "status", "state": "exited"})
        self.viewer.event({"type": "control", "by": self.control})
        self.viewer.event({"type": "expiry", "expires_at": target.expires_at})

    def _lookup(self):
        return terminal.db(actions.terminal_target)(user=self.user, instance_id=self.instance_id)

    def _join(self, target: actions.TerminalTarget) -> None:
        user, instance_id = self.user, self.instance_id

        def refresh():
            return terminal.db(actions.terminal_target)(user=user, instance_id=instance_id)

        self.hub = terminal.hub_for(target, refresh=refresh)
        self.hub.join(self.viewer)
        if self.size:
            self.hub.resize(*self.size)
        if self.early_input:
            self._write(bytes(self.early_input))
            self.early_input.clear()

    async def _wait_running(self) -> None:
        """Poll a provisioning instance until it runs (workers write no events)."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(PROVISIONING_POLL if time.monotonic() - started < 60 else 1.0)
            try:
                target = await self._lookup()
            except NotFoundError:
                return self.viewer.close(GONE)
            except SessionOver:
                return self._session_over()
            if target.state == "running":
                return self._join(target)
            if target.state != "provisioning":
                return self.viewer.event({"type": "status", "state": "exited"})

    async def disconnect(self, code: int) -> None:
        if getattr(self, "slot", None):
            slot, self.slot = self.slot, None
            terminal.pool().submit(connections.release_slot, slot)  # not waited for: Redis may be slow
        if self.holds_control:  # an instructor who leaves gives the keyboard back
            self.holds_control = False
            try:
                await self._change_control("owner")
            except Exception as exc:  # noqa: BLE001 - the owner can reload to get control back
                log.warning("terminal of %s: giving control back: %s", self.instance_id, exc)
        self._leave()
        if self.group:
            try:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            except Exception as exc:  # noqa: BLE001 - the group entry expires by itself
                log.info("terminal of %s: leaving the session group: %s", self.instance_id, exc)

    def _leave(self) -> None:
        for task in getattr(self, "tasks", ()):
            task.cancel()
        if getattr(self, "hub", None) is not None:
            self.hub.leave(self.viewer)
            self.hub = None

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _deliver(self) -> None:
        """Our own socket's sender: what the viewer queued, written at once."""
        conn = self.conn
        for frame in self.viewer.take():
            if isinstance(frame, bytes):
                conn.send_bytes(frame)
            elif isinstance(frame, str):
                conn.send_text(frame)
            else:
                conn.close(frame)

    def _on_socket_message(self, message: bytes | str) -> None:
        try:
            if isinstance(message, bytes):
                self._receive(bytes_data=message)
            else:
                self._receive(text_data=message)
        except Exception:  # noqa: BLE001 - as dispatch does: 1011 and leave
            self._failed()

    async def _send_frames(self) -> None:
        """The one sender of this socket: output, events and the close, in order."""
        while True:
            for frame in await self.viewer.frames():
                if isinstance(frame, bytes):
                    await self.send(bytes_data=frame)
                elif isinstance(frame, str):
                    await self.send(text_data=frame)
                else:
                    await self.close(code=frame)
                    return

    # -- from the client -------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None) -> None:
        self._receive(text_data, bytes_data)

    def _receive(self, text_data=None, bytes_data=None) -> None:
        if self.viewer.closed:
            return
        if bytes_data is not None:
            if self._limited(self.input_frames.take(1), self.input_bytes.take(len(bytes_data))):
                return
            if self.control != self.role:
                if self.role == "instructor":
                    self._error("forbidden", "Take over the terminal before typing in it.")
                    return self.viewer.close(FORBIDDEN)
                return  # an instructor is typing: the owner's keys wait
            self._write(bytes_data)
            self._note_activity()
            return
        # Every frame counts, acks and malformed ones too: parsing is work.
        if self._limited(self.input_frames.take(1), self.input_bytes.take(len(text_data or ""))):
            return
        try:
            message = json.loads(text_data)
            kind = message["type"]
        except (ValueError, TypeError, KeyError):
            return self._error("invalid", "Text frames are JSON objects with a \"type\".")
        handler = getattr(self, f"_on_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            return self._error("invalid", f"Unknown message type {kind!r}.")
        handler(message)

    def _on_ack(self, message: dict) -> None:
        size = message.get("bytes")
        if not _is_int(size) or size < 0:
            return self._error("invalid", "ack needs \"bytes\", a count of bytes >= 0.")
        if self.hub is not None:
            self.hub.acknowledge(self.viewer, size)
        else:
            self.viewer.acknowledge(size)

    def _on_resize(self, message: dict) -> None:
        cols, rows = message.get("cols"), message.get("rows")
        if not (_is_int(cols) and _is_int(rows)):
            return self._error("invalid", "resize needs integer \"cols\" and \"rows\".")
        self.size = (min(max(cols, COLS[0]), COLS[1]), min(max(rows, ROWS[0]), ROWS[1]))
        if self.role == "instructor":
            self.size = None  # the learner's window decides the size of their terminal
            return
        if self.hub is not None:
            self.hub.resize(*self.size)

    def _on_ping(self, message: dict) -> None:
        self.viewer.event({"type": "pong"})

    def _on_takeover(self, message: dict) -> None:
        self._set_control("instructor")

    def _on_release(self, message: dict) -> None:
        self._set_control("owner")

    def _set_control(self, by: str) -> None:
        if self.role != "instructor" or not getattr(self, "session_id", None):
            # The owner is in control already (or the target is not known yet).
            self.viewer.event({"type": "control", "by": self.control})
            return
        self.holds_control = by == "instructor"
        self._spawn(self._change_control(by))

    async def _change_control(self, by: str) -> None:
        target = await self._lookup()
        await terminal.db(actions.set_terminal_control)(target=target, by=by, user=self.user)

    def _write(self, data: bytes) -> None:
        if self.hub is None:
            if len(self.early_input) + len(data) > terminal.limits().input_buffer:
                return self._rate_limited(5, "The terminal is not taking input this fast.")
            self.early_input += data
            return
        try:
            self.hub.write(data)
        except terminal.InputOverflow:
            self._rate_limited(5, "The terminal is not taking input this fast.")

    def _limited(self, *waits: float) -> bool:
        wait = max(waits)
        if wait > 0:
            self._rate_limited(wait, "Too much input; slow down.")
            return True
        return False

    def _rate_limited(self, wait: float, message: str) -> None:
        self.viewer.event(
            {"type": "error", "code": "rate_limited", "message": message, "retry_after": max(1, math.ceil(wait))}
        )
        self.viewer.close(RATE_LIMITED)

    def _error(self, code: str, message: str) -> None:
        self.viewer.event({"type": "error", "code": code, "message": message})

    def _note_activity(self) -> None:
        """Typing counts against the idle timeout; tell actions at most once a second."""
        now = time.monotonic()
        if now - self.last_activity >= 1.0 and getattr(self, "session_id", None):
            self.last_activity = now
            self._spawn(self._activity())

    async def _activity(self) -> None:
        try:
            await terminal.db(actions.note_activity)(session_id=self.session_id)
        except Exception as exc:  # noqa: BLE001 - activity is best effort
            log.warning("could not note activity of session %s: %s", self.session_id, exc)

    # -- from the session's group --------------------------------------------------------------
    async def session_status(self, event: dict) -> None:
        if event.get("state") == "session_over":
            self._session_over()
        elif event.get("state") == "exited" and event.get("instance") == self.instance_id:
            # The engine watcher saw the container die (actions.instance_died).
            self.viewer.event({"type": "status", "state": "exited"})

    async def session_control(self, event: dict) -> None:
        if event.get("instance") == self.instance_id and event.get("by") in ("owner", "instructor"):
            self.control = event["by"]
            self.viewer.event({"type": "control", "by": self.control})

    async def session_message(self, event: dict) -> None:
        self.viewer.event({"type": "message", "text": event.get("text", ""), "from": event.get("from", "")})

    async def session_expiry(self, event: dict) -> None:
        self.viewer.event({"type": "expiry", "expires_at": event["expires_at"]})

    def _session_over(self) -> None:
        self.viewer.event({"type": "status", "state": "session_over"})
        self.viewer.close(SESSION_OVER)


_direct_noted = False


def _note_direct() -> None:
    """Say once per process that terminals run on their own sockets."""
    global _direct_noted
    if not _direct_noted:
        _direct_noted = True
        log.info("terminal WebSockets run on their own sockets (PLAYGROUND_TERMINAL_DIRECT)")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
