"""Two web processes behind one address (nginx from Debian, with the shipped
deploy/nginx/playground.conf): a learner's two tabs on different processes
share one screen; status, expiry, control and class events reach viewers on
both; and a rolling restart (SIGTERM one Daphne, start it again, then the
other) costs an open terminal no more than a reconnect, to the same shell."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from websockets.sync.client import connect

from tests.integration.conftest import _purge, end_every_session, nothing_left, wait_instance
from tests.integration.test_terminal import Terminal
from tests.multiweb import MultiWebStack, OwnRedis, ReconnectingTerminal
from tests.stack import ROOT, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]

REDIS_DB = 67
ONE_NODE_LAB = ROOT / "tests" / "e2e" / "labs" / "stop-and-run"

# What a rolling restart cost, for docs/operations.md (printed, never asserted).


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory) -> Iterator[MultiWebStack]:
    workdir = tmp_path_factory.mktemp("two-webs")
    redis = OwnRedis(workdir)
    running = MultiWebStack(workdir, redis_db=REDIS_DB, redis=redis.url, env={
        # Dashboards hear of changes only through the channel layer, not by looking again.
        "PLAYGROUND_CLASS_DASHBOARD_SECONDS": "3600",
    })
    try:
        running.start()
        yield running
        end_every_session(running)
        wait_for(lambda: nothing_left(engine, running.deployment), timeout=60,
                 what="no labelled container, network or volume to remain after every session ended")
    finally:
        running.stop()
        _purge(engine, running.deployment)
        redis.stop()


def terminal_on(stack: MultiWebStack, web: str, iid: str, username: str) -> Terminal:
    """A connection pinned to one Daphne (``Terminal`` connects to its stack's ``url``)."""
    return Terminal(SimpleNamespace(url=stack.web_url(web)), iid, token=stack.token(username))


def running_session(stack: MultiWebStack, client, **body) -> tuple[dict, dict]:
    answer = client.post(stack.url + "/api/sessions/", json=body, timeout=60)
    assert answer.status_code in (200, 201), answer.text
    session = answer.json()
    node = wait_instance(stack, client, session["id"], session["instances"][0]["id"], "running", timeout=90)
    return session, node


def test_two_tabs_on_different_web_processes_share_one_screen(stack):
    alice = stack.client("alice")
    _, node = running_session(stack, alice)
    first = terminal_on(stack, "web1", node["id"], "alice")
    second = terminal_on(stack, "web2", node["id"], "alice")
    first.event("status", state="running")
    second.event("status", state="running")

    first.type("echo from-one-$((20+3))\n")
    first.expect(rb"from-one-23")
    second.expect(rb"from-one-23")
    second.type("echo from-two-$((30+4))\n")
    first.expect(rb"from-two-34")
    second.expect(rb"from-two-34")
    first.close()
    second.close()


def test_session_events_from_one_process_reach_terminals_on_the_other(stack):
    alice = stack.client("alice")
    session, node = running_session(stack, alice)
    on_web2 = terminal_on(stack, "web2", node["id"], "alice")
    first = on_web2.event("expiry")["expires_at"]

    # Extended through web1's API: web2's terminal hears it over Redis.
    extended = alice.post(f"{stack.web_url('web1')}/api/sessions/{session['id']}/extend/", timeout=30)
    assert extended.status_code == 200, extended.text
    assert extended.json()["expires_at"] != first
    on_web2.event("expiry", expires_at=extended.json()["expires_at"], timeout=30)

    # Ended through web1: web2's terminal is told the session is over.
    ended = alice.delete(f"{stack.web_url('web1')}/api/sessions/{session['id']}/", timeout=60)
    assert ended.status_code == 204
    on_web2.event("status", state="session_over", timeout=30)
    assert on_web2.closed_with() == 4410


def a_class(stack: MultiWebStack, title: str) -> dict:
    if "teacher" not in stack.tokens:
        stack.manage("import_labs", str(ONE_NODE_LAB))
        stack.tokens["teacher"] = stack.manage("create_api_token", "--instructor", "teacher").strip()
    now = datetime.now(UTC)
    created = stack.client("teacher").post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": title, "lab": "stop-and-run", "seats": 1,
        "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()})
    assert created.status_code == 201, created.text
    return created.json()


def controls(term: Terminal) -> list[str]:
    return [e["by"] for e in term.events if e["type"] == "control"]


def test_an_instructor_on_one_process_takes_over_a_learner_on_the_other(stack):
    classroom = a_class(stack, "Two processes")
    bob = stack.client("bob")
    session, node = running_session(stack, bob, join_code=classroom["join_code"])

    # The class's dashboard on web2 hears of a hand raised through web1.
    dashboard = connect(f"{stack.web_url('web2').replace('http', 'ws')}/ws/classrooms/{classroom['id']}/",
                        additional_headers={"Authorization": f"Token {stack.token('teacher')}"}, open_timeout=30,
                        legacy=True)
    assert json.loads(dashboard.recv(timeout=30))["type"] == "roster"
    raised = bob.post(f"{stack.web_url('web1')}/api/sessions/{session['id']}/hand/", json={"raised": True},
                      timeout=30)
    assert raised.status_code == 200, raised.text

    def hand_raised() -> bool:
        event = json.loads(dashboard.recv(timeout=30))
        return event["type"] == "learner" and event["hand_raised"]

    wait_for(hand_raised, timeout=60, interval=0, what="the dashboard on web2 to show the raised hand")
    dashboard.close()

    # The learner's terminal on web2; the instructor takes over on web1.
    learner = terminal_on(stack, "web2", node["id"], "bob")
    learner.event("control", by="owner")
    helper = terminal_on(stack, "web1", node["id"], "teacher")
    helper.event("control", by="owner")
    helper.control(type="takeover")
    helper.event("control", by="instructor")
    learner.event("control", by="instructor")
    mark = len(learner.output)
    learner.type("echo ignored-$((1+1))\n")
    helper.type("echo helped-$((40+2))\n")
    learner.expect(rb"helped-42", after=mark)
    assert b"ignored-2" not in learner.output[mark:]

    # Leaving (on web1) gives the keyboard back (on web2).
    helper.close()
    learner.wait(lambda: controls(learner)[-1] == "owner", timeout=30, what="the control to come back to the learner")
    learner.type("echo back-$((2+3))\n")
    learner.expect(rb"back-5", after=mark)
    learner.close()


def test_a_restart_of_the_instructors_web_process_gives_the_keyboard_back(stack):
    classroom = a_class(stack, "A restart mid-help")
    carol = stack.client("carol")
    _, node = running_session(stack, carol, join_code=classroom["join_code"])
    learner = terminal_on(stack, "web2", node["id"], "carol")
    learner.event("control", by="owner")
    helper = terminal_on(stack, "web1", node["id"], "teacher")
    helper.event("control", by="owner")
    helper.control(type="takeover")
    learner.event("control", by="instructor")

    stack.terminate("web1")  # as a rolling restart does, while the instructor holds the keyboard
    try:
        learner.wait(lambda: controls(learner)[-1] == "owner", timeout=30,
                     what="the control to come back to the learner")
        mark = len(learner.output)
        learner.type("echo mine-again-$((3+4))\n")
        learner.expect(rb"mine-again-7", after=mark)
        # The instructor's page reconnects (to web2 now) read-only, as before the takeover.
        again = terminal_on(stack, "web2", node["id"], "teacher")
        again.event("control", by="owner")
        again.close()
    finally:
        stack.respawn("web1")
        stack.wait_web("web1")
    learner.close()


def shell_pid(term: ReconnectingTerminal, tag: str) -> str:
    """The PID of the shell that answers, typed again until one does (keys
    typed while the connection was down are lost, as in a browser)."""
    marker = f"pid-{tag}-"
    pattern = rf"{marker}(\d+)-end".encode()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        term.type(f"echo {marker}$$-end\n")
        try:
            return term.expect(pattern, timeout=5)[1].decode()
        except AssertionError:
            continue
    raise AssertionError(f"no shell answered {marker}")


def test_a_rolling_restart_of_the_web_processes_loses_no_terminal(stack, measured):
    alice = stack.client("alice")
    session, node = running_session(stack, alice)
    term = ReconnectingTerminal(stack.url, node["id"], token=stack.token("alice"))
    term.wait(lambda: any(e == {"type": "status", "state": "running"} for e in term.events), timeout=60,
              what="the terminal to run")
    pid = shell_pid(term, "before")

    for round_ in (1, 2):
        serving = stack.web_of(term.upstream)
        other = "web2" if serving == "web1" else "web1"
        before = term.connections
        term.type(f"echo kept-{round_}-$((100+{round_}))\n")
        term.expect(rf"kept-{round_}-{100 + round_}".encode())

        stopping = time.monotonic()
        stack.terminate(serving)
        measured("web process stopped (SIGTERM) behind nginx", "the process exits after", time.monotonic() - stopping)
        # The client is told (1012, service restart), reconnects through nginx
        # to the other process, and gets its screen back (the replay) there.
        term.wait(lambda: term.connections > before, timeout=60, what="the client to reconnect")  # noqa: B023 - called at once, in this round
        assert stack.web_of(term.upstream) == other
        term.expect(rf"kept-{round_}-{100 + round_}".encode(), timeout=60)
        assert shell_pid(term, f"after-{round_}") == pid
        measured("web process stopped (SIGTERM) behind nginx",
                 "terminal closed 1012, reconnected to the other, same shell, after", time.monotonic() - term.lost_at)

        # The session is whole, seen through nginx.
        assert alice.get(f"{stack.url}/api/sessions/{session['id']}/", timeout=30).json()["state"] == "running"
        stack.respawn(serving)
        started = time.monotonic()
        stack.wait_web(serving)
        measured("web process started again", "it answers after", time.monotonic() - started)

    assert term.connections == 3
    assert term.closes == [1012, 1012]
    term.close()


def test_a_web_process_killed_outright_costs_its_terminals_a_reconnect(stack, measured):
    kim = stack.client("kim")
    session, node = running_session(stack, kim)
    term = ReconnectingTerminal(stack.url, node["id"], token=stack.token("kim"))
    term.wait(lambda: any(e == {"type": "status", "state": "running"} for e in term.events), timeout=60,
              what="the terminal to run")
    pid = shell_pid(term, "before-kill")
    serving = stack.web_of(term.upstream)
    before = term.connections

    stack.kill(serving)  # SIGKILL: no 1012, no clean-up; the socket just drops
    term.wait(lambda: term.connections > before, timeout=60, what="the client to reconnect")
    assert shell_pid(term, "after-kill") == pid
    measured("web process killed (SIGKILL) behind nginx", "terminal dropped, reconnected to the other, same shell, after",
             time.monotonic() - term.lost_at)
    stack.respawn(serving)
    stack.wait_web(serving)
    term.close()
    assert kim.delete(f"{stack.url}/api/sessions/{session['id']}/", timeout=60).status_code == 204
