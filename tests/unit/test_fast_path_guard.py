"""The terminal's fast path (``playground.rawsocket``) hands sockets over only
on the Daphne, Twisted, Autobahn, Channels and websockets versions it was
written for; on any other, terminals go through ASGI and the log says why,
once."""
from __future__ import annotations

import logging
import re

import pytest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from playground import rawsocket
from tests.stack import ROOT


def pins(path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


@pytest.fixture
def daphne(monkeypatch):
    """Daphne's Server as asgi.py finds it, restored afterwards; returns a
    function that makes the scope of one new plain WebSocket connection."""
    monkeypatch.setattr(Server, "_playground_offers_sockets", False, raising=False)
    monkeypatch.setattr(Server, "create_application", lambda self, protocol, scope: None)
    monkeypatch.setattr(rawsocket, "_plain", lambda transport: True)
    monkeypatch.setattr(rawsocket, "_mismatch_logged", False)

    def connect() -> dict:
        protocol = WebSocketProtocol.__new__(WebSocketProtocol)
        protocol.transport = object()
        scope: dict = {"type": "websocket"}
        Server.create_application(object(), protocol, scope)
        return scope

    return connect


def test_it_was_written_for_the_versions_requirements_pin():
    pinned = pins(ROOT / "requirements.txt")
    assert {name: pinned.get(name) for name in rawsocket.WRITTEN_FOR} == rawsocket.WRITTEN_FOR, (
        "a pin moved: check playground/rawsocket.py against the new version (the terminal tests), "
        "then update WRITTEN_FOR"
    )
    assert rawsocket.version_mismatches() == {}  # what this environment runs


def test_on_the_versions_it_was_written_for_sockets_are_offered(daphne, caplog):
    rawsocket.offer()
    extensions = daphne()["extensions"]
    assert rawsocket.EXTENSION in extensions and rawsocket.FLOW in extensions
    assert not [r for r in caplog.records if r.name == "playground.rawsocket" and r.levelno >= logging.WARNING]


def test_on_another_version_terminals_go_through_asgi_and_the_log_says_so_once(daphne, monkeypatch, caplog):
    monkeypatch.setitem(rawsocket.WRITTEN_FOR, "autobahn", "0.1")
    caplog.set_level(logging.WARNING, logger="playground.rawsocket")
    rawsocket.offer()
    scope = daphne()
    assert rawsocket.EXTENSION not in scope["extensions"]
    assert rawsocket.FLOW in scope["extensions"]  # the port proxy's flow control stays
    # The consumer then keeps the connection on ASGI (consumers.py: take() is None).
    assert rawsocket.take(scope, on_message=lambda message: None) is None
    assert rawsocket.fast_path_supported() is False
    [warning] = [r.getMessage() for r in caplog.records if r.name == "playground.rawsocket"]
    installed = rawsocket.version_mismatches()["autobahn"]
    assert "go through ASGI" in warning and "autobahn 0.1" in warning and f"autobahn {installed}" in warning
