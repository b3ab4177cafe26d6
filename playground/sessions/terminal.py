"""The terminal hubs of one web process.

Every connection this process holds to an instance's terminal shares one
``Hub``, which holds one attachment to the instance's TTY (the engine fans the
TTY out to the attachments of every web process), keeps the recent output for
replays and fans the output out to the connections under docs/api.md's flow
control. Terminal bytes never go through the channel layer.

Threads: blocking calls (attach, resize, inspect, the database) run on this
module's pool, sized by ``PLAYGROUND_TERMINAL_THREADS``. The attachment itself
is non-blocking and read from the event loop (``add_reader``), so a quiet
terminal costs no thread, and reading stops by removing the reader: the engine
then stops taking the program's output and the program blocks on write, as in
a real terminal.

Flow control (docs/api.md): each connection (``Viewer``) may have ``WINDOW`` bytes
of output handed to its socket and not yet acknowledged, replay included. The
hub reads at most what the roomiest connection can take, so the fastest reader
sets the pace; a connection a chunk does not fit is marked lagging and gets no
live bytes until it has room again. It then catches up from the ring buffer:
with exactly the bytes it missed when the ring still holds them, else with a
fresh replay (the ring from a line boundary, announced by a ``replay`` event).
A connection that never acknowledges fills its window once and gets nothing
more. When no connection has room, the hub stops reading. Each connection gets
the bytes in the order the hub read them, each at most once. When the
attachment drops while the instance runs (the relay let this process go, the
engine restarted), the hub attaches again with the output the host kept and
gives every connection that fresh replay: what passed meanwhile is on the
screen, nothing twice.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from channels.db import DatabaseSyncToAsync
from django.conf import settings

from playground.errors import NotFoundError, SessionOver
from sandboxes.base import TerminalStream

from . import hosts
from .actions import TerminalTarget

log = logging.getLogger(__name__)

WINDOW = 1024 * 1024
"""Output a connection may have unacknowledged (docs/api.md)."""
READ_SIZE = 256 * 1024
"""The most read from the TTY at once, and so the largest live chunk."""
READ_BUDGET = 256 * 1024
"""The most read in one turn of the event loop, so one terminal cannot starve the rest."""
FRAME_SIZE = 256 * 1024
"""Queued output chunks are joined into frames of about this size."""
WRITE_CHUNK = 64 * 1024

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_RETRY_DELAYS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0)
# A new attachment's kept output (the replay) comes a moment after the
# attachment itself (the relay or the engine writes it then): a read that
# finds nothing yet waits this long for it before the hub goes live, or the
# replay would pass as live output, appended to the screen it repaints.
PRIME_WAIT = 0.3


@dataclass(frozen=True)
class Limits:
    replay_bytes: int
    """The ring buffer of recent output each hub keeps for replays."""
    linger: float
    """Seconds a hub outlives its last connection, so that a reload replays
    from its ring rather than from the engine's log."""
    input_buffer: int
    """Input waiting for the TTY to take it, per hub; past it input is refused."""



def limits() -> Limits:
    replay_kb = settings.PLAYGROUND_TERMINAL_REPLAY_KB
    return Limits(
        # At most half a window: a new or lagging connection has room for it and more.
        replay_bytes=max(64, min(replay_kb, WINDOW // 2048)) * 1024,
        linger=float(settings.PLAYGROUND_TERMINAL_LINGER_SECONDS),
        input_buffer=settings.PLAYGROUND_TERMINAL_INPUT_BUFFER_KB * 1024,
    )


# -- the thread pool ---------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    """The pool for this process's blocking terminal calls (not asyncio's small default)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(
            max_workers=settings.PLAYGROUND_TERMINAL_THREADS,
            thread_name_prefix="terminal",
        )
    return _pool


def in_pool(func: Callable, /, *args, **kwargs) -> Awaitable:
    """Run a blocking call on the pool."""
    return asyncio.get_running_loop().run_in_executor(pool(), functools.partial(func, *args, **kwargs))


def db(func: Callable) -> Callable[..., Awaitable]:
    """``database_sync_to_async`` on the pool rather than on one shared thread."""
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=pool())


# -- one connection ------------------------------------------------------------------


class InputOverflow(Exception):
    """More input waits for the TTY than the hub keeps."""


class Viewer:
    """One connection's side of a hub: its output window and its outbox.

    The outbox holds what is to go out, in order: ``bytes`` (output, counted
    against the window until acknowledged), ``str`` (a JSON event) or ``int``
    (a close code, the last item). The connection's sender drains it: a task
    awaiting ``frames()``, or, given ``deliver_to(callback)``, the callback,
    called as soon as something is queued and taking it with ``take()``.
    """

    def __init__(self) -> None:
        self.unacked = 0
        self.position = 0  # the hub's output offset up to which this connection got it
        self.lagging = False
        self.waiting = True  # for its replay, which the hub gives once it has one
        self.closed = False
        self.outbox: deque[bytes | str | int] = deque()
        self._ready = asyncio.Event()
        self._notify: Callable[[], None] = self._ready.set

    def deliver_to(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (at once, on the loop) whenever something is queued."""
        self._notify = callback
        if self.outbox:
            callback()

    @property
    def room(self) -> int:
        return WINDOW - self.unacked

    @property
    def takes_live(self) -> bool:
        return not (self.waiting or self.lagging or self.closed)

    def output(self, data: bytes) -> None:
        if self.closed:
            return
        self.unacked += len(data)
        self.outbox.append(data)
        self._notify()

    def event(self, message: dict) -> None:
        if not self.closed:
            self.outbox.append(json.dumps(message))
            self._notify()

    def close(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.append(code)
            self._notify()

    def acknowledge(self, size: int) -> None:
        self.unacked = max(0, self.unacked - size)

    async def frames(self) -> list[bytes | str | int]:
        """What to send next, adjacent output joined into frames; waits for some."""
        await self._ready.wait()
        self._ready.clear()
        return self.take()

    def take(self) -> list[bytes | str | int]:
        """What to send now (maybe nothing), adjacent output joined into frames."""
        frames: list[bytes | str | int] = []
        parts: list[bytes] = []
        size = 0
        while self.outbox:
            item = self.outbox.popleft()
            if isinstance(item, bytes):
                if parts and size + len(item) > FRAME_SIZE:
                    frames.append(b"".join(parts))
                    parts, size = [], 0
                parts.append(item)
                size += len(item)
                continue
            if parts:
                frames.append(b"".join(parts))
                parts, size = [], 0
            frames.append(item)
        if parts:
            frames.append(b"".join(parts) if len(parts) > 1 else parts[0])
        return frames


# -- one instance's terminal ---------------------------------------------------------------

Refresh = Callable[[], Awaitable[TerminalTarget]]


class Hub:
    """One attachment to an instance's TTY, shared by this process's connections.

    States: ``attaching`` (no stream yet) → ``priming`` (reading the engine's
    replay of its log into the ring; connections wait) → ``live``;
    ``reconnecting`` after the attachment dropped while the instance runs;
    ``exited`` once the instance stopped; ``closed`` after the last connection
    left and the linger passed.
    """

    def __init__(self, target: TerminalTarget, *, refresh: Refresh, limits: Limits) -> None:
        self.instance_id = target.instance_id
        self.host = target.host
        self.driver_state = target.driver_state
        self.limits = limits
        self.state = "attaching"
        self.viewers: list[Viewer] = []
        self.loop = asyncio.get_running_loop()
        self._refresh = refresh
        self._stream: TerminalStream | None = None
        self._fd = -1
        self._reading = False
        self._writing = False
        self._input = bytearray()
        self._ring: deque[bytes] = deque()
        self._ring_size = 0
        self._ring_cut = False  # the ring no longer starts where the output did
        self._offset = 0  # output read so far (the ring ends there)
        self._replay_cache: tuple[int, bytes] = (-1, b"")
        self._primed = 0
        self._prime_timer: asyncio.TimerHandle | None = None
        self._size: tuple[int, int] | None = None
        self._applied_size: tuple[int, int] | None = None
        self._resizing = False
        self._linger: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> None:
        self._spawn(self._connect())

    @property
    def driver(self):
        return hosts.driver_for(self.host)

    def _spawn(self, coroutine) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connections -------------------------------------------------------------
    def join(self, viewer: Viewer) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self.viewers.append(viewer)
        if self.state in ("live", "exited"):
            self._give_replay(viewer)
            viewer.event({"type": "status", "state": "running" if self.state == "live" else self.state})
        elif self.state == "reconnecting":  # its replay comes with the current screen, once attached again
            viewer.event({"type": "status", "state": "reconnecting"})
        self._update_reading()

    def leave(self, viewer: Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.remove(viewer)
        if not self.viewers and self.state != "closed" and self._linger is None:
            self._linger = self.loop.call_later(self.limits.linger, self._linger_over)
        self._update_reading()

    def _linger_over(self) -> None:
        self._linger = None
        if not self.viewers:
            self.close()

    def acknowledge(self, viewer: Viewer, size: int) -> None:
        viewer.acknowledge(size)
        # Not while reattaching: the ring is about to be replaced (_go_live
        # catches the lagging up then).
        if viewer.lagging and not viewer.closed and self.state == "live":
            self._catch_up(viewer)
        self._update_reading()

    def _catch_up(self, viewer: Viewer) -> None:
        """A lagging connection with room again gets what it missed, or a
        fresh replay when the ring no longer holds all of it."""
        ring_start = self._offset - self._ring_size
        if viewer.position >= ring_start:
            missed = self._offset - viewer.position
            if viewer.room >= missed:
                if missed:
                    viewer.output(b"".join(self._ring)[viewer.position - ring_start :])
                viewer.position = self._offset
                viewer.lagging = False
        elif viewer.room >= min(self._ring_size, self.limits.replay_bytes):
            replay = self._replay()
            if viewer.room >= len(replay):
                self._give_replay(viewer, replay)

    def _give_replay(self, viewer: Viewer, replay: bytes | None = None) -> None:
        replay = self._replay() if replay is None else replay
        viewer.waiting = viewer.lagging = False
        viewer.position = self._offset
        if replay:
            viewer.event({"type": "replay", "bytes": len(replay)})
            viewer.output(replay)

    def _broadcast(self, message: dict) -> None:
        for viewer in self.viewers:
            viewer.event(message)

    # -- the ring buffer -------------------------------------------------------------
    def _keep(self, data: bytes) -> None:
        self._ring.append(data)
        self._ring_size += len(data)
        self._offset += len(data)
        while self._ring_size - len(self._ring[0]) >= self.limits.replay_bytes:
            self._ring_size -= len(self._ring.popleft())
            self._ring_cut = True

    def _replay(self) -> bytes:
        """The recent output, from the start of a line when it had to be cut."""
        offset, cached = self._replay_cache
        if offset == self._offset:
            return cached
        data = b"".join(self._ring)
        cut = self._ring_cut
        if len(data) > self.limits.replay_bytes:
            data = data[-self.limits.replay_bytes :]
            cut = True
        if cut:
            newline = data.find(b"\n")
            if newline != -1:
                data = data[newline + 1 :]
        self._replay_cache = (self._offset, data)
        return data

    # -- output --------------------------------------------------------------------------
    def _read_limit(self, batched: int = 0) -> int:
        """The most the next read may take, ``batched`` bytes read and not yet
        handed to the connections."""
        if self.state == "priming" or not self.viewers:
            return READ_SIZE
        best = max((v.room for v in self.viewers if v.takes_live), default=0)
        return min(READ_SIZE, best - batched)

    def _update_reading(self) -> None:
        if self._stream is None or self.state not in ("priming", "live"):
            return
        if self._read_limit() > 0:
            if not self._reading:
                self.loop.add_reader(self._fd, self._on_readable)
                self._reading = True
                # Bytes may wait where the selector cannot see them (TLS, the
                # engine's answer): look once now.
                self.loop.call_soon(self._on_readable)
        elif self._reading:
            self._stop_reading()

    def _stop_reading(self) -> None:
        if self._reading:
            self.loop.remove_reader(self._fd)
            self._reading = False

    def _on_readable(self) -> None:
        """Read what the TTY has, up to a budget, and hand what was read live
        to the connections at once: one chunk (one frame each), however many
        reads it took; then, if the attachment dropped, say so."""
        batch: list[bytes] = []
        lost = self._read(batch)
        if batch:
            self._fan_out(b"".join(batch) if len(batch) > 1 else batch[0])
        if lost:
            self._lost(lost)
        elif batch:
            self._update_reading()

    def _read(self, batch: list[bytes]) -> str | None:
        """Read into ``batch`` (live output) or the ring (priming); why the
        attachment dropped, if it did."""
        budget = READ_BUDGET
        batched = 0
        while self._reading and self._stream is not None:
            limit = self._read_limit(batched)
            if limit <= 0:
                if not batched:
                    self._stop_reading()
                return None
            try:
                data = self._stream.recv(min(limit, budget))
            except _WOULD_BLOCK:
                if self.state == "priming":
                    if self._primed:
                        self._go_live()
                    elif self._prime_timer is None:  # nothing kept came yet: wait for it a moment
                        self._prime_timer = self.loop.call_later(PRIME_WAIT, self._primed_or_not)
                return None
            except OSError as exc:
                return f"read failed: {exc}"
            if not data:
                return "the engine closed the attachment"
            self._keep(data)
            if self.state == "priming":
                self._primed += len(data)
                if self._primed >= 2 * self.limits.replay_bytes:  # a flood: do not wait for a pause
                    self._go_live()
            else:
                batch.append(data)
                batched += len(data)
            budget -= len(data)
            if budget <= 0:
                self.loop.call_soon(self._on_readable)
                return None
        return None

    def _fan_out(self, data: bytes) -> None:
        size = len(data)
        for viewer in self.viewers:
            if viewer.takes_live:
                if viewer.room >= size:
                    viewer.output(data)
                    viewer.position = self._offset
                else:
                    viewer.lagging = True

    def _primed_or_not(self) -> None:
        """The kept output did not come in time (an instance that printed nothing yet): live anyway."""
        self._prime_timer = None
        if self.state == "priming":
            self._go_live()

    def _go_live(self) -> None:
        if self._prime_timer is not None:
            self._prime_timer.cancel()
            self._prime_timer = None
        self.state = "live"
        replay = self._replay()
        for viewer in self.viewers:
            if viewer.waiting:
                self._give_replay(viewer, replay)
            elif viewer.lagging and not viewer.closed:
                self._catch_up(viewer)  # after a reconnection: the current screen, as its window allows
            viewer.event({"type": "status", "state": "running"})
        self._update_reading()

    # -- input -------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue input for the TTY, in order; raises ``InputOverflow`` past the limit."""
        if self.state in ("exited", "closed"):
            return
        if len(self._input) + len(data) > self.limits.input_buffer:
            raise InputOverflow(f"{len(self._input)} bytes of input wait for the terminal")
        if self._input or self._writing or self._resizing or self._stream is None:
            self._input += data
            if not self._writing:
                self._flush_input()
            return
        # The usual case, a keystroke into an idle terminal: straight to the socket.
        try:
            sent = self._stream.send(data)
        except _WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self._input += data
            return self._lost(f"write failed: {exc}")
        if sent < len(data):
            self._input += data[sent:]
            self._flush_input()

    def _flush_input(self) -> None:
        # Input typed after a resize waits for it, so that it meets the new size.
        if self._stream is None or self._resizing:
            return
        while self._input:
            try:
                sent = self._stream.send(bytes(self._input[:WRITE_CHUNK]))
            except _WOULD_BLOCK:
                if not self._writing:
                    self.loop.add_writer(self._fd, self._flush_input)
                    self._writing = True
                return
            except OSError as exc:
                self._lost(f"write failed: {exc}")
                return
            del self._input[:sent]
        if self._writing:
            self.loop.remove_writer(self._fd)
            self._writing = False

    def resize(self, cols: int, rows: int) -> None:
        self._size = (cols, rows)
        if self._stream is not None and not self._resizing:
            self._resizing = True
            self._spawn(self._apply_size())

    async def _apply_size(self) -> None:
        try:
            while self._stream is not None and self._size and self._size != self._applied_size:
                cols, rows = size = self._size
                try:
                    await in_pool(self.driver.resize, self.driver_state, cols=cols, rows=rows)
                except Exception as exc:  # noqa: BLE001 - a lost resize is no reason to fail
                    log.info("could not resize the terminal of %s: %s", self.instance_id, exc)
                    break
                self._applied_size = size
        finally:
            self._resizing = False
            self._flush_input()

    # -- the attachment ------------------------------------------------------------------
    async def _connect(self, *, again: bool = False) -> None:
        """Attach (``again``: after a drop), with back-off while the instance
        runs. Every attachment starts with the output the host kept, which
        becomes the ring: after a drop, what this process missed meanwhile is
        in it, and the connections get it as a fresh replay."""
        announced = False
        for attempt in range(10**9):
            if attempt:
                await asyncio.sleep(_RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)])
            if self.state == "closed":
                return
            if attempt or again:
                verdict = await self._still_running()
                if verdict is not None:
                    return self._end(verdict)
                if not announced:
                    self._broadcast({"type": "status", "state": "reconnecting"})
                    announced = True
            try:
                stream = await in_pool(self.driver.attach, self.driver_state, replay=True)
            except Exception as exc:  # noqa: BLE001 - whatever failed, the retry decides
                log.info("attaching to %s failed (%s); retrying", self.instance_id, exc)
                continue
            if self.state == "closed":
                await in_pool(stream.close)
                return
            self._use(stream, again=again)
            return

    async def _still_running(self) -> str | int | None:
        """None if the instance runs (so re-attach), else how it ended:
        ``"exited"``, or a close code (4404 gone, 4410 session over)."""
        try:
            target = await self._refresh()
        except NotFoundError:
            return 4404
        except SessionOver:
            return 4410
        except Exception as exc:  # noqa: BLE001 - the database may be back soon
            log.warning("could not look up instance %s: %s", self.instance_id, exc)
            return None
        if target.state != "running":
            return "exited"
        self.driver_state = target.driver_state
        try:
            status = await in_pool(self.driver.inspect, target.driver_state)
        except Exception:  # noqa: BLE001 - unknown: try attaching
            return None
        return None if status.state == "running" else "exited"

    def _use(self, stream: TerminalStream, *, again: bool) -> None:
        stream.setblocking(False)
        self._stream = stream
        self._fd = stream.fileno()
        if again:
            # The host's kept output replaces the ring (the offset runs on:
            # connections' positions stay comparable).
            self._ring.clear()
            self._ring_size = 0
            self._ring_cut = False
            self._primed = 0
        self.state = "priming"
        self._update_reading()
        if self._size and self._size != self._applied_size:
            self.resize(*self._size)
        self._flush_input()

    def _lost(self, why: str) -> None:
        log.info("terminal of %s: %s", self.instance_id, why)
        self._drop_stream()
        if self.state != "closed":
            self.state = "reconnecting"
            # What comes until the next attachment does not pass here: every
            # connection is resynchronised with the current screen then.
            for viewer in self.viewers:
                if not viewer.waiting:
                    viewer.lagging = True
                    viewer.position = -1  # before any ring: a fresh replay, never a doubled tail
            self._spawn(self._connect(again=True))

    def _end(self, how: str | int) -> None:
        if how == "exited":
            self.state = "exited"
            for viewer in self.viewers:
                if viewer.waiting:
                    self._give_replay(viewer)
                viewer.event({"type": "status", "state": "exited"})
            return
        if how == 4410:
            self._broadcast({"type": "status", "state": "session_over"})
        for viewer in self.viewers:
            viewer.close(how)
        self.close()

    def _drop_stream(self) -> None:
        if self._prime_timer is not None:
            self._prime_timer.cancel()
            self._prime_timer = None
        self._stop_reading()
        if self._writing:
            self.loop.remove_writer(self._fd)
            self._writing = False
        stream, self._stream, self._fd = self._stream, None, -1
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass

    def close(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._drop_stream()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if _hubs.get(self.instance_id) is self:
            del _hubs[self.instance_id]


# -- the registry ------------------------------------------------------------------------

_hubs: dict[str, Hub] = {}


def hub_for(target: TerminalTarget, *, refresh: Refresh) -> Hub:
    """This process's hub of the instance, attaching it if there is none."""
    hub = _hubs.get(target.instance_id)
    if hub is not None and hub.loop is not asyncio.get_running_loop():
        hub = None  # left over from another event loop (tests)
    if hub is None:
        hub = Hub(target, refresh=refresh, limits=limits())
        _hubs[target.instance_id] = hub
        hub.start()
    return hub


def close_all() -> None:
    """Close every hub (tests)."""
    for hub in list(_hubs.values()):
        hub.close()
    _hubs.clear()
