"""A lab host's engine restarts, or an instance dies behind the playground's
back: with live restore a restart costs no session (same shell, terminal
typing on, nested containers running, nothing failed); an instance that did
die says so within 10 s, from the engine's event stream (manage.py
watch_engines), and exec on it answers 409 ``not_ready``.

Everything runs on an engine of this module's own (scripts/engine.sh under a
private run directory, state directory and address pool, the sandbox images
copied into it from the main engine): the shared engine is never restarted.
"""
from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from tests.engines import OwnEngine
from tests.integration.conftest import running_stack, wait_instance
from tests.integration.test_terminal import Terminal
from tests.stack import free_port, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]

# An address pool no other engine of the machine uses (main: 10.213.0.0/16).
POOL = os.environ.get("PLAYGROUND_TEST_RESTART_POOL", "10.229.0.0/16")
# The watcher's promise (issue 14): a dead instance says so within 10 s.
WATCHER_DEADLINE = 10
REDIS_DB = 69


@pytest.fixture(scope="module")
def own_engine():
    engine = OwnEngine(POOL)
    try:
        engine.script("start")
        began = time.monotonic()
        engine.load_images()
        print(f"images copied into the test's engine in {time.monotonic() - began:.1f} s")
        yield engine
    finally:
        engine.remove()


@pytest.fixture(scope="module")
def redis_url():
    """The Redis databases assigned to this test (69-71) are past the shared
    Redis's 64: a private, memory-only one instead."""
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--databases", str(REDIS_DB + 1)], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False).returncode == 0,
                 timeout=10, what="the private Redis to answer")
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(own_engine, redis_url, tmp_path_factory):
    yield from running_stack(own_engine.api, tmp_path_factory.mktemp("engine-restart"), redis_db=REDIS_DB,
                             redis=redis_url, env={"PLAYGROUND_LAB_HOSTS": own_engine.url})


@pytest.fixture
def alice(stack):
    return stack.client("alice")


def api(stack, client, method: str, path: str, **kw):
    return client.request(method, f"{stack.url}/api/sessions/{path}", timeout=60, **kw)


def exec_in(stack, client, sid: str, iid: str, command: str) -> str:
    answer = api(stack, client, "POST", f"{sid}/instances/{iid}/exec/", json={"command": command, "timeout": 60})
    assert answer.status_code == 200, answer.text
    assert answer.json()["exit_code"] == 0, answer.json()
    return answer.json()["output"]


def container_of(engine: OwnEngine, iid: str) -> dict:
    [found] = engine.api.containers(all=True, filters={"label": [f"playground.instance={iid}"]})
    return found


def watcher_caught_up(stack, times: int) -> bool:
    return stack.log("watcher").count("again;") >= times


def test_an_engine_restart_with_live_restore_costs_no_session(stack, own_engine, alice, measured):
    session = api(stack, alice, "POST", "", json={}).json()
    sid, shell = session["id"], session["instances"][0]
    wait_instance(stack, alice, sid, shell["id"], "running", timeout=60)
    docker_node = api(stack, alice, "POST", f"{sid}/instances/", json={"image": "docker"}).json()
    wait_instance(stack, alice, sid, docker_node["id"], "running", timeout=120)
    # A nested container: an image made of the instance's own busybox.
    exec_in(stack, alice, sid, docker_node["id"],
            "mkdir -p /root/tiny && cp /bin/busybox /root/tiny/ && tar -C /root/tiny -c . | docker import - tiny"
            " && docker run -d --name inner tiny /busybox sleep 100000")
    inner_before = exec_in(stack, alice, sid, docker_node["id"], "docker inspect -f '{{.State.Pid}}' inner")

    terminal = Terminal(stack, shell["id"], token=stack.token("alice"))
    try:
        terminal.type("echo shell-$$\n")
        pid = terminal.expect(rb"shell-(\d+)").group(1)

        away = own_engine.restart()
        measured("lab-host engine restarted (live restore)", "nothing: same shell, nested containers run; engine away",
                 away)
        wait_for(lambda: watcher_caught_up(stack, 1), timeout=60, what="the watcher to reconnect and catch up")

        mark = len(terminal.output)
        terminal.type("echo again-$$\n")
        assert terminal.expect(rb"again-(\d+)", after=mark).group(1) == pid  # the same shell, typing works
    finally:
        terminal.close()
    assert exec_in(stack, alice, sid, docker_node["id"], "docker inspect -f '{{.State.Running}} {{.State.Pid}}' inner") \
        == f"true {inner_before.strip()}\n"
    assert exec_in(stack, alice, sid, shell["id"], "echo ok") == "ok\n"
    body = api(stack, alice, "GET", f"{sid}/").json()
    assert body["state"] == "running"
    assert [(i["state"], i["reason"]) for i in body["instances"]] == [("running", ""), ("running", "")]
    assert "again; 0 instance(s) found dead" in stack.log("watcher")  # its catch-up failed nothing
    assert api(stack, alice, "DELETE", f"{sid}/").status_code == 204


def test_an_instance_killed_behind_the_playgrounds_back_is_failed_with_its_reason(stack, own_engine, alice,
                                                                                 measured):
    session = api(stack, alice, "POST", "", json={}).json()
    sid, node = session["id"], session["instances"][0]
    wait_instance(stack, alice, sid, node["id"], "running", timeout=60)
    own_engine.api.kill(container_of(own_engine, node["id"])["Id"])
    killed = time.monotonic()

    failed = wait_instance(stack, alice, sid, node["id"], "failed", timeout=WATCHER_DEADLINE)
    measured("instance's container killed", "instance failed with the exit code, after", time.monotonic() - killed)
    assert failed["reason"] == "its container exited (code 137)"
    answer = api(stack, alice, "POST", f"{sid}/instances/{node['id']}/exec/", json={"command": "true"})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_ready", answer.text
    assert "code 137" in answer.json()["error"]["message"]
    assert api(stack, alice, "DELETE", f"{sid}/").status_code == 204


def test_after_a_restart_without_live_restore_its_instances_say_so(stack, own_engine, alice, measured):
    session = api(stack, alice, "POST", "", json={}).json()
    sid, node = session["id"], session["instances"][0]
    wait_instance(stack, alice, sid, node["id"], "running", timeout=60)
    reconnects = stack.log("watcher").count("again;")
    own_engine.script("stop")
    own_engine.script("start", PLAYGROUND_ENGINE_LIVE_RESTORE="0")
    back = time.monotonic()
    try:
        failed = wait_instance(stack, alice, sid, node["id"], "failed", timeout=WATCHER_DEADLINE)
        measured("engine restarted without live restore", "instance failed with the reason, after the engine's return",
                 time.monotonic() - back)
        assert re.fullmatch(r"the lab host's engine restarted and did not keep it \(code \d+\)", failed["reason"])
        # The containers' deaths may reach the open stream before the engine
        # closes it (then they fail first): the watcher reconnects all the same.
        wait_for(lambda: stack.log("watcher").count("again;") > reconnects, timeout=60,
                 what="the watcher to reconnect to the restarted engine")
    finally:
        own_engine.restart()  # live restore again, for whatever runs next
    assert api(stack, alice, "DELETE", f"{sid}/").status_code == 204
