"""Several lab hosts act as one (issue 16, points 3 and 4): new sessions go
where the most room is left, a class of 30 spreads over the hosts, terminals,
exec and ports work on a remote host over mutual TLS, a cordoned host takes no
new session while its own go on, a drained one gives up its pool, a host added
while everything runs takes sessions (and its engine's events are watched),
and a host lost (engine SIGKILLed, link cut) fails its instances with a reason
while new sessions start on the others (and is cleaned when it comes back)."""
from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path

import pytest

from tests.integration.conftest import _purge, end_every_session, nothing_left
from tests.integration.test_ports import enter, get
from tests.integration.test_terminal import Terminal
from tests.stack import Stack, wait_for
from tests.unit.labs_helpers import write_lab

pytestmark = [pytest.mark.engine, pytest.mark.stack]

REDIS_DB = 28
LEARNERS = int(os.environ.get("PLAYGROUND_TEST_FLEET_LEARNERS", "30"))

@pytest.fixture(scope="module")
def stack(machines, pki, tmp_path_factory):
    one, two, _ = machines
    client = pki / "client"
    running = Stack(tmp_path_factory.mktemp("fleet"), redis_db=REDIS_DB, env={
        "PLAYGROUND_LAB_HOSTS": f"{one.url},{two.url}",
        "PLAYGROUND_LAB_HOST_TLS_CA": str(client / "ca.pem"),
        "PLAYGROUND_LAB_HOST_TLS_CERT": str(client / "cert.pem"),
        "PLAYGROUND_LAB_HOST_TLS_KEY": str(client / "key.pem"),
        "PLAYGROUND_POOL_IMAGES": "shell=1",  # one pooled shell instance per host
        "PLAYGROUND_POOL_SECONDS": "1",
        "PLAYGROUND_HOST_DOWN_GRACE": "3",
        "PLAYGROUND_MAX_SESSIONS_USER": "20",
        "PLAYGROUND_PORTS_SECONDS": "1",
    })
    try:
        running.start()
        running.manage("import_labs", str(write_lab(Path(tempfile.mkdtemp(prefix="fleet-lab-"))).parent))
        running.tokens["teacher"] = running.manage("create_api_token", "--instructor", "teacher").strip()
        yield running
        end_every_session(running)
        for machine in machines:  # draining: their pooled instances go and come back nowhere
            if machine.url in running.manage("lab_hosts"):
                running.manage("lab_hosts", "drain", machine.url)
        for machine in machines:
            if not machine.lost:
                wait_for(lambda m=machine: nothing_left(m.engine.api, running.deployment), timeout=60,
                         what=f"nothing of the stack to remain on lab host {machine.index}")
    finally:
        running.stop()
        for machine in machines:
            if not machine.lost:
                _purge(machine.engine.api, running.deployment)


def host_of(machines, iid: str):
    """The lab host whose engine runs instance ``iid`` (None: none does)."""
    for machine in machines:
        if not machine.lost and machine.engine.api.containers(all=True, filters={"label": f"playground.instance={iid}"}):
            return machine
    return None


def start(stack: Stack, who: str) -> tuple[str, str]:
    client = stack.client(who)
    answer = client.post(f"{stack.url}/api/sessions/", json={}, timeout=60)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    sid, iid = body["id"], body["instances"][0]["id"]
    run(stack, who, sid, iid, "true")  # waits until it runs
    return sid, iid


def run(stack: Stack, who: str, sid: str, iid: str, command: str) -> dict:
    answer = stack.client(who).post(f"{stack.url}/api/sessions/{sid}/instances/{iid}/exec/",
                                    json={"command": command, "timeout": 60}, timeout=90)
    assert answer.status_code == 200, answer.text
    return answer.json()


def instance(stack: Stack, who: str, sid: str) -> dict:
    return stack.client(who).get(f"{stack.url}/api/sessions/{sid}/", timeout=10).json()["instances"][0]


def test_a_class_of_30_spreads_over_the_hosts_and_each_works(stack, machines):
    one, two, _ = machines
    now = datetime.now(UTC)
    created = stack.client("teacher").post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": "Fleet class", "lab": "hello", "seats": LEARNERS,
        "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()})
    assert created.status_code == 201, created.text
    code = created.json()["join_code"]

    def join(n: int) -> tuple[str, str, str]:
        who = f"learner{n}"
        joined = stack.client(who).post(f"{stack.url}/api/sessions/", json={"join_code": code}, timeout=120)
        assert joined.status_code in (200, 201), joined.text
        sid, iid = joined.json()["id"], joined.json()["instances"][0]["id"]
        assert run(stack, who, sid, iid, "true")["exit_code"] == 0  # waits until it runs
        return who, sid, iid

    with ThreadPoolExecutor(max_workers=10) as pool:
        learners = list(pool.map(join, range(LEARNERS)))
    placed = [host_of(machines, iid) for _, _, iid in learners]
    on_one, on_two = placed.count(one), placed.count(two)
    assert on_one + on_two == LEARNERS, placed
    assert min(on_one, on_two) >= LEARNERS // 3, (on_one, on_two)  # spread, not piled on one

    # On a remote host: exec, the terminal (through the instance's relay over
    # the routed link) and a port through the web tier's proxy.
    who, sid, iid = next(entry for entry, host in zip(learners, placed, strict=True) if host is two)
    assert run(stack, who, sid, iid, "echo remote-$((6 * 7))") == {"exit_code": 0, "output": "remote-42\n"}
    terminal = Terminal(stack, iid, token=stack.token(who))
    try:
        terminal.type("echo fleet-$((40 + 2))\n")
        terminal.expect(rb"fleet-42")
    finally:
        terminal.close()
    run(stack, who, sid, iid, "mkdir -p /srv/site && echo served-remotely > /srv/site/index.html && "
        "(setsid nohup python3 -m http.server 8080 --directory /srv/site </dev/null >/dev/null 2>&1 &)")
    entry = wait_for(lambda: next((p for p in instance(stack, who, sid)["ports"] if p["port"] == 8080), None),
                     timeout=30, interval=0.5, what="port 8080 in the instance's ports")
    cookie, clean = enter(stack, entry["url"])
    page = get(stack, clean, cookie=cookie)
    assert page.status_code == 200 and page.text == "served-remotely\n", page.text
    # Files both ways, and the stats a watcher of the session sees.
    files = f"{stack.url}/api/sessions/{sid}/instances/{iid}/files/"
    payload = os.urandom(300_000)
    put = stack.client(who).put(files, params={"path": "/root/upload.bin"}, data=payload, timeout=60)
    assert put.status_code == 201 and put.json()["size"] == len(payload), put.text
    assert run(stack, who, sid, iid, "sha256sum < /root/upload.bin")["output"].split()[0] == sha256(payload).hexdigest()
    got = stack.client(who).get(files, params={"path": "/root/upload.bin"}, timeout=60)
    assert got.status_code == 200 and got.content == payload
    stats = wait_for(lambda: instance(stack, who, sid)["stats"], timeout=30, interval=1,
                     what="the remote instance's stats")
    assert 0 < stats["memory_bytes"] < stats["memory_limit_bytes"], stats

    for who, sid, _ in learners:
        stack.client(who).delete(f"{stack.url}/api/sessions/{sid}/", timeout=60)


def test_a_cordoned_host_takes_no_new_session_and_a_drained_one_gives_up_its_pool(stack, machines):
    one, two, _ = machines
    sid, iid = start(stack, "alice")
    host = host_of(machines, iid)
    other = two if host is one else one
    stack.manage("lab_hosts", "cordon", host.url, "--note", "kernel update")
    for _ in range(3):
        _, new = start(stack, "bob")
        assert host_of(machines, new) is other
    assert run(stack, "alice", sid, iid, "echo still-here")["output"] == "still-here\n"  # its own go on

    # Draining: its pooled instance goes; alice's session stays.
    def ours_there() -> set[str]:
        listed = host.engine.api.containers(filters={"label": f"playground.deployment={stack.deployment}"})
        return {c["Labels"].get("playground.instance") for c in listed}

    assert len(ours_there()) == 2  # alice's, and the pooled one kept while it was only cordoned
    stack.manage("lab_hosts", "drain", host.url)
    wait_for(lambda: ours_there() == {iid}, timeout=30, what="the drained host to keep only alice's instance")
    assert run(stack, "alice", sid, iid, "echo drained-but-running")["exit_code"] == 0
    stack.manage("lab_hosts", "activate", host.url)


def test_a_host_added_while_everything_runs_takes_sessions_and_is_watched(stack, machines):
    three = machines[2]
    # scripts/lab-host.sh made it (tests/engines.py) and said what to do; the
    # route it printed is in place, and its line is the one run here.
    assert f"Lab host ready: {three.url} (mutual TLS; sandboxes from {three.pool})" in three.printed
    assert f"ip route add {three.pool} via {three.address}" in three.printed
    assert f"manage.py lab_hosts add {three.url}" in three.printed
    listed = stack.manage("lab_hosts", "add", three.url)
    assert "taking new instances" in listed
    sid, iid = start(stack, "carol")  # the emptiest host now
    assert host_of(machines, iid) is three
    assert run(stack, "carol", sid, iid, "hostname")["output"] == "node1\n"
    # The engine watcher found it without a restart: a container killed
    # behind the playground's back fails its instance within moments.
    container = three.engine.api.containers(filters={"label": f"playground.instance={iid}"})[0]
    three.remote_api().kill(container["Id"])
    failed = wait_for(lambda: (i := instance(stack, "carol", sid))["state"] == "failed" and i, timeout=20,
                      what="the killed instance to show failed")
    assert failed["reason"]


def test_a_lost_host_fails_its_instances_and_sessions_start_elsewhere(stack, machines):
    one = machines[0]
    listed = stack.manage("lab_hosts")
    others = [m for m in machines[1:] if m.url in listed]
    for machine in others:  # so that dave's session lands on 1
        stack.manage("lab_hosts", "cordon", machine.url)
    sid, iid = start(stack, "dave")
    assert host_of(machines, iid) is one
    for machine in others:
        stack.manage("lab_hosts", "activate", machine.url)

    lost_at = time.monotonic()
    one.kill()
    failed = wait_for(lambda: (i := instance(stack, "dave", sid))["state"] == "failed" and i, timeout=60,
                      interval=0.5, what="the lost host's instance to fail")
    assert "stopped answering" in failed["reason"], failed
    print(f"lost host noticed in {time.monotonic() - lost_at:.1f} s")
    _, new = start(stack, "erin")
    assert host_of(machines, new) in others

    # When it comes back, what the failed instance left there is removed.
    one.revive()
    wait_for(lambda: not one.engine.api.containers(all=True, filters={"label": f"playground.instance={iid}"}),
             timeout=60, what="the failed instance's container to be removed from the host that came back")
