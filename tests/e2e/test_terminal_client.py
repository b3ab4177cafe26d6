"""The browser's terminal client keeps docs/api.md's side of the terminal protocol.

These tests put a scripted peer in place of the terminal WebSocket (Playwright
routes the page's WebSocket to it), because what they check is the client's
own behaviour: what it sends, and what it does on close codes the real server
sends only in rare conditions (4429, 1011). Pages and the HTTP API are the real
stack's; the real server's side is covered by the other end-to-end tests."""
from __future__ import annotations

import json
import re
import threading

import pytest

from tests.e2e.screens import SessionPage, TerminalView

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

TERMINAL_URL = re.compile(r".*/ws/instances/[^/]+/terminal/$")


class Peer:
    """Plays the server: greets each connection and records what the client sends."""

    def __init__(self) -> None:
        self.connections: list = []
        self.received: list[list[str | bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, ws) -> None:
        with self.lock:
            n = len(self.connections)
            self.connections.append(ws)
            self.received.append([])
        ws.on_message(lambda message: self.received[n].append(message))
        ws.send(json.dumps({"type": "status", "state": "running"}))
        ws.send(f"screen of connection {n}\r\n# ".encode())

    def controls(self, n: int, kind: str) -> list[dict]:
        found = [json.loads(m) for m in self.received[n] if isinstance(m, str)]
        return [m for m in found if m.get("type") == kind]

    def input(self, n: int) -> list[bytes]:
        return [m for m in self.received[n] if isinstance(m, bytes)]


@pytest.fixture
def peer(page) -> Peer:
    scripted = Peer()
    page.route_web_socket(TERMINAL_URL, scripted)
    return scripted


@pytest.fixture
def terminal(page, peer) -> TerminalView:
    view = SessionPage.start_from_landing(page).terminal()
    view.wait_for_line(r"screen of connection 0")
    return view


def test_it_acks_zero_at_once_then_the_bytes_it_rendered(page, peer, terminal):
    terminal.wait_until(lambda _: peer.controls(0, "ack"), timeout=30, what="a first ack")
    assert peer.controls(0, "ack")[0] == {"type": "ack", "bytes": 0}
    greeting = len(b"screen of connection 0\r\n# ")
    output = b"".join(f"line {i}\r\n".encode() for i in range(5000))
    peer.connections[0].send(output)
    terminal.wait_for_line(r"line 4999")
    terminal.wait_until(lambda _: sum(a["bytes"] for a in peer.controls(0, "ack")) == greeting + len(output),
                        timeout=30, what="acks adding up to every byte sent")


def test_it_sends_its_size_and_typed_bytes(page, peer, terminal):
    rows, cols = terminal.size()
    terminal.wait_until(lambda _: {"type": "resize", "cols": cols, "rows": rows} in peer.controls(0, "resize"),
                        timeout=30, what="the terminal's size")
    terminal.focus()
    page.keyboard.type("ls")
    page.keyboard.press("Control+c")
    terminal.wait_until(lambda _: b"".join(peer.input(0)) == b"ls\x03", timeout=30, what="the typed bytes")


def test_a_long_paste_goes_in_frames_of_at_most_64_kib(context, page, peer, terminal):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    text = "".join(f"{i:07d} pasted\n" for i in range(20_000))  # 300 kB
    page.evaluate("text => navigator.clipboard.writeText(text)", text)
    terminal.focus()
    page.keyboard.press("Control+Shift+V")
    # xterm sends a paste with \r for \n, as a terminal does.
    wanted = text.replace("\n", "\r").encode()
    terminal.wait_until(lambda _: len(b"".join(peer.input(0))) >= len(wanted), timeout=30, what="the whole paste")
    frames = peer.input(0)
    assert b"".join(frames) == wanted
    assert len(frames) > 1 and max(len(f) for f in frames) <= 64 * 1024


def test_it_copies_the_selection_with_ctrl_shift_c(context, page, terminal):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    terminal.focus()  # a click, so before selecting: a click clears the selection
    page.evaluate("iid => window.playgroundTerminals[iid].term.selectAll()", terminal.iid)
    page.keyboard.press("Control+Shift+C")
    terminal.wait_until(lambda _: "screen of connection 0" in page.evaluate("navigator.clipboard.readText()"),
                        timeout=30, what="the selection in the clipboard")


def test_it_reconnects_after_a_drop_and_shows_the_screen_once(page, peer, terminal):
    peer.connections[0].close(code=1011, reason="internal")
    overlay = page.locator(".pane.active .term-overlay")
    overlay.get_by_text("internal error").wait_for()
    terminal.wait_for_line(r"screen of connection 1")
    # The replay of the new connection replaces the old screen.
    assert "screen of connection 0" not in terminal.text()
    assert peer.controls(1, "ack")[0] == {"type": "ack", "bytes": 0}


def test_a_rate_limited_connection_waits_as_told_and_says_so(page, peer, terminal):
    peer.connections[0].send(json.dumps({"type": "error", "code": "rate_limited",
                                         "message": "Too many connections.", "retry_after": 2}))
    peer.connections[0].close(code=4429)
    page.locator(".pane.active .term-overlay").get_by_text(re.compile(r"Reconnecting in [12] s")).wait_for()
    terminal.wait_for_line(r"screen of connection 1")


@pytest.mark.parametrize("code, text", [
    (4401, "signed out"),
    (4403, "may not use this terminal"),
    (4404, "no longer exists"),
])
def test_a_final_close_code_stops_reconnecting_and_says_why(page, peer, terminal, code, text):
    peer.connections[0].close(code=code)
    page.locator(".pane.active .term-overlay").get_by_text(text).wait_for()
    page.wait_for_timeout(2500)  # longer than the first back-off
    assert len(peer.connections) == 1
    assert terminal.page.locator(".pane.active .connection").inner_text() == "disconnected"


def test_a_session_over_status_stops_the_terminal(page, peer, terminal):
    peer.connections[0].send(json.dumps({"type": "status", "state": "session_over"}))
    page.locator(".pane.active .term-overlay").get_by_text("This session is over").wait_for()


def test_while_an_instructor_has_control_typing_sends_nothing(page, peer, terminal):
    peer.connections[0].send(json.dumps({"type": "control", "by": "instructor"}))
    page.locator(".pane.active .term-host.read-only").wait_for()
    terminal.focus()
    page.keyboard.type("no")
    peer.connections[0].send(json.dumps({"type": "control", "by": "owner"}))
    page.locator(".pane.active .term-host:not(.read-only)").wait_for()
    page.keyboard.type("yes")
    terminal.wait_until(lambda _: b"".join(peer.input(0)) == b"yes", timeout=30, what="only the bytes typed with control")


def test_an_expiry_event_moves_the_countdown(page, peer, terminal):
    peer.connections[0].send(json.dumps({"type": "expiry", "expires_at": "2999-01-01T00:00:00+00:00"}))
    page.wait_for_function("() => document.getElementById('countdown').textContent.split(':')[0].length > 4")
