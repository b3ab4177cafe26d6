"""Labs through the real stack: a session started for a lab gets its named
instances, assets and background set-up from a Celery worker, and a step's
check fails, then passes once the learner did the step."""
from __future__ import annotations

import pytest

from tests.integration.conftest import _purge, end_every_session, nothing_left
from tests.stack import Stack, wait_for
from tests.unit.labs_helpers import write_lab

pytestmark = [pytest.mark.engine, pytest.mark.stack]

LAB = """\
title: Two nodes
summary: A file on one node, a check on the other.
duration: 5
difficulty: beginner
environment:
  instances:
    - name: alpha
    - name: beta
      assets: false
setup:
  instance: beta
  script: |
    mkdir -p /srv/lab && echo "set up on $(hostname)" > /srv/lab/ready
    echo "set-up done"
steps:
  - title: Leave a note on beta
    text: step1.md
    instance: beta
    check: |
      grep -qsx "from alpha" /root/note.txt || { echo "no note from alpha yet"; exit 1; }
    hint: "`echo from alpha > /root/note.txt` on beta"
    solution: echo from alpha > /root/note.txt
"""


@pytest.fixture(scope="module")
def lab_stack(tmp_path_factory, engine):
    running = Stack(tmp_path_factory.mktemp("labs-stack"), redis_db=31).start()
    folder = write_lab(tmp_path_factory.mktemp("labs"), LAB, {
        "step1.md": "```bash run=beta\necho from alpha > /root/note.txt\n```\n",
        "assets/hello.txt": "hello from the lab\n",
    }, name="two-nodes")
    try:
        assert "two-nodes: created" in running.manage("import_labs", str(folder))
        yield running
    finally:
        try:
            end_every_session(running)
            wait_for(lambda: nothing_left(engine, running.deployment), timeout=30, what="nothing left on the engine")
        finally:
            running.stop()
            _purge(engine, running.deployment)


def test_a_lab_session_is_set_up_in_the_background_and_its_check_fails_then_passes(lab_stack):
    alice = lab_stack.client("alice")
    url = lab_stack.url
    created = alice.post(f"{url}/api/sessions/", json={"lab": "two-nodes"}, timeout=30)
    assert created.status_code == 201, created.text
    session = created.json()
    sid = session["id"]
    assert session["lab"] == "two-nodes"
    nodes = {i["hostname"]: i["id"] for i in session["instances"]}
    assert list(nodes) == ["alpha", "beta"]

    setup = wait_for(
        lambda: (body := alice.get(f"{url}/api/sessions/{sid}/lab/", timeout=10).json())["setup"]["state"]
        in {"done", "failed"} and body,
        timeout=90, what="the lab's set-up to finish",
    )
    assert setup["setup"]["state"] == "done", setup["setup"]["output"]
    assert "set-up done" in setup["setup"]["output"]

    def run(node: str, command: str) -> dict:
        answer = alice.post(f"{url}/api/sessions/{sid}/instances/{nodes[node]}/exec/",
                            json={"command": command}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert run("beta", "hostname; cat /srv/lab/ready")["output"] == "beta\nset up on beta\n"
    assert run("alpha", "cat /root/hello.txt")["output"] == "hello from the lab\n"
    assert run("beta", "test -e /root/hello.txt || echo absent")["output"] == "absent\n"  # assets: false
    assert run("beta", "ping -c1 -W5 alpha >/dev/null && echo reached")["output"] == "reached\n"

    failed = alice.post(f"{url}/api/sessions/{sid}/check/", json={"step": 1}, timeout=60)
    assert failed.status_code == 200, failed.text
    assert failed.json()["passed"] is False
    assert failed.json()["output"] == "no note from alpha yet\n"
    assert "<code>echo from alpha &gt; /root/note.txt</code>" in failed.json()["hint"]

    run("beta", "echo from alpha > /root/note.txt")
    passed = alice.post(f"{url}/api/sessions/{sid}/check/", json={"step": 1}, timeout=60).json()
    assert passed["passed"] is True
    assert passed["progress"]["finished"] is True

    # Progress belongs to the learner, not to the session.
    alice.delete(f"{url}/api/sessions/{sid}/", timeout=60)
    lab = alice.get(f"{url}/api/labs/two-nodes/", timeout=10).json()
    assert lab["progress"]["completed"] == [1]
    assert lab["progress"]["checks_failed"] == 1 and lab["progress"]["checks_passed"] == 1
