"""The terminal relay (sandboxes/images/shell/relay/) closes a connection
that does not say its hello in time: silent connections from the session's
network cannot hold its few places and keep the web tier from the terminal.
The relay is built from its source on this machine (as the image recipe
does) and run as a process of the test's own."""
from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.stack import free_port, wait_for

SOURCE = Path(__file__).resolve().parents[2] / "sandboxes/images/shell/relay/playground-relay.c"
MAX_CLIENTS = 16  # the relay's places (MAX_CLIENTS in its source)
KEY = "k" * 32


@pytest.fixture
def relay(tmp_path):
    if shutil.which("cc") is None:
        pytest.fail("no C compiler: scripts/setup.sh installs gcc, which the image recipe needs too")
    binary = tmp_path / "playground-relay"
    subprocess.run(["cc", "-O2", "-Wall", "-o", str(binary), str(SOURCE)], check=True)
    port = free_port()
    process = subprocess.Popen([str(binary), "sleep", "600"], stdin=subprocess.DEVNULL,
                               env={"PLAYGROUND_RELAY_TOKEN": KEY, "PLAYGROUND_RELAY_PORT": str(port),
                                    "PATH": "/usr/bin:/bin"})
    wait_for(lambda: _connects(port), timeout=30, what="the relay to listen")
    yield port
    process.kill()
    process.wait(timeout=10)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return True
    except OSError:
        return False


def socket_tables(port: int) -> bytes:
    """Ask the relay as the driver does (mode P) and read its whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        data = b""
        try:
            sock.sendall(f"{KEY} P\n".encode())
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:  # turned away before it read our hello
            return b""
        return data


def test_silent_connections_are_closed_and_the_driver_gets_its_place_back(relay):
    silent = [socket.create_connection(("127.0.0.1", relay), timeout=30) for _ in range(MAX_CLIENTS)]
    try:
        assert socket_tables(relay) == b""  # every place held: turned away
        # Each silent connection is closed by the relay once its hello is late
        # (recv: end of stream, not our own timeout).
        for sock in silent:
            assert sock.recv(1) == b""
        assert b"local_address" in socket_tables(relay)
    finally:
        for sock in silent:
            sock.close()
