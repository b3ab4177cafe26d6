"""Instances that die say so: from the engine's event stream (the watcher),
and at once when a call finds them not running (fake driver; the real
engine's restart is tests/faults/test_engine_restart.py)."""
from __future__ import annotations

import threading

import pytest
from rest_framework.test import APIClient

from playground.accounts.actions import create_api_token
from playground.errors import NotReady
from playground.sessions import actions, hosts
from playground.sessions.models import Instance
from sandboxes.base import EngineEvent
from tests.stack import wait_for

HOST = "fake://lab1"


def fake_driver():
    return hosts.driver_for(HOST)


def state_of(instance: Instance) -> tuple[str, str]:
    instance.refresh_from_db()
    return instance.state, instance.reason


@pytest.mark.django_db
def test_exec_on_an_instance_whose_container_stopped_is_not_ready_and_marks_it(alice, start):
    node1 = start(user=alice).instances.get()
    fake_driver().stop_instance(node1.driver_state, exit_code=137, reason="OOMKilled")
    with pytest.raises(NotReady, match="out of memory"):
        actions.exec_command(instance=node1, command="true", timeout=5)
    assert state_of(node1) == ("failed", "its container exited (code 137, out of memory)")


@pytest.mark.django_db
def test_the_api_answers_409_not_ready_for_exec_and_files_on_a_dead_instance(alice, start):
    session = start(user=alice)
    node1 = session.instances.get()
    fake_driver().stop_instance(node1.driver_state, exit_code=1, reason="exited")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(username='alice')}")
    base = f"/api/sessions/{session.id}/instances/{node1.id}"
    answer = client.post(f"{base}/exec/", {"command": "true"}, format="json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "not_ready")
    assert "code 1" in answer.json()["error"]["message"]
    answer = client.get(f"{base}/files/?path=/etc/hostname")
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "not_ready")


@pytest.mark.django_db
def test_a_died_event_fails_the_instance_only_if_the_engine_says_it_stopped(
    alice, start, django_capture_on_commit_callbacks
):
    node1 = start(user=alice).instances.get()
    # A stale or repeated event about an instance that runs changes nothing.
    late = EngineEvent(instance_id=node1.id, kind="died", exit_code=0)
    assert actions.engine_event(host=HOST, event=late) is None
    assert state_of(node1) == ("running", "")
    fake_driver().stop_instance(node1.driver_state, exit_code=2, reason="exited")
    with django_capture_on_commit_callbacks(execute=False) as notified:
        assert actions.engine_event(host=HOST, event=late) == "its container exited (code 2)"
    assert state_of(node1) == ("failed", "its container exited (code 2)")
    assert len(notified) == 1  # the session's viewers are told


@pytest.fixture
def watcher(settings):
    """manage.py watch_engines' loop, in a thread, for the test's length."""
    stop = threading.Event()
    thread = threading.Thread(target=actions.watch_engines, kwargs={"stop": stop}, daemon=True)
    thread.start()
    wait_for(lambda: fake_driver().host.streams, timeout=10, what="the watcher to open the host's stream")
    yield
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_the_watcher_marks_a_dead_instance_with_its_reason(alice, start, watcher):
    node1, = start(user=alice).instances.all()
    fake_driver().stop_instance(node1.driver_state, exit_code=137, reason="OOMKilled")
    wait_for(lambda: state_of(node1)[0] == "failed", timeout=10, what="the watcher to mark node1")
    assert state_of(node1)[1] == "its container exited (code 137, out of memory)"


@pytest.fixture
def renewing_often(settings):
    settings.PLAYGROUND_ENGINE_EVENTS_RENEW_SECONDS = 0.3


@pytest.mark.django_db(transaction=True)
def test_a_stream_renewed_on_schedule_misses_nothing(alice, start, renewing_often, watcher):
    node1, = start(user=alice).instances.all()
    opened = fake_driver().host.streams_opened
    wait_for(lambda: fake_driver().host.streams_opened >= opened + 3, timeout=10, what="a few renewals")
    fake_driver().stop_instance(node1.driver_state, exit_code=3, reason="exited")
    wait_for(lambda: state_of(node1)[0] == "failed", timeout=10, what="the renewed stream to tell of node1")
    assert state_of(node1)[1] == "its container exited (code 3)"


@pytest.mark.django_db(transaction=True)
def test_after_an_engine_restart_the_watcher_reconnects_and_catches_up(alice, start, watcher):
    node1, = start(user=alice).instances.all()
    kept, = start(user=alice).instances.all()
    # Live restore: the instances outlive the engine. The watcher's new
    # stream tells of node1 dying afterwards, so its catch-up round (taken
    # before it reads the stream) ran by then, and failed nothing.
    fake_driver().restart_engine(keep=True)
    wait_for(lambda: fake_driver().host.streams, timeout=10, what="the watcher to reconnect")
    fake_driver().stop_instance(node1.driver_state, exit_code=5, reason="exited")
    wait_for(lambda: state_of(node1)[0] == "failed", timeout=10, what="the new stream to tell of node1")
    assert state_of(node1)[1] == "its container exited (code 5)"
    assert state_of(kept) == ("running", "")
    # Without live restore: the old engine's events are lost, the catch-up finds it.
    fake_driver().restart_engine(keep=False)
    wait_for(lambda: state_of(kept)[0] == "failed", timeout=10, what="the watcher to catch up")
    assert state_of(kept)[1] == f"{actions.ENGINE_RESTARTED} (code 143)"
