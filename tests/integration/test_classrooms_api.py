"""Classes through the real stack: an instructor opens a class, learners join
with its code, the roster shows them, and ending the class leaves nothing."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest import labelled, wait_instance
from tests.stack import ROOT, wait_for

pytestmark = pytest.mark.stack

LAB = ROOT / "labs" / "what-is-a-container"


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@pytest.fixture(scope="module")
def teacher(stack):
    stack.manage("import_labs", str(LAB))
    stack.tokens["teacher"] = stack.manage("create_api_token", "--instructor", "teacher").strip()
    return stack.client("teacher")


def test_a_class_from_creation_to_its_end(stack, engine, teacher, alice, bob):
    created = teacher.post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": "Containers, day 1", "lab": "what-is-a-container", "seats": 1,
        "starts_at": iso(-timedelta(minutes=1)), "ends_at": iso(timedelta(hours=2))})
    assert created.status_code == 201, created.text
    classroom = created.json()
    cid, code = classroom["id"], classroom["join_code"]
    assert classroom["invite_url"].startswith(stack.url + "/join/")

    wrong = alice.post(f"{stack.url}/api/sessions/", json={"join_code": "WRONG234"}, timeout=30)
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "not_found"

    joined = alice.post(f"{stack.url}/api/sessions/", json={"join_code": code, "display_name": "Alice"}, timeout=60)
    assert joined.status_code == 201, joined.text
    session = joined.json()
    assert session["classroom"] == cid and session["lab"] == "what-is-a-container"
    assert [i["hostname"] for i in session["instances"]] == ["node1", "node2"]
    for instance in session["instances"]:
        wait_instance(stack, alice, session["id"], instance["id"], "running", timeout=60)

    again = alice.post(f"{stack.url}/api/sessions/", json={"join_code": code}, timeout=60)
    assert again.status_code == 200 and again.json()["id"] == session["id"]
    full = bob.post(f"{stack.url}/api/sessions/", json={"join_code": code}, timeout=60)
    assert full.status_code == 409 and full.json()["error"]["code"] == "limit_reached"

    assert alice.post(f"{stack.url}/api/sessions/{session['id']}/hand/", json={"raised": True},
                      timeout=30).json() == {"raised": True}
    [entry] = teacher.get(f"{stack.url}/api/classrooms/{cid}/roster/", timeout=30).json()
    assert entry["learner"] == "Alice" and entry["session"] == session["id"]
    assert entry["hand_raised"] and entry["stuck"] and entry["step"] == 1
    assert alice.get(f"{stack.url}/api/classrooms/{cid}/roster/", timeout=30).status_code == 404

    assert teacher.delete(f"{stack.url}/api/classrooms/{cid}/", timeout=120).status_code == 204
    over = alice.get(f"{stack.url}/api/sessions/{session['id']}/", timeout=30).json()
    assert over["state"] == "ended"
    mine = {i["id"] for i in session["instances"]}
    wait_for(lambda: not [c for c in labelled(engine, stack.deployment)["containers"]
                          if c["Labels"].get("playground.instance") in mine],
             timeout=20, what="the class's containers to be gone")
    closed = bob.post(f"{stack.url}/api/sessions/", json={"join_code": code}, timeout=30)
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "class_closed"


def test_a_class_that_has_not_started_is_closed(stack, teacher, bob):
    created = teacher.post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": "Tomorrow", "lab": "what-is-a-container", "seats": 5,
        "starts_at": iso(timedelta(hours=20)), "ends_at": iso(timedelta(hours=22))})
    assert created.status_code == 201, created.text
    answer = bob.post(f"{stack.url}/api/sessions/", json={"join_code": created.json()["join_code"]}, timeout=30)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "class_closed"
    assert "has not started" in answer.json()["error"]["message"]


def test_hot_start_hands_a_learner_a_warm_session_without_creating_a_container(stack, engine, teacher, alice):
    created = teacher.post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": "Nine o'clock", "lab": "what-is-a-container", "seats": 2,
        "starts_at": iso(timedelta(minutes=5)), "ends_at": iso(timedelta(hours=2))})
    assert created.status_code == 201, created.text
    cid, code = created.json()["id"], created.json()["join_code"]

    def running_containers() -> dict[str, str]:
        found = engine.containers(filters={"label": [f"playground.deployment={stack.deployment}",
                                                      "playground.kind=instance"], "status": "running"})
        return {c["Id"]: c["Labels"]["playground.instance"] for c in found}

    # Beat warms the class before it starts: two sessions of two instances each, set up.
    warm_ids = "SELECT session_id FROM classrooms_warmsession WHERE classroom_id = ?"
    setup_done = ("SELECT COUNT(*) FROM labs_labrun WHERE setup_state = 'done' AND session_id IN "
                  f"({warm_ids})")
    wait_for(lambda: stack.sql(setup_done, (cid,))[0][0] == 2, timeout=120, what="two warm sessions set up")
    warm = {row[0] for row in stack.sql(warm_ids, (cid,))}
    before = running_containers()

    stack.sql("UPDATE classrooms_classroom SET starts_at = datetime('now', '-1 minute') WHERE id = ?", (cid,))
    joined = alice.post(f"{stack.url}/api/sessions/", json={"join_code": code}, timeout=60)
    assert joined.status_code == 201, joined.text
    session = joined.json()
    assert session["id"] in warm and session["state"] == "running"
    assert all(i["state"] == "running" for i in session["instances"])
    # Checked on the engine: the learner's instances are containers made
    # before the join, and the join made none.
    mine = {i["id"] for i in session["instances"]}
    assert mine <= set(before.values())
    assert running_containers() == before

    answer = alice.post(f"{stack.url}/api/sessions/{session['id']}/instances/{session['instances'][0]['id']}/exec/",
                        json={"command": "pgrep -x mystery >/dev/null && echo set-up-ran"}, timeout=60)
    assert answer.json()["output"].strip() == "set-up-ran"

    assert teacher.delete(f"{stack.url}/api/classrooms/{cid}/", timeout=120).status_code == 204
    wait_for(lambda: not set(running_containers()) & set(before), timeout=20,
             what="the class's sessions, warm ones included, to be gone")


def test_an_instructor_watches_read_only_then_takes_over_a_learner_s_terminal(stack, teacher, alice, bob):
    from tests.integration.test_terminal import Terminal

    created = teacher.post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": "Help desk", "lab": "what-is-a-container", "seats": 3,
        "starts_at": iso(-timedelta(minutes=1)), "ends_at": iso(timedelta(hours=1))}).json()
    joined = alice.post(f"{stack.url}/api/sessions/", json={"join_code": created["join_code"]}, timeout=60).json()
    node1 = wait_instance(stack, alice, joined["id"], joined["instances"][0]["id"], "running", timeout=60)
    key = {name: stack.tokens[name] for name in ("teacher", "alice", "bob")}

    learner = Terminal(stack, node1["id"], token=key["alice"])
    learner.event("control", by="owner")
    # Someone who does not teach the class cannot even look.
    assert Terminal(stack, node1["id"], token=key["bob"]).closed_with() == 4404

    # The instructor sees the same screen, read-only: typing is refused.
    watcher = Terminal(stack, node1["id"], token=key["teacher"])
    watcher.event("control", by="owner")
    learner.type("echo learner-$((6*7))\n")
    learner.expect(rb"learner-42")
    watcher.expect(rb"learner-42")
    watcher.type("echo nope\n")
    assert watcher.closed_with() == 4403
    assert {"type": "error", "code": "forbidden", "message": "Take over the terminal before typing in it."} \
        in watcher.events

    # Taking over: both sides are told; the instructor types, the learner's keys wait.
    helper = Terminal(stack, node1["id"], token=key["teacher"])
    helper.event("control", by="owner")
    helper.control(type="takeover")
    helper.event("control", by="instructor")
    learner.event("control", by="instructor")
    mark = len(learner.output)
    learner.type("echo ignored-$((1+1))\n")
    helper.type("echo helped-$((40+2))\n")
    learner.expect(rb"helped-42", after=mark)
    assert b"ignored-2" not in learner.output[mark:]

    # Leaving gives the keyboard back.
    helper.close()

    def in_control():
        controls = [e["by"] for e in learner.events if e.get("type") == "control"]
        return controls[-1] == "owner"
    learner.wait(in_control, timeout=30, what="the control to come back to the learner")
    learner.type("echo back-$((2+3))\n")
    learner.expect(rb"back-5", after=mark)
    learner.close()
