"""The terminal WebSocket with ``PLAYGROUND_TERMINAL_DIRECT`` off: frames go
through Daphne and Channels (ASGI), as they do where the socket cannot be
taken (TLS, another server). The same contract as tests/integration/test_terminal.py,
on its main points."""
from __future__ import annotations

import pytest

from tests.integration.conftest import running_stack
from tests.integration.test_terminal import (
    DIRECT_NOTE,
    MiB,
    Terminal,
    open_running,
    token,
)

pytestmark = [pytest.mark.engine, pytest.mark.stack]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, engine):
    """A stack of this module's own (Redis database 57), terminals through ASGI."""
    yield from running_stack(engine, tmp_path_factory.mktemp("asgi-terminal-stack"), redis_db=57,
                             env={"PLAYGROUND_TERMINAL_DIRECT": "0"})


def test_echo_a_shared_screen_and_a_replay_through_asgi(stack, alice, new_session):
    _, node, first = open_running(stack, alice, new_session)
    second = Terminal(stack, node["id"], token=token(stack, alice))
    second.event("status", state="running")
    first.type("echo asgi-$((6*7))\n")
    first.expect(rb"asgi-42")
    second.expect(rb"asgi-42")
    first.close()
    second.close()
    again = Terminal(stack, node["id"], token=token(stack, alice))
    again.event("status", state="running")
    assert bytes(again.output).count(b"asgi-42") == 1
    again.close()
    assert DIRECT_NOTE not in stack.log("web")


def test_a_frame_over_one_mib_closes_with_1009_through_asgi(stack, alice, new_session):
    _, _, term = open_running(stack, alice, new_session)
    term.type(b"#" * (MiB + 1))
    assert term.closed_with() == 1009


def test_the_end_of_the_session_closes_with_4410_through_asgi(stack, alice, new_session):
    session, _, term = open_running(stack, alice, new_session)
    alice.delete(f"{stack.url}/api/sessions/{session['id']}/", timeout=60)
    assert term.closed_with(timeout=60) == 4410
