"""The terminal relay (sandboxes/images/shell/relay/) against the real engine.

The shell image's main process is ``playground-relay``: it owns the shell's
terminal and serves it on the instance's address to whoever knows the key the
driver put in the container's environment. These tests go around the driver
where they must (a raw TCP connection, a wrong key) and through it otherwise.
Every object carries a deployment label of this module's own and is removed.
"""

from __future__ import annotations

import os
import secrets
import select
import socket
import time

import pytest

from sandboxes.base import InstanceSpec
from sandboxes.docker import LABEL_RELAY, _relay_of
from tests.integration.conftest import own_driver

IMAGE = os.environ.get("PLAYGROUND_TEST_IMAGE", "playground-shell:latest")
DEPLOYMENT = f"test-relay-{secrets.token_hex(4)}"


def read_until(stream, wanted: bytes, *, timeout: float = 20) -> bytes:
    """All that ``stream`` sends up to and with ``wanted``."""
    return _read(stream, wanted, timeout, keep=None)[0]


def drain_until(stream, wanted: bytes, *, timeout: float, until_closed: bool = False) -> int:
    """Read everything until ``wanted`` (or, ``until_closed``, until the
    stream ends), keeping only a tail; how many bytes came."""
    return _read(stream, wanted, timeout, keep=4096, until_closed=until_closed)[1]


def _read(stream, wanted: bytes, timeout: float, keep: int | None,
          until_closed: bool = False) -> tuple[bytes, int]:
    """(what came, or about its last ``keep`` bytes; how many bytes came)."""
    seen, total = b"", 0
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            raise AssertionError(f"{wanted!r} did not come within {timeout} s after {total} bytes; "
                                 f"last output: {seen[-400:]!r}")
        chunk = stream.recv(262144)
        if not chunk and until_closed:
            return seen, total
        if not chunk:
            raise AssertionError(f"the terminal closed after {total} bytes, before {wanted!r}; "
                                 f"last output: {seen[-400:]!r}")
        total += len(chunk)
        seen += chunk
        if keep is not None and len(seen) > 2 * keep:
            seen = seen[-keep:]
    return seen, total


@pytest.fixture(scope="module")
def driver():
    yield from own_driver(DEPLOYMENT)


@pytest.fixture(scope="module")
def node(driver):
    network = driver.create_network("relay")
    created = driver.create_instance(InstanceSpec(f"r{secrets.token_hex(4)}", IMAGE, "node1", network))
    return created


def test_the_image_declares_a_relay_and_the_state_records_its_port(driver, node):
    info = driver.api.inspect_container(node.state["id"])
    assert info["Config"]["Labels"][LABEL_RELAY] == str(node.state["relay"])
    port, token = _relay_of(info)
    assert port == node.state["relay"] and len(token) >= 24


def test_attach_reads_the_relay_on_the_instance_address(driver, node):
    terminal = driver.attach(node.state)
    try:
        # A plain socket to the instance's address, not an engine stream.
        assert isinstance(terminal, socket.socket)
        assert terminal.getpeername() == (node.ip, node.state["relay"])
        terminal.sendall(b"echo relay-$((6*7))\n")
        read_until(terminal, b"relay-42")
    finally:
        terminal.close()


def closed_without_output(sock: socket.socket) -> bool:
    """True if the peer closed (or reset) the connection without sending a byte."""
    sock.settimeout(10)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:  # closed with our unread bytes still queued
        return True


def test_a_wrong_key_is_turned_away_without_a_byte(node):
    with socket.create_connection((node.ip, node.state["relay"]), timeout=10) as sock:
        sock.sendall(b"not-the-key L\necho leaked-$((2*21))\n")
        assert closed_without_output(sock)  # no output, no input taken
    with socket.create_connection((node.ip, node.state["relay"]), timeout=10) as sock:
        sock.sendall(b"\n" * 300)  # no key at all, and more than any hello
        assert closed_without_output(sock)


def test_the_shell_never_sees_the_key(driver, node):
    terminal = driver.attach(node.state)
    try:
        terminal.sendall(
            b"echo key=[$PLAYGROUND_RELAY_TOKEN]; "
            b"tr '\\0' '\\n' </proc/$(pgrep -o playground-rela)/environ | grep -c RELAY_TOKEN=xxxx; echo done-$((1+1))\n"
        )
        seen = read_until(terminal, b"done-2")
    finally:
        terminal.close()
    assert b"key=[]" in seen
    # The relay's own /proc/PID/environ shows the key blanked out.
    assert b"\r\n1\r\n" in seen


def test_a_client_that_stops_reading_does_not_freeze_the_terminal_for_the_others(driver):
    network = driver.create_network("relay-stuck")
    created = driver.create_instance(InstanceSpec(f"r{secrets.token_hex(4)}", IMAGE, "node1", network))
    try:
        stuck = driver.attach(created.state)  # never read from
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader = driver.attach(created.state)
        try:
            reader.sendall(b"head -c 30000000 /dev/zero | tr '\\0' y; echo; echo flood-$((3*5))-done\n")
            assert drain_until(reader, b"flood-15-done", timeout=90) >= 30_000_000
            # The one that fell behind was let go rather than followed.
            assert drain_until(stuck, b"never", timeout=30, until_closed=True) < 30_000_000
        finally:
            reader.close()
            stuck.close()
    finally:
        driver.remove_instance(created.state)
        driver.remove_network(network)


def test_the_relay_port_is_not_listed_as_a_learner_port(driver, node):
    ports = driver.listening_ports(node.state)
    assert node.state["relay"] not in ports


def test_recent_output_comes_from_the_relay(driver, node):
    marker = f"kept-{secrets.token_hex(4)}".encode()
    terminal = driver.attach(node.state)
    try:
        terminal.sendall(b"echo " + marker + b"\n")
        read_until(terminal, marker + b"\r\n")
    finally:
        terminal.close()
    deadline = time.monotonic() + 20
    while marker not in driver.recent_output(node.state, max_bytes=64 * 1024):
        assert time.monotonic() < deadline, "the relay did not give back the recent output"
        time.sleep(0.2)
    assert len(driver.recent_output(node.state, max_bytes=10)) <= 10


def test_a_resize_through_the_engine_reaches_the_shell(driver, node):
    terminal = driver.attach(node.state)
    try:
        driver.resize(node.state, cols=97, rows=31)
        deadline = time.monotonic() + 20
        while True:
            terminal.sendall(b"stty size\n")
            try:
                read_until(terminal, b"31 97", timeout=2)
                break
            except AssertionError:
                assert time.monotonic() < deadline, "stty size never showed the new size"
    finally:
        terminal.close()


def test_without_a_reachable_address_the_relay_is_reached_through_the_engine(driver):
    # No network: the web tier cannot reach the instance, the engine can.
    created = driver.create_instance(InstanceSpec(f"r{secrets.token_hex(4)}", IMAGE, "node1", None))
    try:
        terminal = driver.attach(created.state)
        try:
            assert not isinstance(terminal, socket.socket)
            terminal.sendall(b"echo through-exec-$((3*3))\n")
            read_until(terminal, b"through-exec-9")
            # A flood fills the engine's terminal faster than it is read: the
            # client in the instance waits for room instead of giving up.
            terminal.sendall(b"head -c 20000000 /dev/zero | tr '\\0' x; echo; echo flood-$((2*4))-done\n")
            assert drain_until(terminal, b"flood-8-done", timeout=60) >= 20_000_000
            assert relay_clients(driver, created.state), "the exec'd relay client runs while attached"
        finally:
            terminal.close()
        # The engine does not end a TTY exec when its attachment closes; the
        # driver stops the client, else it would copy the terminal into
        # nowhere for as long as the instance runs.
        deadline = time.monotonic() + 20
        while relay_clients(driver, created.state):
            assert time.monotonic() < deadline, f"still running: {relay_clients(driver, created.state)}"
            time.sleep(0.2)
        # And a new attachment through the engine still works.
        again = driver.attach(created.state)
        try:
            again.sendall(b"echo again-$((5*5))\n")
            read_until(again, b"again-25")
        finally:
            again.close()
    finally:
        driver.remove_instance(created.state)


def relay_clients(driver, state: dict) -> list[str]:
    """The relay clients (``playground-relay --connect``) running in the instance."""
    top = driver.api.top(state["id"], ps_args="-eo pid,args")
    column = top["Titles"].index("COMMAND") if "COMMAND" in top["Titles"] else -1
    return [" ".join(row) for row in top["Processes"] if "--connect" in row[column]]


def test_the_instance_ends_when_its_shell_loop_ends(driver):
    network = driver.create_network("relay-end")
    created = driver.create_instance(InstanceSpec(f"r{secrets.token_hex(4)}", IMAGE, "node1", network))
    try:
        terminal = driver.attach(created.state)
        try:
            # Kill the shell loop (the relay's child): the relay passes on what
            # was left, closes the connection and ends, and so does the instance.
            terminal.sendall(b"kill -9 $(pgrep -o playground-shel)\n")
            deadline = time.monotonic() + 20
            terminal.settimeout(20)
            while terminal.recv(65536):
                assert time.monotonic() < deadline, "the relay kept the connection open"
        finally:
            terminal.close()
        deadline = time.monotonic() + 20
        while driver.inspect(created.state).state == "running":
            assert time.monotonic() < deadline, "the instance kept running without its shell"
            time.sleep(0.2)
    finally:
        driver.remove_instance(created.state)
        driver.remove_network(network)


def test_the_ports_scan_asks_the_relay_not_the_engine(driver, node, monkeypatch):
    terminal = driver.attach(node.state)
    try:
        terminal.sendall(b"python3 -m http.server 8123 --bind 0.0.0.0 >/dev/null 2>&1 &\n")
        deadline = time.monotonic() + 20
        # No exec may be made: the socket tables come from the relay.
        monkeypatch.setattr(driver, "exec", lambda *a, **k: pytest.fail("the scan exec'd in the instance"))
        while 8123 not in driver.listening_ports(node.state):
            assert time.monotonic() < deadline, "the relay never showed the new listening port"
            time.sleep(0.3)
        assert node.state["relay"] not in driver.listening_ports(node.state)
    finally:
        terminal.sendall(b"kill %1\n")
        terminal.close()
