"""The fleet of lab hosts: registered in the database (seeded from the
environment), added while everything runs, cordoned and drained (fake
drivers; real engines in tests/integration/test_fleet.py)."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from playground.classrooms import actions as class_actions
from playground.classrooms.models import WarmSession
from playground.errors import Invalid, NoCapacity, NotFoundError
from playground.sessions import actions, hosts
from playground.sessions.models import Instance, LabHost
from tests.unit.test_classrooms import lab, teacher  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

LAB1, LAB2 = "fake://lab1", "fake://lab2"


@pytest.fixture(autouse=True)
def roomy(settings):
    settings.PLAYGROUND_MAX_SESSIONS_USER = 50


def test_the_environment_seeds_the_list_and_a_host_added_later_is_used_at_once(alice):
    assert hosts.lab_hosts() == [LAB1]
    assert list(LabHost.objects.values_list("url", "state")) == [(LAB1, "active")]
    actions.set_host_state(url=LAB1, state="cordoned", note="kernel update")
    with pytest.raises(NoCapacity, match="no lab host takes new sandboxes"):
        actions.start_session(user=alice)

    actions.add_host(url=LAB2)  # no restart: the next placement sees it
    assert actions.start_session(user=alice).host == LAB2
    assert hosts.lab_hosts() == [LAB1, LAB2]  # the cordoned one is still watched and reconciled
    assert hosts.placeable_hosts() == [LAB2]


def test_a_cordoned_host_takes_no_new_session_but_what_runs_there_goes_on(alice, start, settings):
    settings.PLAYGROUND_LAB_HOSTS = [LAB1, LAB2]
    first = start(user=alice)
    actions.set_host_state(url=first.host, state="cordoned")
    assert all(start(user=alice).host != first.host for _ in range(3))
    node1 = first.instances.get()
    assert actions.exec_command(instance=node1, command="echo still here", timeout=5).output == b"still here\n"
    # Its own session may still add a machine: a session's instances share one network on one host.
    assert actions.add_instance(session=first).host == first.host


def test_draining_moves_the_pool_and_a_class_warm_pool_to_the_other_hosts(settings, teacher, lab,  # noqa: F811
                                                                           django_capture_on_commit_callbacks):
    settings.PLAYGROUND_LAB_HOSTS = [LAB1]
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 2}
    actions.fill_pools()
    now = timezone.now()
    class_actions.create_classroom(user=teacher, title="Soon", lab=lab, seats=2,
                                               starts_at=now + timedelta(minutes=5), ends_at=now + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        class_actions.warm_classes()
    pooled = lambda: sorted(Instance.objects.filter(session__isnull=True, state="running").values_list("host", flat=True))  # noqa: E731
    warm_hosts = lambda: sorted(WarmSession.objects.values_list("session__host", flat=True))  # noqa: E731
    assert pooled() == [LAB1, LAB1]
    assert warm_hosts() == [LAB1, LAB1]

    actions.add_host(url=LAB2)
    actions.set_host_state(url=LAB1, state="cordoned")
    actions.fill_pools()
    with django_capture_on_commit_callbacks(execute=True):
        class_actions.warm_classes()
    assert pooled() == [LAB1, LAB1, LAB2, LAB2]  # each host keeps a pool; a cordoned one's stays
    assert warm_hosts() == [LAB1, LAB1]

    actions.set_host_state(url=LAB1, state="draining", note="disk replacement")
    actions.fill_pools()
    with django_capture_on_commit_callbacks(execute=True):
        class_actions.warm_classes()
    assert pooled() == [LAB2, LAB2]
    assert warm_hosts() == [LAB2, LAB2]
    assert [o.instance_id for o in hosts.driver_for(LAB1).list_objects() if o.kind == "container"] == []


def test_a_host_is_removed_only_once_nothing_runs_there(alice, start):
    session = start(user=alice)
    with pytest.raises(Invalid, match="still runs 1 instance"):
        actions.remove_host(url=LAB1)
    actions.end_session(session=session)
    actions.teardown_session(session_id=session.id)
    actions.remove_host(url=LAB1)
    with pytest.raises(NotFoundError):
        actions.remove_host(url=LAB1)


def test_a_host_that_does_not_answer_or_lacks_tls_is_not_added(settings):
    settings.PLAYGROUND_DRIVER = "sandboxes.docker.DockerDriver"
    settings.PLAYGROUND_LAB_HOST_OPTIONS = {}
    with pytest.raises(Invalid, match="mutual TLS"):
        actions.add_host(url="tcp://127.0.0.1:9")
    with pytest.raises(Invalid, match="cannot be a lab host"):
        actions.add_host(url="unix:///nonexistent/docker.sock")
    with pytest.raises(Invalid, match="no engine address"):
        actions.add_host(url="lab-host-3")
    assert not LabHost.objects.exclude(url=LAB1).exists()


def test_the_command_lists_adds_cordons_and_drains(alice, start):
    start(user=alice)
    out = StringIO()
    call_command("lab_hosts", "add", LAB2, stdout=out)
    call_command("lab_hosts", "cordon", LAB1, "--note", "kernel update", stdout=out)
    call_command("lab_hosts", "drain", LAB2, stdout=out)
    call_command("lab_hosts", stdout=out)
    text = out.getvalue()
    assert f"{LAB2}: active, taking new instances" in text
    assert f"{LAB1}: cordoned" in text and f"{LAB2}: draining" in text
    listed = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("fake://")}
    assert listed[LAB1][1:4] == ["cordoned", "ok", "1"]
    assert "kernel update" in text
    with pytest.raises(CommandError, match="No lab host fake://lab9"):
        call_command("lab_hosts", "activate", "fake://lab9", stdout=out)
