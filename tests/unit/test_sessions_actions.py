from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from playground.errors import (
    Invalid,
    LimitReached,
    NoCapacity,
    NotFoundError,
    NotReady,
    SessionOver,
)
from playground.sessions import actions, hosts
from playground.sessions.models import Instance, Session

pytestmark = pytest.mark.django_db


def engine_objects(kind: str | None = None):
    objects = hosts.driver_for("fake://lab1").list_objects()
    return [o for o in objects if kind is None or o.kind == kind]


def test_starting_a_session_provisions_node1(alice, start):
    session = start(user=alice)
    session.refresh_from_db()
    [node1] = session.instances.all()
    assert session.state == "running"
    assert (node1.hostname, node1.state, node1.image) == ("node1", "running", "shell")
    assert node1.ip
    assert [o.instance_id for o in engine_objects("container")] == [node1.id]
    assert [o.network_key for o in engine_objects("network")] == [session.id]


def test_an_unknown_image_is_refused_with_the_choices(alice):
    with pytest.raises(Invalid, match="shell"):
        actions.start_session(user=alice, image="nope")


def test_a_user_has_at_most_two_live_sessions(alice, start):
    start(user=alice)
    start(user=alice)
    with pytest.raises(LimitReached):
        start(user=alice)


def test_a_guest_has_at_most_one_live_session(guest, start):
    start(user=guest)
    with pytest.raises(LimitReached):
        start(user=guest)


def test_an_ended_session_frees_its_seat(alice, start):
    first = start(user=alice)
    start(user=alice)
    actions.end_session(session=first)
    start(user=alice)


def test_instances_are_numbered_with_the_lowest_free_number(alice, start, django_capture_on_commit_callbacks):
    session = start(user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        node2 = actions.add_instance(session=session)
        node3 = actions.add_instance(session=session)
    actions.remove_instance(instance=node2)
    with django_capture_on_commit_callbacks(execute=True):
        again = actions.add_instance(session=session)
    assert (node3.hostname, again.hostname) == ("node3", "node2")
    assert Instance.objects.get(id=again.id).state == "running"


def test_a_session_has_at_most_five_instances(alice, start, django_capture_on_commit_callbacks):
    session = start(user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(4):
            actions.add_instance(session=session)
    with pytest.raises(LimitReached):
        actions.add_instance(session=session)


def test_ending_a_session_removes_everything_on_the_host(alice, start, django_capture_on_commit_callbacks):
    session = start(user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        actions.add_instance(session=session)
    actions.end_session(session=session)
    session.refresh_from_db()
    assert session.state == "ended"
    assert engine_objects() == []
    assert set(session.instances.values_list("state", flat=True)) == {"stopped"}
    with pytest.raises(SessionOver):
        actions.end_session(session=session)


def test_someone_elses_session_is_not_found(alice, bob, start):
    session = start(user=alice)
    with pytest.raises(NotFoundError):
        actions.session_of(user=bob, session_id=session.id)
    with pytest.raises(NotFoundError):
        actions.instance_of(user=bob, session_id=session.id, instance_id=session.instances.get().id)


def test_extending_moves_expiry_by_an_hour_at_most_twice(alice, start):
    session = start(user=alice)
    before = Session.objects.get(id=session.id).expires_at
    actions.extend_session(session=session)
    actions.extend_session(session=session)
    with pytest.raises(LimitReached):
        actions.extend_session(session=session)
    assert Session.objects.get(id=session.id).expires_at == before + timedelta(hours=2)


def test_sessions_past_their_lifetime_or_idle_expire(alice, bob, start, django_capture_on_commit_callbacks):
    old = start(user=alice)
    idle = start(user=bob)
    fresh = start(user=alice)
    Session.objects.filter(id=old.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    Session.objects.filter(id=idle.id).update(last_activity_at=timezone.now() - timedelta(minutes=31))
    with django_capture_on_commit_callbacks(execute=True):
        expired = actions.expire_due_sessions()
    assert sorted(expired) == sorted([old.id, idle.id])
    assert Session.objects.get(id=old.id).reason == "its lifetime ran out"
    assert "no activity" in Session.objects.get(id=idle.id).reason
    assert Session.objects.get(id=fresh.id).state == "running"
    assert {o.instance_id for o in engine_objects("container")} == {fresh.instances.get().id}
    # A second sweep finds nothing new.
    assert actions.expire_due_sessions() == []


def test_activity_keeps_a_session_from_idling_out(alice, start):
    session = start(user=alice)
    Session.objects.filter(id=session.id).update(last_activity_at=timezone.now() - timedelta(minutes=31))
    actions.note_activity(session_id=session.id)
    assert actions.expire_due_sessions() == []


def test_the_reconciler_removes_orphans_and_notices_vanished_containers(alice, start):
    from sandboxes.base import InstanceSpec

    session = start(user=alice)
    node1 = session.instances.get()
    driver = hosts.driver_for("fake://lab1")
    orphan = driver.create_instance(InstanceSpec(instance_id="orphan", image="playground-shell:latest",
                                                 hostname="node9", network=None))
    driver.remove_instance(Instance.objects.get(id=node1.id).driver_state)
    Instance.objects.filter(id=node1.id).update(running_at=timezone.now() - timedelta(seconds=5))

    report = actions.reconcile_host(host="fake://lab1")

    assert report == {"removed": 1, "vanished": 1}
    assert driver.inspect(orphan.state).state == "missing"
    node1.refresh_from_db()
    assert node1.state == "failed"
    assert "vanished" in node1.reason


def test_exec_runs_in_a_running_instance_and_notes_activity(alice, start):
    session = start(user=alice)
    node1 = session.instances.get()
    result = actions.exec_command(instance=node1, command="echo hello", timeout=5)
    assert result.exit_code == 0
    assert b"hello" in result.output


def test_exec_on_a_failed_instance_is_not_ready(alice, start):
    session = start(user=alice)
    node1 = session.instances.get()
    Instance.objects.filter(id=node1.id).update(state="failed", reason="boom")
    node1.refresh_from_db()
    with pytest.raises(NotReady, match="boom"):
        actions.exec_command(instance=node1, command="true", timeout=1)


def test_exec_waits_for_provisioning_then_gives_up_clearly(alice):
    session = actions.start_session(user=alice)  # nothing provisions it
    with pytest.raises(NotReady, match="did not start in time"):
        actions.exec_command(instance=session.instances.get(), command="true", timeout=0.2)


def test_a_host_that_broke_refuses_new_sessions_with_no_capacity(alice, start, settings):
    from django.core.cache import cache

    # The host looked healthy when the session was allocated, then broke.
    start(user=alice)
    settings.PLAYGROUND_DRIVER = "sandboxes.fake.BrokenDriver"
    hosts.forget_drivers()
    cache.clear()
    with pytest.raises(NoCapacity):
        actions.start_session(user=alice)


def test_provisioning_on_a_broken_host_fails_after_retries(alice, settings, django_capture_on_commit_callbacks):
    session = actions.start_session(user=alice)  # allocated while healthy
    settings.PLAYGROUND_DRIVER = "sandboxes.fake.BrokenDriver"
    hosts.forget_drivers()
    actions.provision_instance(instance_id=session.instances.get().id)
    node1 = session.instances.get()
    session.refresh_from_db()
    assert node1.state == "failed"
    assert node1.reason.startswith("could not start: lab host unreachable")
    assert session.state == "failed"


def test_a_host_silent_past_the_grace_fails_its_instances(alice, start, settings):
    session = start(user=alice)
    settings.PLAYGROUND_HOST_DOWN_GRACE = 0
    settings.PLAYGROUND_DRIVER = "sandboxes.fake.BrokenDriver"
    hosts.forget_drivers()
    assert actions.check_hosts() == {"fake://lab1": False}
    node1 = session.instances.get()
    assert node1.state == "failed"
    assert "stopped answering" in node1.reason


def test_the_health_view_is_reused_while_fresh(alice, monkeypatch):
    calls = []
    real_probe = hosts.probe
    monkeypatch.setattr(hosts, "probe", lambda host: calls.append(host) or real_probe(host))
    actions.start_session(user=alice)
    actions.start_session(user=alice)
    assert calls == ["fake://lab1"]
