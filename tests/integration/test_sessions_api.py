"""The sessions API end to end: Daphne, a Celery worker and beat, Redis and the
real lab-host engine."""
from __future__ import annotations

import pytest

from tests.integration.conftest import labelled, wait_instance
from tests.stack import SHELL_IMAGE, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]


def api(stack, path: str) -> str:
    return f"{stack.url}/api{path}"


def test_a_new_session_has_a_running_instance_that_answers_exec(stack, alice, new_session):
    session = new_session(alice)
    assert session["state"] in {"starting", "running"}
    node1 = session["instances"][0]
    assert node1["hostname"] == "node1"
    assert node1["terminal"] == f"/ws/instances/{node1['id']}/terminal/"

    # exec waits for a provisioning instance within its timeout.
    answer = alice.post(api(stack, f"/sessions/{session['id']}/instances/{node1['id']}/exec/"),
                        json={"command": "hostname; echo $((6*7)); echo oops >&2; exit 3"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["exit_code"] == 3
    # stdout and stderr are separate streams: their interleaving is not ordered.
    words = answer.json()["output"].split()
    assert sorted(words) == ["42", "node1", "oops"]
    assert words.index("node1") < words.index("42")

    body = alice.get(api(stack, f"/sessions/{session['id']}/"), timeout=10).json()
    assert body["state"] == "running"
    assert body["instances"][0]["state"] == "running"
    assert body["instances"][0]["ip"]


def test_the_instance_carries_the_deployment_labels_and_limits(stack, alice, new_session, engine):
    session = new_session(alice)
    node1 = wait_instance(stack, alice, session["id"], session["instances"][0]["id"], "running")
    [container] = [c for c in labelled(engine, stack.deployment)["containers"]
                   if c["Labels"].get("playground.instance") == node1["id"]]
    assert container["Labels"]["playground.kind"] == "instance"
    host_config = engine.inspect_container(container["Id"])["HostConfig"]
    assert host_config["Memory"] == 512 * 1024 * 1024
    assert host_config["NanoCpus"] == 1_000_000_000
    assert host_config["PidsLimit"] == 512
    assert host_config["LogConfig"]["Config"]["max-size"]
    assert not host_config["Privileged"]
    assert not host_config["Binds"]


def test_instances_of_a_session_reach_each_other_by_hostname(stack, alice, new_session):
    session = new_session(alice)
    sid = session["id"]
    node2 = alice.post(api(stack, f"/sessions/{sid}/instances/"), json={}, timeout=30)
    assert node2.status_code == 201, node2.text
    assert node2.json()["hostname"] == "node2"
    answer = alice.post(api(stack, f"/sessions/{sid}/instances/{node2.json()['id']}/exec/"),
                        json={"command": "ping -c1 -W5 node1 >/dev/null && echo reached"}, timeout=60)
    assert answer.json() == {"exit_code": 0, "output": "reached\n"}


def test_sessions_cannot_reach_each_other(stack, alice, bob, new_session):
    mine = new_session(alice)
    theirs = new_session(bob)
    their_node = wait_instance(stack, bob, theirs["id"], theirs["instances"][0]["id"], "running")
    my_node = mine["instances"][0]["id"]
    answer = alice.post(api(stack, f"/sessions/{mine['id']}/instances/{my_node}/exec/"),
                        json={"command": f"ping -c1 -W2 {their_node['ip']} && echo reached"}, timeout=60)
    assert answer.status_code == 200
    assert answer.json()["exit_code"] != 0
    assert "reached" not in answer.json()["output"]


def test_files_go_in_and_come_out_unchanged(stack, alice, new_session):
    session = new_session(alice)
    base = api(stack, f"/sessions/{session['id']}/instances/{session['instances'][0]['id']}")
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    put = alice.put(base + "/files/?path=/root/upload/data.bin", data=payload, timeout=60)
    assert put.status_code == 201, put.text
    assert put.json() == {"path": "/root/upload/data.bin", "size": len(payload)}
    got = alice.get(base + "/files/?path=/root/upload/data.bin", timeout=60)
    assert got.status_code == 200
    assert got.content == payload
    seen = alice.post(base + "/exec/", json={"command": "wc -c < /root/upload/data.bin"}, timeout=30).json()
    assert seen["output"].strip() == str(len(payload))

    missing = alice.get(base + "/files/?path=/root/nothing-here", timeout=30)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    relative = alice.put(base + "/files/?path=relative.txt", data=b"x", timeout=30)
    assert relative.status_code == 400
    assert relative.json()["error"]["code"] == "invalid"


def test_deleting_a_session_removes_its_containers_and_network_before_answering(stack, alice, engine):
    created = alice.post(api(stack, "/sessions/"), json={}, timeout=30).json()
    sid = created["id"]
    wait_instance(stack, alice, sid, created["instances"][0]["id"], "running")
    node2 = alice.post(api(stack, f"/sessions/{sid}/instances/"), json={}, timeout=30).json()
    wait_instance(stack, alice, sid, node2["id"], "running")
    ids = {created["instances"][0]["id"], node2["id"]}

    assert alice.delete(api(stack, f"/sessions/{sid}/"), timeout=60).status_code == 204

    objects = labelled(engine, stack.deployment)
    assert not [c for c in objects["containers"] if c["Labels"].get("playground.instance") in ids]
    assert not [n for n in objects["networks"] if n["Labels"].get("playground.network") == sid]
    after = alice.get(api(stack, f"/sessions/{sid}/"), timeout=10).json()
    assert after["state"] == "ended"
    again = alice.delete(api(stack, f"/sessions/{sid}/"), timeout=30)
    assert again.status_code == 410
    assert again.json()["error"]["code"] == "session_over"


def test_deleting_an_instance_removes_its_container(stack, alice, new_session, engine):
    session = new_session(alice)
    sid = session["id"]
    node2 = alice.post(api(stack, f"/sessions/{sid}/instances/"), json={}, timeout=30).json()
    wait_instance(stack, alice, sid, node2["id"], "running")
    assert alice.delete(api(stack, f"/sessions/{sid}/instances/{node2['id']}/"), timeout=60).status_code == 204
    containers = labelled(engine, stack.deployment)["containers"]
    assert not [c for c in containers if c["Labels"].get("playground.instance") == node2["id"]]
    hostnames = [i["hostname"] for i in alice.get(api(stack, f"/sessions/{sid}/"), timeout=10).json()["instances"]]
    assert hostnames == ["node1"]


def test_an_expired_session_is_gone_from_the_engine_within_20_seconds(stack, alice, engine):
    created = alice.post(api(stack, "/sessions/"), json={}, timeout=30).json()
    sid = created["id"]
    wait_instance(stack, alice, sid, created["instances"][0]["id"], "running")
    stack.sql("UPDATE play_sessions_session SET expires_at = '2000-01-01 00:00:00' WHERE id = ?", (sid,))

    def gone():
        objects = labelled(engine, stack.deployment)
        return not any(c["Labels"].get("playground.instance") == created["instances"][0]["id"] for c in objects["containers"]) \
            and not any(n["Labels"].get("playground.network") == sid for n in objects["networks"])

    wait_for(gone, timeout=20, what="the expired session's container and network to go")
    body = alice.get(api(stack, f"/sessions/{sid}/"), timeout=10).json()
    assert body["state"] == "expired"
    late = alice.post(api(stack, f"/sessions/{sid}/instances/{created['instances'][0]['id']}/exec/"),
                      json={"command": "true"}, timeout=30)
    assert late.status_code == 410
    assert late.json()["error"]["code"] == "session_over"


def test_an_idle_session_expires(stack, alice, engine):
    created = alice.post(api(stack, "/sessions/"), json={}, timeout=30).json()
    sid = created["id"]
    stack.sql("UPDATE play_sessions_session SET last_activity_at = '2000-01-01 00:00:00' WHERE id = ?", (sid,))
    wait_for(lambda: alice.get(api(stack, f"/sessions/{sid}/"), timeout=10).json()["state"] == "expired",
             timeout=20, what="the idle session to expire")
    wait_for(lambda: not any(n["Labels"].get("playground.network") == sid
                             for n in labelled(engine, stack.deployment)["networks"]),
             timeout=20, what="its network to go")


def test_a_container_deleted_behind_the_playgrounds_back_is_noticed(stack, alice, new_session, engine):
    session = new_session(alice)
    node1 = wait_instance(stack, alice, session["id"], session["instances"][0]["id"], "running")
    [container] = [c for c in labelled(engine, stack.deployment)["containers"]
                   if c["Labels"].get("playground.instance") == node1["id"]]
    engine.remove_container(container["Id"], force=True)
    failed = wait_instance(stack, alice, session["id"], node1["id"], "failed", timeout=20)
    assert "vanished" in failed["reason"]


def test_an_orphan_container_with_the_labels_is_removed(stack, engine):
    labels = {"playground.deployment": stack.deployment, "playground.kind": "instance",
              "playground.instance": "no-such-instance"}
    orphan = engine.create_container(SHELL_IMAGE, command="sleep 600", labels=labels)
    engine.start(orphan["Id"])

    def removed():
        return not [c for c in engine.containers(all=True, filters={"id": orphan["Id"]})]

    wait_for(removed, timeout=20, what="the reconciler to remove the orphan")


def test_objects_of_another_deployment_are_left_alone(stack, engine):
    labels = {"playground.deployment": f"{stack.deployment}-other", "playground.kind": "instance",
              "playground.instance": "someone-elses"}
    other = engine.create_container(SHELL_IMAGE, command="sleep 600", labels=labels)
    try:
        engine.start(other["Id"])
        # Two reconcile rounds at least.
        wait_for(lambda: "reconcile" in stack.log("worker"), timeout=10, what="a reconcile round")
        import time

        time.sleep(5)
        assert engine.containers(filters={"id": other["Id"]})
    finally:
        engine.remove_container(other["Id"], force=True)


def test_extend_moves_expiry_later_until_the_cap(stack, alice, new_session):
    session = new_session(alice)
    url = api(stack, f"/sessions/{session['id']}/extend/")
    first = alice.post(url, timeout=10)
    assert first.status_code == 200
    assert first.json()["expires_at"] > session["expires_at"]
    assert alice.post(url, timeout=10).status_code == 200
    capped = alice.post(url, timeout=10)
    assert capped.status_code == 409
    assert capped.json()["error"]["code"] == "limit_reached"


def test_healthz_reports_every_part(stack):
    import requests

    answer = requests.get(stack.url + "/healthz", timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok" and body["broker"] == "ok"
    assert list(body["lab_hosts"].values()) == ["ok"]
