"""The admin goes through the same rules as the API (issue 19): a class's
end after its start and no fewer seats than learners joined; a session is
ended (its containers removed), never deleted as a row; an instance's state is
the engine's, not edited by hand; a lab host is added only if it answers and
removed only once nothing runs there."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.utils import timezone

from playground.classrooms import actions as class_actions
from playground.classrooms.models import Classroom
from playground.sessions.models import Instance, LabHost, Session
from sandboxes import fake
from tests.unit.test_classrooms import join, lab, teacher, user  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="x" * 12)
    client.force_login(root)
    return root


def class_form(operator, classroom: Classroom | None, **changes):
    request = RequestFactory().post("/admin/")
    request.user = operator
    model_admin = admin.site._registry[Classroom]
    form_class = model_admin.get_form(request, classroom, change=classroom is not None)
    data = {"title": "Docker 101", "lab": classroom.lab_id if classroom else None, "seats": 3,
            "starts_at_0": "", "starts_at_1": "", "ends_at_0": "", "ends_at_1": "",
            "join_code": classroom.join_code if classroom else "ABCD2345", "instructors": [operator.pk]}
    now = timezone.localtime()
    for name, when in (("starts_at", now - timedelta(minutes=5)), ("ends_at", now + timedelta(hours=1))):
        when = changes.pop(name, when)
        data[f"{name}_0"], data[f"{name}_1"] = when.strftime("%Y-%m-%d"), when.strftime("%H:%M:%S")
    data.update(changes)
    return form_class(data=data, instance=classroom)


def test_the_class_form_refuses_an_end_before_the_start_and_fewer_seats_than_learners(
        operator, teacher, lab, django_capture_on_commit_callbacks):  # noqa: F811
    now = timezone.now()
    classroom = class_actions.create_classroom(user=teacher, title="Docker 101", lab=lab, seats=3,
                                               starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=2))
    join(user("ann"), classroom, django_capture_on_commit_callbacks)
    join(user("ben"), classroom, django_capture_on_commit_callbacks)

    backwards = class_form(operator, classroom, ends_at=timezone.localtime() - timedelta(hours=1))
    assert not backwards.is_valid()
    assert backwards.errors["ends_at"] == ["A class must end after it starts."]

    too_few = class_form(operator, classroom, seats=1)
    assert not too_few.is_valid()
    assert too_few.errors["seats"] == ["2 learners have joined already: keep at least 2 seats."]

    fine = class_form(operator, classroom, seats=5)
    assert fine.is_valid(), fine.errors
    classroom.refresh_from_db()
    assert classroom.seats == 3  # nothing saved by the refused forms

    class_actions.end_classroom(classroom=classroom, user=teacher)
    classroom.refresh_from_db()
    over = class_form(operator, classroom, seats=5)
    assert not over.is_valid()
    assert "has ended: it can no longer be changed" in str(over.errors)


def test_a_session_is_ended_from_the_admin_with_its_containers_never_deleted_as_a_row(operator, client, alice, start):
    session = start(user=alice)
    assert fake._host("fake://lab1").instances  # its instance's container
    page = client.get(f"/admin/play_sessions/session/{session.pk}/change/")
    assert page.status_code == 200 and b"deletelink" not in page.content
    assert client.post(f"/admin/play_sessions/session/{session.pk}/delete/").status_code == 403

    answer = client.post("/admin/play_sessions/session/", {"action": "end_sessions", "_selected_action": [session.pk]})
    assert answer.status_code == 302
    session.refresh_from_db()
    assert session.state == Session.State.ENDED and session.reason.startswith("ended by an operator")
    assert not fake._host("fake://lab1").instances

    instance = Instance.objects.get(session=session)
    assert client.post(f"/admin/play_sessions/instance/{instance.pk}/delete/").status_code == 403
    form_fields = client.get(f"/admin/play_sessions/instance/{instance.pk}/change/").context["adminform"].form.fields
    assert "state" not in form_fields and "host" not in form_fields  # shown, not editable


def test_a_lab_host_is_added_only_if_it_answers_and_removed_only_once_empty(operator, client, alice, start):
    refused = client.post("/admin/play_sessions/labhost/add/", {"url": "lab-host-3", "note": ""})
    assert refused.status_code == 200 and "is no engine address" in refused.content.decode()
    assert not LabHost.objects.filter(url="lab-host-3").exists()

    added = client.post("/admin/play_sessions/labhost/add/", {"url": "fake://lab2", "note": "rack 4"})
    assert added.status_code == 302, added.content.decode()
    assert LabHost.objects.get(url="fake://lab2").note == "rack 4"

    session = start(user=alice)
    busy = LabHost.objects.get(url=session.host)
    answer = client.post("/admin/play_sessions/labhost/", {"action": "remove", "_selected_action": [busy.pk]},
                         follow=True)
    assert "still runs 1 instance" in answer.content.decode()
    assert LabHost.objects.filter(pk=busy.pk).exists()
    assert client.post(f"/admin/play_sessions/labhost/{busy.pk}/delete/").status_code == 403
