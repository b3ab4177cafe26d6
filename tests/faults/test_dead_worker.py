"""A Celery worker killed (SIGKILL) in the middle of its work: another worker
does the job, once, and nothing stays `provisioning` or is left on the engine."""
from __future__ import annotations

import os
import signal
import time

import pytest

from tests.integration.conftest import labelled, running_stack, wait_instance
from tests.stack import wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]

# Short leases and queue waits so the sweep finds a lost job in seconds.
JOBS = {"PLAYGROUND_JOB_LEASE_SECONDS": "3", "PLAYGROUND_JOB_QUEUE_SECONDS": "8"}


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory):
    yield from running_stack(engine, tmp_path_factory.mktemp("dead-worker"), redis_db=60, env=JOBS)


def a_new_worker(stack) -> None:
    readies = stack.log("worker").count("ready.")
    stack.respawn("worker")
    wait_for(lambda: stack.log("worker").count("ready.") > readies, timeout=60, what="the new worker to be ready")


def containers_of(engine, stack, iid: str) -> list:
    return [c for c in labelled(engine, stack.deployment)["containers"]
            if c["Labels"].get("playground.instance") == iid]


def test_a_job_a_killed_worker_held_is_done_once_by_the_next_worker(stack, engine, measured):
    alice = stack.client("alice")
    session = alice.post(stack.url + "/api/sessions/", json={}, timeout=30).json()
    wait_instance(stack, alice, session["id"], session["instances"][0]["id"], "running", timeout=60)
    instances = f"{stack.url}/api/sessions/{session['id']}/instances/"

    # 1. The worker takes the job into its hands and dies before it starts it
    # (stopped, so it takes the message off the broker and does nothing).
    worker = stack.process("worker")
    os.kill(worker.pid, signal.SIGSTOP)
    node2 = alice.post(instances, json={}, timeout=30).json()
    time.sleep(1.0)  # the broker hands the message to the stopped worker
    stack.kill("worker")
    lost_at = time.monotonic()

    # 2. A worker killed while it creates the container (a docker instance:
    # its inner engine takes a second to answer).
    a_new_worker(stack)
    received = stack.log("worker").count("provision_instance")
    node3 = alice.post(instances, json={"image": "docker"}, timeout=30).json()  # ~1 s to start
    wait_for(lambda: stack.log("worker").count("provision_instance") > received, timeout=30, interval=0.01,
             what="the worker to take node3's job")
    stack.kill("worker")
    killed_at = time.monotonic()
    assert alice.get(f"{stack.url}/api/sessions/{session['id']}/", timeout=10).json()["instances"][2]["state"] \
        == "provisioning"

    a_new_worker(stack)
    for node, since, fault in ((node3, killed_at, "worker SIGKILLed while it starts an instance"),
                               (node2, lost_at, "worker SIGKILLed holding an instance's job it had not begun")):
        wait_instance(stack, alice, session["id"], node["id"], "running", timeout=120)
        measured(fault, "instance provisioning, then running (another worker)", time.monotonic() - since)
        assert len(containers_of(engine, stack, node["id"])) == 1
        answer = alice.post(f"{instances}{node['id']}/exec/", json={"command": "hostname"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"].strip() == node["hostname"]
    assert "was lost" in stack.log("beat") + stack.log("worker")
