"""The terminal hub's flow control, replay and ordering, against the fake
driver's terminal (real sockets; what is typed is echoed to every attachment)."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from playground.errors import SessionOver
from playground.sessions import terminal
from playground.sessions.actions import TerminalTarget
from playground.wsauth import origin_allowed
from sandboxes.base import InstanceSpec

WINDOW = terminal.WINDOW


@pytest.fixture
def target():
    from playground.sessions import hosts

    created = hosts.driver_for("fake://lab1").create_instance(
        InstanceSpec(instance_id="i1", image="shell", hostname="node1", network=None)
    )
    return TerminalTarget(instance_id="i1", session_id="s1", state="running", host="fake://lab1",
                          driver_state=created.state, expires_at="2030-01-01T00:00:00Z", reason="")


class Screen:
    """Drains one viewer as a connection would: output, events, acks."""

    def __init__(self, hub: terminal.Hub, *, ack: bool = True) -> None:
        self.hub = hub
        self.viewer = terminal.Viewer()
        self.ack = ack
        self.output = bytearray()
        self.events: list[dict] = []
        self.close_code: int | None = None
        hub.join(self.viewer)
        self.task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            for frame in await self.viewer.frames():
                if isinstance(frame, bytes):
                    self.output += frame
                    if self.ack:
                        self.hub.acknowledge(self.viewer, len(frame))
                elif isinstance(frame, str):
                    self.events.append(json.loads(frame))
                else:
                    self.close_code = frame
                    return

    def states(self) -> list[str]:
        return [e["state"] for e in self.events if e["type"] == "status"]


async def until(predicate, *, timeout: float = 10.0, what: str = "a condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def run(coroutine):
    try:
        return asyncio.run(coroutine)
    finally:
        terminal.close_all()


def lines(first: int, last: int) -> bytes:
    return b"".join(b"line %07d\n" % n for n in range(first, last))


async def feed(hub: terminal.Hub, data: bytes) -> None:
    """Type ``data`` as fast as the terminal takes it (as a pasting client would)."""
    for start in range(0, len(data), 65536):
        await until(lambda: len(hub._input) < 512 * 1024, what="the terminal to take input")
        hub.write(data[start:start + 65536])


def hub_of(target, refresh=None) -> terminal.Hub:
    async def same():
        return target

    return terminal.hub_for(target, refresh=refresh or same)


def test_output_reaches_every_connection_once_and_in_order(target):
    async def scenario():
        hub = hub_of(target)
        one, two = Screen(hub), Screen(hub)
        await until(lambda: "running" in one.states() and "running" in two.states(), what="live")
        data = lines(0, 50_000)  # ~0.6 MB, echoed by the fake TTY
        await feed(hub, data)
        await until(lambda: one.output.endswith(data) and two.output.endswith(data), what="all output")
        assert one.output == two.output
        assert one.output.count(b"line 0049999\n") == 1

    run(scenario())


def test_a_new_connection_gets_the_recent_output_first_then_live_output(target):
    async def scenario():
        hub = hub_of(target)
        first = Screen(hub)
        await until(lambda: "running" in first.states(), what="live")
        hub.write(b"echo before\n")
        await until(lambda: b"echo before\n" in first.output, what="the echo")
        second = Screen(hub)
        await until(lambda: b"echo before\n" in second.output, what="the replay")
        assert [e["type"] for e in second.events][:2] == ["replay", "status"]
        hub.write(b"after\n")
        await until(lambda: second.output.endswith(b"after\n"), what="live output")
        assert second.output.count(b"echo before\n") == 1
        assert second.output == first.output  # the fake's banner, then the same bytes

    run(scenario())


def test_a_connection_that_never_acks_gets_one_window_and_then_reading_stops(target):
    async def scenario():
        hub = hub_of(target)
        silent = Screen(hub, ack=False)
        await until(lambda: "running" in silent.states(), what="live")
        data = lines(0, 200_000)  # 2.4 MB, within the input the hub keeps
        for start in range(0, len(data), 65536):
            hub.write(data[start:start + 65536])
        await until(lambda: silent.viewer.room == 0, what="a full window")
        await asyncio.sleep(0.3)
        assert len(silent.output) == WINDOW
        assert not hub._reading
        assert silent.output == (b"root@node1:/# " + data)[:WINDOW]
        # Room again: the terminal is read again, from where it stopped.
        hub.acknowledge(silent.viewer, WINDOW)
        await until(lambda: len(silent.output) == 2 * WINDOW, what="a second window")
        assert silent.output == (b"root@node1:/# " + data)[:2 * WINDOW]

    run(scenario())


def test_a_lagging_connection_catches_up_with_what_it_missed_while_the_ring_holds_it(target, settings):
    # The slow one falls behind at a chunk that does not fit its window, and
    # one turn's reads make a chunk of up to READ_BUDGET (a busy machine reads
    # in large turns): the ring must hold that much more than what was sent
    # past the window, whatever the chunking.
    settings.PLAYGROUND_TERMINAL_REPLAY_KB = 512

    async def scenario():
        hub = hub_of(target)
        fast, slow = Screen(hub), Screen(hub, ack=False)
        await until(lambda: "running" in fast.states() and "running" in slow.states(), what="live")
        data = lines(0, 100_000)  # 1.2 MB: past the slow one's window, within window + ring
        await feed(hub, data)
        await until(lambda: fast.output.endswith(data), what="the fast one to get everything")
        assert slow.viewer.lagging
        slow.ack = True
        hub.acknowledge(slow.viewer, len(slow.output))
        await until(lambda: slow.output.endswith(data), what="the slow one to catch up")
        assert slow.output == fast.output
        assert "replay" not in [e["type"] for e in slow.events[1:]]

    run(scenario())


def test_a_connection_that_fell_behind_the_ring_gets_a_fresh_replay(target):
    async def scenario():
        hub = hub_of(target)
        fast, slow = Screen(hub), Screen(hub, ack=False)
        await until(lambda: "running" in fast.states() and "running" in slow.states(), what="live")
        data = lines(0, 400_000)  # 4.8 MB
        await feed(hub, data)
        await until(lambda: fast.output.endswith(data), timeout=30, what="the fast one to get everything")
        got_before = bytes(slow.output)
        slow.ack = True
        hub.acknowledge(slow.viewer, len(slow.output))
        await until(lambda: slow.output.endswith(data[-4096:]), what="the fresh replay")
        replay = bytes(slow.output[len(got_before):])
        assert slow.events[-1] == {"type": "replay", "bytes": len(replay)}
        assert len(replay) <= hub.limits.replay_bytes
        # What it got: a prefix of the output, then its tail from a line start.
        assert fast.output.startswith(got_before)
        assert fast.output.endswith(replay) and replay.startswith(b"line ")

    run(scenario())


def test_after_the_attachment_drops_every_connection_gets_the_current_screen_once(target):
    from playground.sessions import hosts

    async def scenario():
        hub = hub_of(target)
        screen, idle = Screen(hub), Screen(hub)
        await until(lambda: "running" in screen.states() and "running" in idle.states(), what="live")
        hub.write(b"echo before\n")
        await until(lambda: b"echo before\n" in screen.output and b"echo before\n" in idle.output, what="the echo")
        # Typed through another attachment, then every attachment drops: the
        # hub never read "meanwhile" live, yet its connections must show it.
        driver = hosts.driver_for("fake://lab1")
        other = driver.attach(target.driver_state)
        other.sendall(b"meanwhile\n")
        await until(lambda: b"meanwhile\n" in screen.output, what="the other attachment's echo")
        driver.drop_terminals(target.driver_state)
        other.close()
        await until(lambda: screen.states()[-1:] == ["running"] and "reconnecting" in screen.states()
                    and idle.states()[-1:] == ["running"], what="reconnected")
        for one in (screen, idle):
            dropped = one.events.index({"type": "status", "state": "reconnecting"})
            replays = [e for e in one.events[dropped:] if e["type"] == "replay"]
            assert len(replays) == 1, (one.events, bytes(one.output))
            [fresh_replay] = replays
            fresh = bytes(one.output[-fresh_replay["bytes"]:])
            assert b"echo before\n" in fresh and b"meanwhile\n" in fresh
        hub.write(b"after\n")
        await until(lambda: screen.output.endswith(b"after\n") and idle.output.endswith(b"after\n"),
                    what="live output again")
        assert screen.output.count(b"after\n") == 1
        # A connection that joins about when the attachment drops ends with
        # the current screen too (its last replay), nothing in it twice.
        driver.drop_terminals(target.driver_state)
        late = Screen(hub)
        await until(lambda: hub.state == "live" and late.states()[-1:] == ["running"]
                    and b"after\n" in late.output, what="the late one")
        [*_, last] = [e for e in late.events if e["type"] == "replay"]
        assert bytes(late.output[-last["bytes"]:]).count(b"after\n") == 1

    run(scenario())


def test_input_is_written_in_order_across_connections(target):
    async def scenario():
        hub = hub_of(target)
        screen = Screen(hub)
        await until(lambda: "running" in screen.states(), what="live")
        paste = bytes(range(256)) * 4096  # 1 MiB
        await feed(hub, paste)
        await until(lambda: len(screen.output) >= len(paste), timeout=20, what="the echo")
        assert screen.output.endswith(paste)

    run(scenario())


def test_the_end_of_the_session_reaches_connections_when_the_terminal_drops(target):
    from playground.sessions import hosts

    async def over():
        raise SessionOver("over")

    async def scenario():
        hub = hub_of(target, refresh=over)
        screen = Screen(hub)
        await until(lambda: "running" in screen.states(), what="live")
        hosts.driver_for("fake://lab1").remove_instance(target.driver_state)
        await until(lambda: screen.close_code is not None, what="the close")
        assert screen.states()[-1] == "session_over"
        assert screen.close_code == 4410

    run(scenario())


def test_a_stopped_instance_shows_exited(target):
    from playground.sessions import hosts

    async def scenario():
        hub = hub_of(target)
        screen = Screen(hub)
        await until(lambda: "running" in screen.states(), what="live")
        hosts.driver_for("fake://lab1").stop_instance(target.driver_state, exit_code=0, reason="exited")
        await until(lambda: screen.states()[-1] == "exited", what="exited")
        assert screen.close_code is None

    run(scenario())


@pytest.mark.parametrize("origin, allowed", [
    (b"http://localhost:8000", True),
    (b"https://127.0.0.1", True),
    (b"http://[::1]:8000", True),
    (b"http://evil.example", False),
    (b"http://localhost.evil.example", False),
    (b"null", False),
    (None, False),
])
def test_cookie_handshakes_need_an_origin_among_the_allowed_hosts(settings, origin, allowed):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
    assert origin_allowed(origin) is allowed


def test_output_read_in_pieces_in_one_turn_goes_out_as_one_chunk(target, monkeypatch):
    async def scenario():
        hub = hub_of(target)
        viewer = terminal.Viewer()
        chunks: list[bytes] = []
        viewer.deliver_to(lambda: chunks.extend(f for f in viewer.take() if isinstance(f, bytes)))
        hub.join(viewer)
        await until(lambda: hub.state == "live", what="live")
        monkeypatch.setattr(terminal, "READ_SIZE", 4)  # every read takes 4 bytes at most
        chunks.clear()
        hub.write(b"0123456789ab")
        time.sleep(0.3)  # noqa: ASYNC251 - the echo waits whole in the socket before the hub's next turn
        await until(lambda: b"".join(chunks).count(b"0123456789ab") == 1, what="the echo")
        assert chunks == [b"0123456789ab"]  # one chunk (one frame), not three

    run(scenario())


def test_a_replay_that_comes_a_moment_after_the_attachment_is_still_a_replay(target, monkeypatch):
    """The relay (or the engine) writes the kept output just after the
    attachment opens: read too early, it would pass as live output and be
    appended to the screen a reconnecting client keeps."""
    from sandboxes import fake

    async def scenario():
        hub = hub_of(target)
        screen = Screen(hub)
        await until(lambda: "running" in screen.states(), what="live")
        hub.write(b"echo before\n")
        await until(lambda: b"echo before\n" in screen.output, what="the echo")
        late_start = fake._Terminal.start
        monkeypatch.setattr(fake._Terminal, "start",
                            lambda self: threading.Timer(0.1, late_start, args=(self,)).start())
        from playground.sessions import hosts

        hosts.driver_for("fake://lab1").drop_terminals(target.driver_state)
        await until(lambda: screen.states()[-2:] == ["reconnecting", "running"], what="reconnected")
        dropped = screen.events.index({"type": "status", "state": "reconnecting"})
        [replay] = [e for e in screen.events[dropped:] if e["type"] == "replay"]
        assert b"echo before\n" in bytes(screen.output[-replay["bytes"]:])

    run(scenario())
