"""Jobs a dead worker left undone are found by the sweep and done again, once,
or their rows fail with a reason (playground/jobs.py). The worker's death is
played here by a job that took its lease and never gave it back; the real
SIGKILL is in tests/faults/test_dead_worker.py."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from playground import jobs
from playground.sessions import actions
from playground.sessions.models import Instance, Session

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def short_leases(settings):
    settings.PLAYGROUND_JOB_LEASE_SECONDS = 3
    settings.PLAYGROUND_JOB_QUEUE_SECONDS = 60
    settings.PLAYGROUND_JOB_ATTEMPTS = 2


def a_worker_died_holding(job: str) -> None:
    """What a SIGKILLed worker leaves: the job started, its lease lapsed."""
    with jobs.lease(job) as mine:
        assert mine
    cache.delete_many([f"job-lease:{job}", f"job-seen:{job}"])


def unstarted_instance(session: Session) -> Instance:
    return Instance.objects.create(session=session, number=2, hostname="node2", image="shell", host=session.host)


def test_a_lease_is_held_by_one_worker_at_a_time():
    with jobs.lease("provision:x") as first, jobs.lease("provision:x") as second:
        assert (first, second) == (True, False)
    with jobs.lease("provision:x") as again:
        assert again


def test_a_job_that_a_worker_is_doing_is_left_alone():
    with jobs.lease("provision:x"):
        assert jobs.should_requeue("provision:x", queued_at=timezone.now() - timedelta(hours=1)) is False


def test_a_job_waiting_in_the_queue_is_left_alone_for_a_while():
    assert jobs.should_requeue("provision:x", queued_at=timezone.now()) is False
    assert jobs.should_requeue("provision:x", queued_at=timezone.now() - timedelta(seconds=61)) is True


def test_a_job_whose_worker_died_is_queued_again_once_per_lease(django_capture_on_commit_callbacks, alice, start):
    session = start(user=alice)
    node2 = unstarted_instance(session)  # its provisioning job "started" and died
    a_worker_died_holding(f"provision:{node2.id}")

    with django_capture_on_commit_callbacks(execute=True):
        first = actions.recover_lost_jobs()
        second = actions.recover_lost_jobs()

    assert first["requeued"] == 1  # eager Celery: provisioned by the "other worker"
    assert second == {"requeued": 0, "failed": 0}
    node2.refresh_from_db()
    assert node2.state == "running"


def test_a_job_lost_too_many_times_fails_its_instance_with_the_reason(alice, start, monkeypatch):
    session = start(user=alice)
    node2 = unstarted_instance(session)
    monkeypatch.setattr(actions, "_queue_provision", lambda iid: a_worker_died_holding(f"provision:{iid}"))
    a_worker_died_holding(f"provision:{node2.id}")

    for _ in range(3):
        actions.recover_lost_jobs()
        cache.delete(f"job-requeued:provision:{node2.id}")

    node2.refresh_from_db()
    assert node2.state == "failed"
    assert "interrupted 2 times" in node2.reason


def test_a_session_over_whose_teardown_died_is_torn_down(alice, start, django_capture_on_commit_callbacks):
    session = start(user=alice)
    Session.objects.filter(id=session.id).update(state="ended", ended_at=timezone.now())
    a_worker_died_holding(f"teardown:{session.id}")

    with django_capture_on_commit_callbacks(execute=True):
        assert actions.recover_lost_jobs()["requeued"] == 1

    assert not session.instances.filter(state__in=actions.LIVE_INSTANCE_STATES).exists()
    assert not [o for o in actions.hosts.driver_for("fake://lab1").list_objects() if o.kind == "container"]


def test_a_lease_can_wait_for_its_holder_to_finish():
    """How ending a session waits for a worker already tearing it down."""
    import threading

    got = []

    def end_it() -> None:
        with jobs.lease("teardown:x", wait=10) as mine:
            got.append(mine)

    with jobs.lease("teardown:x") as mine:
        assert mine
        waiter = threading.Thread(target=end_it)
        waiter.start()
        waiter.join(0.5)
        assert got == []
    waiter.join(10)
    assert got == [True]


@pytest.fixture
def set_up_lab(tmp_path):
    from playground.labs import actions as lab_actions
    from playground.labs.loader import load_lab
    from tests.unit.labs_helpers import MINIMAL, write_lab

    lab_actions.import_lab(lab_def=load_lab(write_lab(tmp_path, MINIMAL + "setup:\n  script: echo ready\n")))
    return "hello"


def test_a_lab_set_up_whose_worker_died_mid_script_fails_with_the_reason(alice, set_up_lab):
    from playground.labs import actions as lab_actions
    from playground.labs.models import LabRun

    session = lab_actions.start_lab(user=alice, slug=set_up_lab)  # its job never runs here
    LabRun.objects.filter(session=session).update(setup_state=LabRun.Setup.RUNNING)
    a_worker_died_holding(f"lab-setup:{session.id}")

    assert lab_actions.recover_lost_setups() == {"requeued": 0, "failed": 1}

    run = LabRun.objects.get(session=session)
    assert run.setup_state == "failed"
    assert "interrupted" in run.setup_output and "Start the lab again" in run.setup_output


def test_a_lab_set_up_whose_message_was_lost_is_queued_again(alice, set_up_lab, django_capture_on_commit_callbacks):
    from playground.labs import actions as lab_actions
    from playground.labs.models import LabRun

    with django_capture_on_commit_callbacks(execute=True):
        session = lab_actions.start_lab(user=alice, slug=set_up_lab)
    LabRun.objects.filter(session=session).update(setup_state=LabRun.Setup.PENDING, setup_output="")
    Session.objects.filter(id=session.id).update(created_at=timezone.now() - timedelta(minutes=5))
    cache.clear()  # nothing says it ever started: its message was lost

    assert lab_actions.recover_lost_setups() == {"requeued": 1, "failed": 0}

    run = LabRun.objects.get(session=session)
    assert run.setup_state == "done" and "ready" in run.setup_output


def test_a_template_set_up_whose_worker_died_is_done_by_the_next(alice, django_capture_on_commit_callbacks, monkeypatch):
    with django_capture_on_commit_callbacks(execute=True):
        session = actions.start_template_session(user=alice, template="swarm-1m1w")
    formed = []
    monkeypatch.setattr(actions, "_form_swarm", lambda *args: formed.append(args))
    Session.objects.filter(id=session.id).update(setup={**session.setup, "state": "running"})
    a_worker_died_holding(f"template:{session.id}")

    with django_capture_on_commit_callbacks(execute=True):
        assert actions.recover_lost_jobs()["requeued"] == 1

    session.refresh_from_db()
    assert session.setup["state"] == "done" and len(formed) == 1
