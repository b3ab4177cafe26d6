"""The player's automatic checks (labs with ``auto_check``): run like the
learner's own, but a failure is not the learner failing, so it counts nowhere
(progress, the stuck flag of a class's dashboard); a pass counts as any pass
(fake driver, eager tasks)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from playground.accounts.actions import create_api_token
from playground.classrooms import actions as class_actions
from playground.labs import actions
from playground.labs.loader import load_lab
from playground.labs.models import Lab, Progress
from playground.sessions import api as session_api
from sandboxes.fake import FakeDriver
from tests.unit.labs_helpers import MINIMAL, write_lab

pytestmark = pytest.mark.django_db

AUTO = MINIMAL + "auto_check: true\n"


@pytest.fixture
def lab_host(monkeypatch):
    """A fake lab host where ``test -f /root/hello`` fails until ``touch /root/hello`` ran there."""
    done: set[str] = set()
    plain = FakeDriver.handle_exec

    def handle_exec(self, hostname: str, command: str):
        if "touch /root/hello" in command:
            done.add(hostname)
            return 0, b""
        if "test -f /root/hello" in command:
            return (0, b"") if hostname in done else (1, b"no /root/hello yet\n")
        return plain(self, hostname, command)

    monkeypatch.setattr(FakeDriver, "handle_exec", handle_exec)


@pytest.fixture
def hello(tmp_path, lab_host) -> Lab:
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path, AUTO)))
    lab = Lab.objects.get(slug="hello")
    assert lab.auto_check
    return lab


@pytest.fixture
def lab_session(alice, hello, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return actions.start_lab(user=alice, slug=hello.slug)


def counters(user, lab) -> tuple:
    progress = Progress.objects.get(user=user, lab=lab)
    return progress.checks_passed, progress.checks_failed, progress.failed_in_a_row, progress.last_check_at


# -- the use case ---------------------------------------------------------------------------------


def test_a_failed_automatic_check_answers_but_changes_no_counter(alice, hello, lab_session):
    for _ in range(5):
        result = actions.check_step(user=alice, session=lab_session, number=1, auto=True)
        assert (result.passed, result.output, result.hint) == (False, "no /root/hello yet\n", "Use `touch /root/hello`.")
        assert result.progress["checks_failed"] == 0 and result.progress["current"] == 1
    assert counters(alice, hello) == (0, 0, 0, None)


def test_a_passing_automatic_check_completes_the_step_as_a_manual_one_does(alice, hello, lab_session):
    actions.check_step(user=alice, session=lab_session, number=1, auto=True)
    actions.run_solution(session=lab_session, number=1)
    passed = actions.check_step(user=alice, session=lab_session, number=1, auto=True)
    assert (passed.passed, passed.hint) == (True, "")
    assert passed.progress["completed"] == [1] and passed.progress["current"] == 2
    checks_passed, checks_failed, in_a_row, last_check_at = counters(alice, hello)
    assert (checks_passed, checks_failed, in_a_row) == (1, 0, 0) and last_check_at is not None
    # The next step is unlocked (step 2 has no check: done when asked).
    assert actions.check_step(user=alice, session=lab_session, number=2).progress["finished"]


def test_manual_failures_still_count_and_automatic_ones_do_not_reset_them(alice, hello, lab_session):
    actions.check_step(user=alice, session=lab_session, number=1)
    actions.check_step(user=alice, session=lab_session, number=1, auto=True)
    actions.check_step(user=alice, session=lab_session, number=1)
    assert counters(alice, hello)[:3] == (0, 2, 2)
    actions.run_solution(session=lab_session, number=1)
    actions.check_step(user=alice, session=lab_session, number=1, auto=True)
    assert counters(alice, hello)[:3] == (1, 2, 0)


def test_automatic_checks_are_not_the_learner_s_activity(alice, hello, lab_session):
    from playground.sessions.models import Session

    long_ago = timezone.now() - timedelta(minutes=20)
    Session.objects.filter(id=lab_session.id).update(last_activity_at=long_ago)
    actions.check_step(user=alice, session=lab_session, number=1, auto=True)
    assert Session.objects.get(id=lab_session.id).last_activity_at == long_ago  # an idle learner stays idle
    actions.check_step(user=alice, session=lab_session, number=1)
    assert Session.objects.get(id=lab_session.id).last_activity_at > long_ago  # pressing Check is activity


def test_a_step_without_a_check_is_never_done_automatically(alice, hello, lab_session):
    actions.run_solution(session=lab_session, number=1)
    actions.check_step(user=alice, session=lab_session, number=1)
    # Step 2 has no check: its "Done" is the learner's to press.
    result = actions.check_step(user=alice, session=lab_session, number=2, auto=True)
    assert not result.passed and result.progress["current"] == 2 and not result.progress["finished"]
    assert actions.check_step(user=alice, session=lab_session, number=2).progress["finished"]


# -- the class dashboard ----------------------------------------------------------------------------


@pytest.fixture
def class_learner(hello, django_capture_on_commit_callbacks, settings):
    """Bob in a running class on the lab: (classroom, bob, his session)."""
    settings.PLAYGROUND_CLASS_STUCK_FAILURES = 3
    create_api_token(username="teacher", instructor=True)
    teacher = get_user_model().objects.get(username="teacher")
    now = timezone.now()
    classroom = class_actions.create_classroom(user=teacher, title="Docker 101", lab=hello.slug, seats=2,
                                               starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=2))
    bob = get_user_model().objects.create_user("bob")
    with django_capture_on_commit_callbacks(execute=True):
        session, _ = class_actions.join(user=bob, code=classroom.join_code, display_name="Bob")
    return classroom, bob, session


@pytest.fixture
def dashboard_events(monkeypatch) -> list[str]:
    """Classes whose dashboards were told that something changed."""
    told: list[str] = []
    monkeypatch.setattr(class_actions, "notify_class", told.append)
    return told


def test_automatic_failures_never_flag_a_learner_stuck_nor_reach_the_dashboard(class_learner, dashboard_events):
    classroom, bob, session = class_learner
    for _ in range(6):
        assert not actions.check_step(user=bob, session=session, number=1, auto=True).passed
    [entry] = class_actions.roster(classroom=classroom)
    assert (entry["checks_failed"], entry["stuck"]) == (0, False)
    assert dashboard_events == []

    # The same failures pressed by the learner do flag him, as before.
    for _ in range(3):
        actions.check_step(user=bob, session=session, number=1)
    [entry] = class_actions.roster(classroom=classroom)
    assert (entry["checks_failed"], entry["stuck"]) == (3, True)
    assert dashboard_events == [classroom.id] * 3


def test_an_automatic_pass_reaches_the_dashboard_and_clears_the_stuck_flag(class_learner, dashboard_events):
    classroom, bob, session = class_learner
    for _ in range(3):
        actions.check_step(user=bob, session=session, number=1)
    assert class_actions.roster(classroom=classroom)[0]["stuck"]
    dashboard_events.clear()
    actions.run_solution(session=session, number=1)
    assert actions.check_step(user=bob, session=session, number=1, auto=True).passed
    [entry] = class_actions.roster(classroom=classroom)
    assert (entry["step"], entry["checks_passed"], entry["stuck"]) == (2, 1, False)
    assert dashboard_events == [classroom.id]


# -- the HTTP API ------------------------------------------------------------------------------------


@pytest.fixture
def alice_api(hello, django_capture_on_commit_callbacks) -> tuple[APIClient, str]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(username='alice')}")
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/api/sessions/", {"lab": hello.slug}, format="json")
    assert created.status_code == 201, created.json()
    return client, f"/api/sessions/{created.json()['id']}/check/"


def test_the_api_takes_auto_and_counts_only_the_learner_s_own_failures(alice_api):
    client, url = alice_api
    auto = client.post(url, {"step": 1, "auto": True}, format="json")
    assert auto.status_code == 200, auto.json()
    assert auto.json()["passed"] is False and "<code>touch /root/hello</code>" in auto.json()["hint"]
    assert auto.json()["progress"]["checks_failed"] == 0
    manual = client.post(url, {"step": 1, "auto": False}, format="json").json()
    assert manual["passed"] is False and manual["progress"]["checks_failed"] == 1
    plain = client.post(url, {"step": 1}, format="json").json()  # docs/api.md's form: a manual check
    assert plain["progress"]["checks_failed"] == 2
    assert client.get("/api/labs/hello/").json()["progress"]["checks_failed"] == 2


@pytest.mark.parametrize("value", ["true", "yes", 1, 0, None, [], {}])
def test_an_auto_that_is_not_a_json_boolean_is_invalid(alice_api, value):
    client, url = alice_api
    answer = client.post(url, {"step": 1, "auto": value}, format="json")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid" and "auto" in error["message"]
    assert Progress.objects.get(user__username="alice").checks_failed == 0


def test_automatic_checks_are_rate_limited_like_any_check(alice_api, monkeypatch):
    monkeypatch.setattr(session_api.ExecThrottle, "THROTTLE_RATES",
                        {**session_api.ExecThrottle.THROTTLE_RATES, "exec_user": "3/min"})
    client, url = alice_api
    answers = [client.post(url, {"step": 1, "auto": True}, format="json") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited" and int(answers[-1]["Retry-After"]) >= 1
