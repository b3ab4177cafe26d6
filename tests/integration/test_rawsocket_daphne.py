"""``playground.rawsocket`` against a real Daphne: a bare ASGI echo
application (tests/integration/rawsocket_app.py) takes each accepted
WebSocket's socket off Twisted, and a ``websockets`` client checks that the
connection behaves as Daphne's own would: messages whole and in order (those
Daphne had queued before the take first), pings answered, the message size
limit and close codes kept, and the application told of every disconnection
while Daphne goes on serving. ``/asgi/`` (never taken) is the baseline."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.stack import free_port, wait_for

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
MiB = 1024 * 1024
TIMEOUT = 20  # seconds for any one answer: generous, never a measure of speed


class Server:
    def __init__(self, port: int, log_path: Path, process: subprocess.Popen) -> None:
        self.port = port
        self.log_path = log_path
        self.process = process

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connect(self, path: str = "/", **kwargs):
        return connect(self.url(path), compression=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT, **kwargs)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def _running_daphne(tmp_path_factory, *options: str):
    """A Daphne serving rawsocket_app, stopped at the end."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("rawsocket") / "daphne.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [str(PYTHON), "-m", "daphne", "-v", "2", *options, "-b", "127.0.0.1", "-p", str(port),
             "tests.integration.rawsocket_app:application"],
            cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    server = Server(port, log_path, process)
    try:
        deadline = time.monotonic() + 30
        while not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Daphne did not start listening on {port}:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def daphne(tmp_path_factory):
    with _running_daphne(tmp_path_factory) as server:
        yield server


@pytest.fixture(autouse=True)
def daphne_log(daphne):
    """Daphne's log lines of this test, shown when it fails."""
    start = daphne.log_path.stat().st_size
    yield
    with open(daphne.log_path, "rb") as f:
        f.seek(start)
        written = f.read().decode(errors="replace")
    print(f"--- Daphne's log during the test (exit status {daphne.process.poll()}) ---\n{written}")


def ask(ws, command: str) -> str:
    ws.send(command)
    answer = ws.recv(timeout=TIMEOUT)
    assert isinstance(answer, str), answer
    return answer


def close_code(ws) -> int | None:
    """The code of the close frame the server sent (after waiting for the end)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=TIMEOUT)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


def test_the_connection_is_taken(daphne):
    with daphne.connect() as ws:
        assert ask(ws, "who") == "direct"
        assert ask(ws, "queued") == "0"
    with daphne.connect("/asgi/") as ws:
        assert ask(ws, "who") == "asgi"


BIG = os.urandom(200 * 1024)
EARLY = ["first", b"\x00\x01\x02", "", b"", BIG, "ünïcödé ✓ " * 100, b"\xff" * 70_000, "sixth"]
LATER = [b"later-binary", "later text", BIG[::-1], "", b"\x00", "last"]
FRAGMENTED_TEXT = ["frag", "ment", "ed ✓"]
FRAGMENTED_BINARY = [b"\x01" * 100_000, b"\x02" * 100_000, b"\x03"]


@pytest.mark.parametrize("path", ["/", "/slow/", f"/hold/{len(EARLY) + 1}/", "/asgi/"])
def test_messages_come_back_whole_and_in_order(daphne, path):
    early, later = EARLY, LATER
    if path == "/asgi/":  # Daphne sends nothing for an application's empty message
        early, later = [m for m in EARLY if m], [m for m in LATER if m]
    with daphne.connect(path) as ws:
        # Right after the handshake, while the application has not taken the
        # socket yet (/slow/, /hold/: Daphne queues these for the application).
        for message in early:
            ws.send(message)
        ws.send(FRAGMENTED_TEXT)
        for expected in [*early, "".join(FRAGMENTED_TEXT)]:
            got = ws.recv(timeout=TIMEOUT)
            assert type(got) is type(expected)
            assert got == expected
        queued = ask(ws, "queued")
        if path.startswith("/hold/"):
            assert queued == str(len(EARLY) + 1)  # every one went through Daphne's queue
        # And afterwards, on the socket the application now reads itself.
        for message in later:
            ws.send(message)
        ws.send(FRAGMENTED_BINARY)
        for expected in [*later, b"".join(FRAGMENTED_BINARY)]:
            got = ws.recv(timeout=TIMEOUT)
            assert type(got) is type(expected)
            assert got == expected
        assert ask(ws, "who") == ("asgi" if path == "/asgi/" else "direct")


@pytest.mark.parametrize("path", ["/", "/asgi/"])
def test_a_ping_gets_a_pong(daphne, path):
    with daphne.connect(path) as ws:
        assert ask(ws, "who") == ("asgi" if path == "/asgi/" else "direct")
        for payload in (b"", b"are you there"):
            assert ws.ping(payload).wait(TIMEOUT), "no pong"
        ws.send("still open")
        assert ws.recv(timeout=TIMEOUT) == "still open"


def test_a_message_over_1_mib_closes_with_1009(daphne):
    # (Daphne itself, through Autobahn, drops such a connection without a
    # close frame: no baseline here.)
    with daphne.connect("/", max_size=2 * MiB) as ws:
        assert ask(ws, "who") == "direct"
        exactly = os.urandom(MiB)
        ws.send(exactly)
        assert ws.recv(timeout=TIMEOUT) == exactly
        with contextlib.suppress(ConnectionClosed):
            ws.send(os.urandom(MiB + 1))
        assert close_code(ws) == 1009


@pytest.mark.parametrize("path", ["/", "/asgi/"])
def test_the_application_closes_with_its_code(daphne, path):
    with daphne.connect(path) as ws:
        assert ask(ws, "who") == ("asgi" if path == "/asgi/" else "direct")
        ws.send("close:4404")
        assert close_code(ws) == 4404
        assert ws.close_code == 4404


def _tagged(n: int) -> str:
    return f"/tag/{os.getpid()}-{time.monotonic_ns()}-{n}/"


def test_every_disconnection_reaches_the_application_and_daphne_goes_on(daphne):
    ended: list[str] = []

    # The client closes (1000).
    path = _tagged(1)
    with daphne.connect(path) as ws:
        assert ask(ws, "who") == "direct"
    ended.append(path)

    # The application closes (4404).
    path = _tagged(2)
    with daphne.connect(path) as ws:
        assert ask(ws, "who") == "direct"
        ws.send("close:4404")
        assert close_code(ws) == 4404
    ended.append(path)

    # Too big (1009).
    path = _tagged(3)
    with daphne.connect(path) as ws:
        assert ask(ws, "who") == "direct"
        with contextlib.suppress(ConnectionClosed):
            ws.send(os.urandom(MiB + 1))
        assert close_code(ws) == 1009
    ended.append(path)

    # The client's TCP goes away without a closing handshake.
    path = _tagged(4)
    with daphne.connect(path) as ws:
        assert ask(ws, "who") == "direct"
        ws.socket.shutdown(socket.SHUT_RDWR)
    ended.append(path)

    # The client closes before the application took the socket (it falls back to ASGI).
    path = "/slow/"
    with daphne.connect("/asgi/") as ws:
        slow_before = int(ask(ws, f"disconnected:{path}"))
    with daphne.connect(path):
        pass

    with daphne.connect("/asgi/") as ws:
        for tagged in ended:
            wait_for(lambda tagged=tagged: ask(ws, f"disconnected:{tagged}") == "1", timeout=20, interval=0.2,
                     what=f"the application to get websocket.disconnect for {tagged}")
        wait_for(lambda: int(ask(ws, f"disconnected:{path}")) == slow_before + 1, timeout=20, interval=0.2,
                 what="the application to get websocket.disconnect for a connection closed before the take")
        assert ask(ws, "strays") == "0"  # nothing but the disconnect reached receive() after a take

    # And Daphne serves new connections as before.
    for _ in range(3):
        with daphne.connect() as ws:
            assert ask(ws, "who") == "direct"
            ws.send(b"hello")
            assert ws.recv(timeout=TIMEOUT) == b"hello"


def test_no_message_size_limit_when_daphne_has_none(tmp_path_factory):
    # Daphne: "--websocket-max-message-size 0 disables the limit"; through ASGI
    # a 2 MiB message is echoed, and so it is on the taken socket (websockets'
    # 0 would be a limit of 0 bytes: every message closed with 1009).
    with _running_daphne(tmp_path_factory, "--websocket-max-message-size", "0",
                         "--websocket-max-frame-size", "0") as server:
        big = os.urandom(2 * MiB)
        with server.connect("/asgi/", max_size=None) as ws:
            ws.send(big)
            assert ws.recv(timeout=TIMEOUT) == big
        with server.connect("/", max_size=None) as ws:
            ws.send(big)
            assert ws.recv(timeout=TIMEOUT) == big
            assert ask(ws, "who") == "direct"
