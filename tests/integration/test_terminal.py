"""The terminal WebSocket end to end (docs/api.md, "Terminal WebSocket"): Daphne, a
Celery worker and beat, Redis and the real lab-host engine, through the
``websockets`` client as a script would connect."""
from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.integration.conftest import wait_instance
from tests.stack import wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]

MiB = 1024 * 1024


class Terminal:
    """One connection to a terminal that reads (and by default acknowledges)
    as a browser would. ``output`` is every output byte received, ``events``
    every JSON event."""

    def __init__(self, stack, iid: str, *, token: str | None = None, headers: dict | None = None,
                 origin: str | None = None, ack: bool = True, max_queue: int | None = 16) -> None:
        self.stack = stack
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Token {token}"
        self.ws = connect(stack.url.replace("http://", "ws://") + f"/ws/instances/{iid}/terminal/",
                          additional_headers=all_headers, origin=origin, open_timeout=30,
                          max_size=2 * MiB, compression=None, legacy=True, max_queue=max_queue)
        self.ack = ack
        self.output = bytearray()
        self.events: list[dict] = []
        self.close_code: int | None = None
        if ack:
            try:
                self.control(type="ack", bytes=0)
            except ConnectionClosed:  # refused at once: closed_with() tells how
                pass

    def control(self, **message) -> None:
        self.ws.send(json.dumps(message))

    def type(self, text: str | bytes) -> None:
        self.ws.send(text.encode() if isinstance(text, str) else text)

    def read(self, timeout: float) -> bool:
        """Take one frame; False once the connection is closed."""
        if self.close_code is not None:
            return False
        try:
            frame = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return True
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd else None
            return False
        if isinstance(frame, bytes):
            self.output += frame
            if self.ack:
                try:
                    self.control(type="ack", bytes=len(frame))
                except ConnectionClosed:  # the next read tells how
                    pass
        else:
            self.events.append(json.loads(frame))
        return True

    def wait(self, predicate, *, timeout: float = 60, what: str = "a condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            if not self.read(timeout=min(1.0, max(0.01, deadline - time.monotonic()))):
                found = predicate()
                if found:
                    return found
                raise AssertionError(f"closed ({self.close_code}) while waiting for {what}; "
                                     f"events {self.events}, output tail {bytes(self.output[-300:])!r}")
        raise AssertionError(f"timed out waiting for {what}; events {self.events}, "
                             f"output tail {bytes(self.output[-300:])!r}")

    def expect(self, pattern: bytes, *, after: int = 0, timeout: float = 60) -> re.Match:
        regex = re.compile(pattern)
        return self.wait(lambda: regex.search(self.output, after), timeout=timeout,
                         what=f"output matching {pattern!r}")

    def event(self, kind: str, *, timeout: float = 60, **fields) -> dict:
        def found():
            return next((e for e in self.events if e.get("type") == kind
                         and all(e.get(k) == v for k, v in fields.items())), None)

        return self.wait(found, timeout=timeout, what=f"a {kind} event {fields or ''}")

    def closed_with(self, *, timeout: float = 30) -> int | None:
        deadline = time.monotonic() + timeout
        while self.read(timeout=1.0):
            if time.monotonic() > deadline:
                raise AssertionError(f"still open after {timeout} s; events {self.events}")
        return self.close_code

    def close(self) -> None:
        self.ws.close()


def running_node(stack, client, new_session) -> tuple[dict, dict]:
    session = new_session(client)
    node = wait_instance(stack, client, session["id"], session["instances"][0]["id"], "running", timeout=60)
    return session, node


def token(stack, client) -> str:
    return client.headers["Authorization"].split()[1]


def exec_in(stack, client, session: dict, node: dict, command: str) -> dict:
    answer = client.post(f"{stack.url}/api/sessions/{session['id']}/instances/{node['id']}/exec/",
                         json={"command": command}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def open_running(stack, client, new_session) -> tuple[dict, dict, Terminal]:
    session, node = running_node(stack, client, new_session)
    term = Terminal(stack, node["id"], token=token(stack, client))
    term.event("status", state="running")
    return session, node, term


# -- what a person sees -----------------------------------------------------------------

def test_typed_commands_run_and_their_output_comes_back(stack, alice, new_session):
    _, _, term = open_running(stack, alice, new_session)
    assert term.event("control")["by"] == "owner"
    assert term.event("expiry")["expires_at"]
    term.type("echo $((6*7))\n")
    term.expect(rb"\b42\r?\n")
    term.close()
    # By default the frames went over the connection's own socket, not through
    # Twisted (playground.rawsocket; tests/integration/test_terminal_asgi.py
    # runs the ASGI way).
    assert DIRECT_NOTE in stack.log("web")


DIRECT_NOTE = "terminal WebSockets run on their own sockets"


def test_connecting_while_the_instance_provisions_shows_the_status_then_the_shell(stack, alice, new_session):
    session = new_session(alice)
    term = Terminal(stack, session["instances"][0]["id"], token=token(stack, alice))
    states = lambda: [e["state"] for e in term.events if e["type"] == "status"]  # noqa: E731
    term.wait(lambda: "running" in states(), what="the instance to run")
    assert states()[0] in {"provisioning", "running"}
    term.type("echo ready-$((2+3))\n")
    term.expect(rb"ready-5")
    term.close()


def test_two_connections_share_one_screen(stack, alice, new_session):
    _, node, first = open_running(stack, alice, new_session)
    second = Terminal(stack, node["id"], token=token(stack, alice))
    second.event("status", state="running")
    first.type("echo shared-$((20+3))\n")
    first.expect(rb"shared-23")
    second.expect(rb"shared-23")
    second.type("echo back-$((30+4))\n")
    first.expect(rb"back-34")
    second.expect(rb"back-34")
    first.close()
    second.close()


def test_a_reconnection_replays_earlier_output_exactly_once(stack, alice, new_session):
    _, node, term = open_running(stack, alice, new_session)
    term.type("echo marker-$((3*5))\n")
    term.expect(rb"marker-15")
    term.close()

    again = Terminal(stack, node["id"], token=token(stack, alice))
    # The replay comes first, before the status; live output only after it.
    again.event("status", state="running")
    replay = bytes(again.output)
    assert replay.count(b"marker-15") == 1, replay
    again.type("echo after-$((4*4))\n")
    again.expect(rb"after-16")
    assert again.output.count(b"marker-15") == 1
    again.close()


def test_resizing_sets_the_size_the_shell_sees(stack, alice, new_session):
    _, _, term = open_running(stack, alice, new_session)
    term.control(type="resize", cols=123, rows=45)
    term.type("stty size\n")
    term.expect(rb"\b45 123\b")
    # Out-of-range sizes are clamped, not refused.
    mark = len(term.output)
    term.control(type="resize", cols=100000, rows=0)
    term.type("stty size\n")
    term.expect(rb"\b2 1000\b", after=mark)
    term.close()


def test_a_one_mib_paste_arrives_whole_and_in_order(stack, alice, new_session):
    session, node, term = open_running(stack, alice, new_session)
    # Every byte value but 0x1e, the first of the engine's detach keys (held
    # back until the next byte shows whether the sequence follows).
    rng = random.Random(7)
    payload = bytes(b if b != 0x1E else 0x1F for b in rng.randbytes(MiB))
    term.type("mkdir -p /tmp; stty raw -echo; echo READY-$((1+1)); head -c 1048576 > /tmp/paste; stty sane; "
              "echo DONE-$((2+2))\n")
    term.expect(rb"READY-2")
    for start in range(0, len(payload), 64 * 1024):
        term.type(payload[start:start + 64 * 1024])
    term.expect(rb"DONE-4", timeout=120)
    answer = exec_in(stack, alice, session, node, "md5sum /tmp/paste; wc -c < /tmp/paste")
    digest, size = answer["output"].split()[0], answer["output"].split()[-1]
    assert size == str(MiB)
    assert digest == hashlib.md5(payload).hexdigest()
    term.close()


def test_invalid_control_messages_get_an_error_not_a_closed_terminal(stack, alice, new_session):
    _, _, term = open_running(stack, alice, new_session)
    term.ws.send("not json")
    term.event("error", code="invalid")
    term.control(type="teleport")
    term.wait(lambda: len([e for e in term.events if e["type"] == "error"]) == 2, what="a second error")
    term.control(type="resize", cols="wide", rows=3)
    term.wait(lambda: len([e for e in term.events if e["type"] == "error"]) == 3, what="a third error")
    term.control(type="ping")
    term.event("pong")
    term.control(type="takeover")
    term.wait(lambda: len([e for e in term.events if e["type"] == "control"]) == 2, what="control again")
    term.type("echo still-$((5+5))\n")
    term.expect(rb"still-10")
    term.close()


def test_when_the_instance_stops_the_terminal_says_it_exited(stack, alice, new_session, engine):
    _, node, term = open_running(stack, alice, new_session)
    [container] = engine.containers(filters={"label": f"playground.instance={node['id']}"})
    engine.kill(container["Id"])  # as the kernel's OOM killer would
    term.event("status", state="exited", timeout=60)
    term.close()


# -- flow control -------------------------------------------------------------------------

def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_connection_that_never_acks_neither_grows_the_server_nor_stalls_the_others(stack, alice, new_session):
    [web_pid] = [proc.pid for name, proc in stack.processes if name == "web"]
    _, node, reader = open_running(stack, alice, new_session)
    silent = Terminal(stack, node["id"], token=token(stack, alice), ack=False)
    # The silent one's client takes what arrives (its library buffers a few
    # frames), but never acknowledges.
    silent_got = bytearray()
    stop = threading.Event()

    def drain_silently() -> None:
        while not stop.is_set():
            try:
                frame = silent.ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            if isinstance(frame, bytes):
                silent_got.extend(frame)

    drainer = threading.Thread(target=drain_silently, daemon=True)
    drainer.start()
    reader.type("yes\n")
    reader.wait(lambda: len(reader.output) > 8 * MiB, timeout=120, what="8 MiB of yes")
    before = rss_kib(web_pid)
    reader.wait(lambda: len(reader.output) > 40 * MiB, timeout=300, what="40 MiB of yes")
    after = rss_kib(web_pid)
    # Over 32 MiB went through; the server kept at most a window per connection.
    assert after - before < 16 * 1024, (before, after)
    assert len(silent_got) <= MiB, len(silent_got)

    mark = len(reader.output)
    reader.type(b"\x03")
    reader.type("echo stopped-$((7*6))\n")
    reader.expect(rb"stopped-42", after=mark, timeout=120)
    stop.set()
    drainer.join(timeout=10)
    silent.close()
    reader.close()


def test_output_waits_for_a_lone_connection_that_stopped_acking(stack, alice, new_session):
    session, node, term = open_running(stack, alice, new_session)
    term.ack = False
    # Count the lines written: the program blocks once the window is full.
    term.type('mkdir -p /tmp; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; printf "%01000d\\n" $i; done\n')

    def count() -> int:
        # The loop truncates the file before it writes it: read again if empty.
        return wait_for(lambda: exec_in(stack, alice, session, node, "cat /tmp/count")["output"].strip(),
                        timeout=30, what="a count")

    term.wait(lambda: len(term.output) >= MiB, timeout=120, what="a window of output")
    first = wait_for(lambda: (c := count()) == count() and c, timeout=120, what="the program to block")
    time.sleep(2)
    assert count() == first, "the program kept writing although nobody took its output"
    assert len(term.output) <= MiB + 4096  # the window, and what was acked before it
    # Acknowledging lets it run again.
    term.ack = True
    term.control(type="ack", bytes=len(term.output))
    term.wait(lambda: count() != first, timeout=120, what="the program to run again")
    term.type(b"\x03")
    term.close()


# -- refusals -------------------------------------------------------------------------------

def test_a_bad_token_is_refused_with_4401(stack, alice, new_session):
    _, node = running_node(stack, alice, new_session)
    term = Terminal(stack, node["id"], token="not-a-real-key", ack=False)
    assert term.closed_with() == 4401
    anonymous = Terminal(stack, node["id"], ack=False, origin=stack.url)
    assert anonymous.closed_with() == 4401


def test_someone_elses_instance_or_an_unknown_one_is_4404(stack, alice, bob, new_session):
    _, node = running_node(stack, alice, new_session)
    term = Terminal(stack, node["id"], token=token(stack, bob), ack=False)
    assert term.closed_with() == 4404
    unknown = Terminal(stack, "0" * 32, token=token(stack, bob), ack=False)
    assert unknown.closed_with() == 4404


def guest_browser(stack) -> requests.Session:
    """A browser's cookie session: a guest identity from the landing page."""
    browser = requests.Session()
    assert browser.get(stack.url + "/", timeout=30).status_code == 200
    assert browser.cookies.get("sessionid")
    return browser


def test_a_cookie_handshake_needs_an_origin_of_our_own(stack, new_session):
    browser = guest_browser(stack)
    csrf = browser.cookies["csrftoken"]
    answer = browser.post(stack.url + "/api/sessions/", json={}, headers={"X-CSRFToken": csrf}, timeout=30)
    assert answer.status_code == 201, answer.text
    node = answer.json()["instances"][0]
    cookie = f"sessionid={browser.cookies['sessionid']}"
    try:
        foreign = Terminal(stack, node["id"], headers={"Cookie": cookie}, origin="http://evil.example", ack=False)
        assert foreign.closed_with() == 4403
        missing = Terminal(stack, node["id"], headers={"Cookie": cookie}, ack=False)
        assert missing.closed_with() == 4403
        own = Terminal(stack, node["id"], headers={"Cookie": cookie}, origin=stack.url)
        own.event("status", state="running")
        own.type("echo cookie-$((9*9))\n")
        own.expect(rb"cookie-81")
        own.close()
    finally:
        browser.delete(f"{stack.url}/api/sessions/{answer.json()['id']}/", headers={"X-CSRFToken": csrf}, timeout=60)


def test_a_token_handshake_needs_no_origin(stack, alice, new_session):
    _, node = running_node(stack, alice, new_session)
    term = Terminal(stack, node["id"], token=token(stack, alice))  # the client sends no Origin
    assert "origin" not in {k.lower() for k in term.ws.request.headers}
    term.event("status", state="running")
    term.close()


def test_the_end_of_the_session_closes_its_terminals_with_4410(stack, alice, new_session):
    session, node, term = open_running(stack, alice, new_session)
    assert alice.delete(f"{stack.url}/api/sessions/{session['id']}/", timeout=60).status_code == 204
    term.event("status", state="session_over", timeout=30)
    assert term.closed_with() == 4410
    # And a new connection to it is told so.
    late = Terminal(stack, node["id"], token=token(stack, alice), ack=False)
    assert late.closed_with() == 4410


def test_extending_the_session_sends_the_new_expiry(stack, alice, new_session):
    session, _, term = open_running(stack, alice, new_session)
    first = term.event("expiry")["expires_at"]
    answer = alice.post(f"{stack.url}/api/sessions/{session['id']}/extend/", timeout=30)
    assert answer.status_code == 200, answer.text
    term.wait(lambda: any(e["type"] == "expiry" and e["expires_at"] != first for e in term.events),
              what="a later expiry")
    assert [e for e in term.events if e["type"] == "expiry"][-1]["expires_at"] == answer.json()["expires_at"]
    term.close()


def test_a_frame_over_one_mib_closes_with_1009(stack, alice, new_session):
    _, _, term = open_running(stack, alice, new_session)
    term.type(b"#" * (MiB + 1))
    assert term.closed_with() == 1009


def test_input_arriving_too_fast_is_refused_with_4429_and_a_retry_time(stack, alice, new_session):
    _, node = running_node(stack, alice, new_session)
    # The client reads all the while (no flow control of its own): a client
    # that stops reading may lose the last frames when the server gives up
    # waiting for its side of the closing handshake.
    term = Terminal(stack, node["id"], token=token(stack, alice), max_queue=None)
    term.event("status", state="running")
    # Far past the burst allowance: a script gone wild, not a person. Sent
    # until refused (no fixed count: on a loaded machine a count of tiny
    # frames may trickle in slower than the allowance refills).
    chunk = b":" * 16384
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            term.type(chunk)
        except ConnectionClosed:
            break
    error = term.event("error", code="rate_limited")
    assert error["retry_after"] >= 1
    assert term.closed_with() == 4429


def _nice_of(pid: int, tid: int | None = None) -> int:
    """The nice value in /proc's stat (field 19), of a process or one of its threads."""
    path = Path(f"/proc/{pid}/task/{tid}/stat") if tid else Path(f"/proc/{pid}/stat")
    return int(path.read_text().rsplit(")", 1)[1].split()[16])


def test_the_web_tier_runs_above_the_sandboxes_priority(stack, alice, new_session, engine):
    _, node, term = open_running(stack, alice, new_session)
    term.type(b"echo prio-$((5*5))\n")
    term.expect(rb"prio-25")
    [web] = [proc for name, proc in stack.processes if name == "web"]
    # Every thread of Daphne (its loop and the pools that started after it).
    threads = [int(t.name) for t in Path(f"/proc/{web.pid}/task").iterdir()]
    assert len(threads) > 1
    assert {_nice_of(web.pid, tid) for tid in threads} == {-10}
    [container] = engine.containers(filters={"label": f"playground.instance={node['id']}"})
    shell_pid = engine.inspect_container(container["Id"])["State"]["Pid"]
    assert _nice_of(shell_pid) == 0
