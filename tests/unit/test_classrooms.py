"""Classes: creating, joining with a code, the rules of joining, the roster and
the end of a class (fake driver, eager tasks)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from playground.accounts.actions import create_api_token
from playground.classrooms import actions
from playground.classrooms.models import Classroom, Learner, Organisation
from playground.errors import ClassClosed, Forbidden, LimitReached, NotFoundError
from playground.labs import actions as lab_actions
from playground.labs.loader import load_lab
from playground.sessions import hosts
from playground.sessions.models import Session
from tests.unit.labs_helpers import write_lab

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(tmp_path):
    lab_actions.import_lab(lab_def=load_lab(write_lab(tmp_path)))
    return "hello"


@pytest.fixture
def teacher():
    create_api_token(username="teacher", instructor=True)
    return get_user_model().objects.get(username="teacher")


def user(name: str):
    return get_user_model().objects.create_user(name)


@pytest.fixture
def open_class(teacher, lab):
    now = timezone.now()
    return actions.create_classroom(user=teacher, title="Docker 101", lab=lab, seats=2,
                                    starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=2))


def join(who, classroom, django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        return actions.join(user=who, code=kwargs.pop("code", classroom.join_code), **kwargs)


def warmed_class(teacher, lab, capture, *, seats: int, starts_at, ends_at) -> Classroom:
    """A class about to start whose warm pool is full (``seats`` sessions)."""
    from playground.classrooms.models import WarmSession

    classroom = actions.create_classroom(user=teacher, title="Soon", lab=lab, seats=seats,
                                         starts_at=starts_at, ends_at=ends_at)
    with capture(execute=True):
        actions.warm_classes()
    assert WarmSession.objects.filter(classroom=classroom).count() == seats
    return classroom


def test_only_instructors_create_classes(alice, lab):
    now = timezone.now()
    with pytest.raises(Forbidden):
        actions.create_classroom(user=alice, title="x", lab=lab, seats=1, starts_at=now,
                                 ends_at=now + timedelta(hours=1))


def test_joining_gives_a_lab_session_of_the_class_and_again_the_same_one(open_class, django_capture_on_commit_callbacks):
    bob = user("bob")
    session, created = join(bob, open_class, django_capture_on_commit_callbacks, display_name="Bob B.")
    assert created and session.lab_run.lab.slug == "hello"
    assert session.seat.classroom == open_class and session.seat.display_name == "Bob B."
    assert session.expires_at <= open_class.ends_at
    again, created = join(bob, open_class, django_capture_on_commit_callbacks)
    assert (again.id, created) == (session.id, False)
    assert Learner.objects.filter(classroom=open_class).count() == 1


def test_codes_are_typed_loosely_but_a_wrong_one_is_not_found(open_class, django_capture_on_commit_callbacks):
    _, created = join(user("bob"), open_class, django_capture_on_commit_callbacks,
                      code=f"  {open_class.join_code.lower()} ")
    assert created
    with pytest.raises(NotFoundError, match="No class has this join code"):
        join(user("carol"), open_class, django_capture_on_commit_callbacks, code="NOPE2345")


def test_a_full_class_refuses_the_next_learner(open_class, django_capture_on_commit_callbacks):
    join(user("bob"), open_class, django_capture_on_commit_callbacks)
    join(user("carol"), open_class, django_capture_on_commit_callbacks)
    with pytest.raises(LimitReached, match="full"):
        join(user("dave"), open_class, django_capture_on_commit_callbacks)


def test_a_class_not_started_or_over_is_closed(open_class, django_capture_on_commit_callbacks):
    now, bob = timezone.now(), user("bob")
    Classroom.objects.filter(pk=open_class.pk).update(starts_at=now + timedelta(hours=1))
    with pytest.raises(ClassClosed, match="has not started"):
        join(bob, open_class, django_capture_on_commit_callbacks)
    Classroom.objects.filter(pk=open_class.pk).update(starts_at=now - timedelta(hours=2), ends_at=now)
    with pytest.raises(ClassClosed, match="is over"):
        join(bob, open_class, django_capture_on_commit_callbacks)


def test_a_code_expires_and_runs_out_of_uses(open_class, django_capture_on_commit_callbacks):
    Classroom.objects.filter(pk=open_class.pk).update(join_code_max_uses=1)
    join(user("bob"), open_class, django_capture_on_commit_callbacks)
    with pytest.raises(LimitReached, match="used the most times"):
        join(user("carol"), open_class, django_capture_on_commit_callbacks)
    Classroom.objects.filter(pk=open_class.pk).update(join_code_expires_at=timezone.now(), join_code_max_uses=None)
    with pytest.raises(ClassClosed, match="expired"):
        join(user("dave"), open_class, django_capture_on_commit_callbacks)


def test_the_organisation_quota_is_shared_by_its_classes(open_class, django_capture_on_commit_callbacks):
    org = Organisation.objects.create(name="Centre", quota=1)
    Classroom.objects.filter(pk=open_class.pk).update(organisation=org)
    open_class.refresh_from_db()
    join(user("bob"), open_class, django_capture_on_commit_callbacks)
    with pytest.raises(LimitReached, match="1 of its 1 sandboxes"):
        join(user("carol"), open_class, django_capture_on_commit_callbacks)


def test_the_roster_and_the_end_of_the_class(open_class, teacher, django_capture_on_commit_callbacks):
    bob = user("bob")
    session, _ = join(bob, open_class, django_capture_on_commit_callbacks, display_name="Bob")
    actions.raise_hand(user=bob, session=session, raised=True)
    [entry] = actions.roster(classroom=open_class)
    assert entry["learner"] == "Bob" and entry["session"] == session.id
    assert entry["step"] == 1 and entry["hand_raised"] and entry["stuck"]

    assert actions.end_classroom(classroom=open_class, user=teacher) == 1
    session.refresh_from_db()
    assert session.state == Session.State.ENDED and session.reason == "the class ended"
    assert hosts.driver_for("fake://lab1").list_objects() == []
    with pytest.raises(ClassClosed):
        join(user("carol"), open_class, django_capture_on_commit_callbacks)


def test_the_api_creates_lists_and_hides_classes(teacher, lab, alice):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(username='teacher')}")
    now = timezone.now()
    created = client.post("/api/classrooms/", {
        "title": "Swarm day", "lab": lab, "seats": 30,
        "starts_at": (now - timedelta(minutes=5)).isoformat(), "ends_at": (now + timedelta(hours=3)).isoformat(),
    }, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) >= {"id", "title", "lab", "seats", "starts_at", "ends_at", "join_code", "invite_url", "learners"}
    assert body["lab"] == "hello" and body["learners"] == 0
    assert body["invite_url"].startswith("http://testserver/join/")
    assert [c["id"] for c in client.get("/api/classrooms/").json()] == [body["id"]]

    learner = APIClient()
    learner.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(username='alice')}")
    assert learner.get(f"/api/classrooms/{body['id']}/").status_code == 404
    assert learner.get(f"/api/classrooms/{body['id']}/roster/").status_code == 404
    refused = learner.post("/api/classrooms/", {"title": "x", "lab": lab, "seats": 1,
                                                "starts_at": now.isoformat(),
                                                "ends_at": (now + timedelta(hours=1)).isoformat()}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


def test_a_class_about_to_start_is_warmed_and_a_learner_gets_a_warm_session(teacher, lab, django_capture_on_commit_callbacks):
    from playground.classrooms.models import WarmSession
    from playground.sessions.models import Instance

    now = timezone.now()
    classroom = actions.create_classroom(user=teacher, title="Soon", lab=lab, seats=2,
                                         starts_at=now + timedelta(minutes=5), ends_at=now + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.warm_classes() == {classroom.id: 2}
    warm = set(WarmSession.objects.values_list("session_id", flat=True))
    assert len(warm) == 2
    assert actions.warm_counts(classroom) == {"ready": 2, "warming": 2, "wanted": 2}
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.warm_classes() == {classroom.id: 0}  # full already

    Classroom.objects.filter(pk=classroom.pk).update(starts_at=now - timedelta(minutes=1))
    instances_before = set(Instance.objects.values_list("id", flat=True))
    bob = user("bob")
    session, created = join(bob, classroom, django_capture_on_commit_callbacks)
    assert created and session.id in warm and session.owner == bob
    assert set(Instance.objects.values_list("id", flat=True)) == instances_before  # nothing was created
    assert WarmSession.objects.count() == 1

    actions.end_classroom(classroom=classroom, user=teacher)
    assert WarmSession.objects.count() == 0
    assert not Session.objects.filter(state__in=Session.LIVE_STATES).exists()
    assert hosts.driver_for("fake://lab1").list_objects() == []


def test_warm_sessions_left_after_the_start_window_are_removed(teacher, lab, settings, django_capture_on_commit_callbacks):
    from playground.classrooms.models import WarmSession

    now = timezone.now()
    classroom = warmed_class(teacher, lab, django_capture_on_commit_callbacks, seats=1,
                             starts_at=now + timedelta(minutes=1), ends_at=now + timedelta(hours=1))
    # The class started a while ago: nothing new is made, and once the window
    # (30 s after the start here) closes the unclaimed session goes.
    Classroom.objects.filter(pk=classroom.pk).update(starts_at=now - timedelta(seconds=20))
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.warm_classes() == {}
    settings.PLAYGROUND_CLASS_WARM_WINDOW = 30
    with django_capture_on_commit_callbacks(execute=True):
        actions.warm_classes()
    assert WarmSession.objects.count() == 1
    Classroom.objects.filter(pk=classroom.pk).update(starts_at=now - timedelta(seconds=40))
    with django_capture_on_commit_callbacks(execute=True):
        actions.warm_classes()
    assert WarmSession.objects.count() == 0
    assert hosts.driver_for("fake://lab1").list_objects() == []


def test_messages_and_extra_time_reach_the_learners_sessions(open_class, teacher, monkeypatch,
                                                             django_capture_on_commit_callbacks):
    from playground.sessions import actions as session_actions

    told = []
    monkeypatch.setattr(session_actions, "tell_session", lambda **kw: told.append(kw))
    session, _ = join(user("bob"), open_class, django_capture_on_commit_callbacks)
    assert actions.broadcast(classroom=open_class, text="  Break until 10:30  ", user=teacher) == 1
    assert told == [{"session_id": session.id, "text": "Break until 10:30", "sender": "teacher"}]

    before = Session.objects.get(id=session.id).expires_at
    assert actions.give_time(classroom=open_class, minutes=15, user=teacher, session_id=session.id) == 1
    assert Session.objects.get(id=session.id).expires_at - before == timedelta(minutes=15)
    with pytest.raises(NotFoundError):
        actions.give_time(classroom=open_class, minutes=15, user=teacher, session_id="not-a-session")


def _admin_form_data(page) -> dict:
    """What the admin's change form would post back unchanged: its fields and
    its inlines' management forms."""
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if hasattr(value, "pk"):
            value = value.pk
        if hasattr(value, "__iter__") and not isinstance(value, str):  # instructors
            data[name] = [getattr(v, "pk", v) for v in value]
        elif hasattr(value, "isoformat"):
            data[name + "_0"], data[name + "_1"] = value.date().isoformat(), value.time().isoformat()
        elif value is not None:
            data[name] = value
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management.initial.get(name, 0)
    return data


def test_an_operators_change_in_the_admin_retimes_the_warm_pool(teacher, lab, client, django_user_model,
                                                                 django_capture_on_commit_callbacks):
    from playground.classrooms.models import WarmSession

    now = timezone.now()
    classroom = warmed_class(teacher, lab, django_capture_on_commit_callbacks, seats=2,
                             starts_at=now + timedelta(minutes=5), ends_at=now + timedelta(hours=3))
    client.force_login(django_user_model.objects.create_superuser("ada", password="x" * 12))
    url = f"/admin/classrooms/classroom/{classroom.pk}/change/"
    data = _admin_form_data(client.get(url))
    # Moved to tomorrow: the sessions warmed for today's start go at once,
    # not when the periodic task next looks.
    later = timezone.localtime(now + timedelta(days=1))
    data["starts_at_0"], data["starts_at_1"] = later.date().isoformat(), later.time().replace(microsecond=0).isoformat()
    ends = later + timedelta(hours=2)
    data["ends_at_0"], data["ends_at_1"] = ends.date().isoformat(), ends.time().replace(microsecond=0).isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(url, data)
    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    classroom.refresh_from_db()
    assert classroom.starts_at > now + timedelta(hours=20)
    assert WarmSession.objects.count() == 0
    assert not Session.objects.filter(state__in=Session.LIVE_STATES).exists()
