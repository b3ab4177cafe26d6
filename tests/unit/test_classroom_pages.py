"""The instructor's class pages: "My classes", the new-class and edit forms,
who may use them, the errors beside the fields, ended classes, the warm pool
after a change, and the audit log (Django test client, fake driver)."""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from playground.accounts.actions import create_api_token
from playground.classrooms import actions
from playground.classrooms.models import Classroom, Learner, Organisation, WarmSession
from playground.labs import actions as lab_actions
from playground.labs.loader import load_lab
from playground.sessions import hosts
from playground.sessions.models import Session
from tests.unit.labs_helpers import MINIMAL, write_lab

pytestmark = pytest.mark.django_db


@pytest.fixture
def labs(tmp_path):
    lab_actions.import_lab(lab_def=load_lab(write_lab(tmp_path)))
    lab_actions.import_lab(lab_def=load_lab(write_lab(tmp_path, MINIMAL.replace("title: Hello", "title: Swarms"),
                                                      name="swarms")))
    return "hello"


@pytest.fixture
def teacher():
    create_api_token(username="teacher", instructor=True)
    return get_user_model().objects.get(username="teacher")


def instructor(name: str):
    create_api_token(username=name, instructor=True)
    return get_user_model().objects.get(username=name)


@pytest.fixture
def teaching(client, teacher):
    client.force_login(teacher)
    return client


@pytest.fixture
def audit(caplog):
    caplog.set_level(logging.INFO, logger="playground.audit")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "playground.audit"]


def local(when: datetime) -> str:
    """As a datetime-local input sends it, in the server's timezone."""
    return timezone.localtime(when).strftime("%Y-%m-%dT%H:%M")


def form_data(**changes) -> dict:
    now = timezone.now()
    data = {"title": "Docker 101", "lab": "hello", "seats": "12",
            "starts_at": local(now + timedelta(hours=1)), "ends_at": local(now + timedelta(hours=3)),
            "join_code_expires_at": "", "join_code_max_uses": "", "invite_expires_at": "",
            "invite_max_uses": "", "max_instances": "", "session_lifetime": ""}
    data.update({k: str(v) for k, v in changes.items()})
    return data


def make_class(teacher, *, starts_in=timedelta(minutes=-1), lasts=timedelta(hours=2), **kwargs) -> Classroom:
    now = timezone.now()
    return actions.create_classroom(user=teacher, title=kwargs.pop("title", "Live"), lab=kwargs.pop("lab", "hello"),
                                    seats=kwargs.pop("seats", 3), starts_at=now + starts_in,
                                    ends_at=now + starts_in + lasts, **kwargs)


def errors_of(page) -> dict[str, list[str]]:
    return {name: list(errors) for name, errors in page.context["form"].errors.items()}


# -- who may see what -------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/classrooms/", "/classrooms/new/", "/classrooms/abc/edit/"])
def test_anonymous_visitors_and_guests_are_sent_to_sign_in(client, guest, path):
    page = client.get(path)
    assert page.status_code == 302 and page["Location"] == f"/accounts/login/?next={path}"
    client.force_login(guest)
    page = client.get(path)
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/")


def test_a_signed_in_learner_sees_no_classes_and_may_not_create_one(client, alice, labs):
    client.force_login(alice)
    page = client.get("/classrooms/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "You teach no class yet" in text and "New class" not in text
    refused = client.get("/classrooms/new/")
    assert refused.status_code == 403 and "Only instructors may create classes" in refused.content.decode()
    assert client.post("/classrooms/new/", form_data()).status_code == 403
    assert not Classroom.objects.exists()


def test_only_the_class_instructors_may_edit_it_and_unknown_ids_are_404(client, teacher, labs):
    classroom = make_class(teacher)
    client.force_login(instructor("other"))
    refused = client.get(f"/classrooms/{classroom.id}/edit/")
    assert refused.status_code == 404  # someone else's class is as unknown as a missing one
    assert client.post(f"/classrooms/{classroom.id}/edit/", form_data(title="Mine now")).status_code == 404
    assert Classroom.objects.get(pk=classroom.pk).title == "Live"
    assert client.get("/classrooms/no-such-class/edit/").status_code == 404
    # Their own list does not show it.
    assert classroom.id not in client.get("/classrooms/").content.decode()


# -- the list ---------------------------------------------------------------------------------

def test_my_classes_lists_what_i_teach_with_state_seats_code_and_invite_link(teaching, teacher, labs,
                                                                           django_capture_on_commit_callbacks):
    running = make_class(teacher, title="Running now", seats=4)
    coming = make_class(teacher, title="Next week", starts_in=timedelta(days=7))
    over = make_class(teacher, title="Yesterday")
    Classroom.objects.filter(pk=over.pk).update(ended_at=timezone.now())
    someone_elses = make_class(instructor("t2"), title="Not mine")
    with django_capture_on_commit_callbacks(execute=True):
        actions.join(user=get_user_model().objects.create_user("bob"), code=running.join_code)

    page = teaching.get("/classrooms/")
    assert page.status_code == 200
    rows = page.context["rows"]
    assert [(r["classroom"].title, r["state"]) for r in rows] == [
        ("Running now", "open"), ("Next week", "upcoming"), ("Yesterday", "ended")]
    text = page.content.decode()
    assert "New class" in text and someone_elses.title not in text
    assert "1 / 4" in text and running.join_code in text and coming.join_code in text
    assert f"http://testserver/join/{running.invite_token}/" in text
    assert f'href="/classrooms/{running.id}/"' in text
    assert f'href="/classrooms/{coming.id}/edit/"' in text and f'href="/classrooms/{over.id}/edit/"' not in text


def test_the_landing_page_and_the_dashboard_link_to_my_classes(teaching, teacher, labs, client, alice):
    assert 'href="/classrooms/"' in teaching.get("/").content.decode()
    classroom = make_class(teacher)
    dashboard = teaching.get(f"/classrooms/{classroom.id}/").content.decode()
    assert 'href="/classrooms/"' in dashboard and f'href="/classrooms/{classroom.id}/edit/"' in dashboard
    client.force_login(alice)
    assert 'href="/classrooms/"' not in client.get("/").content.decode()


# -- creating ---------------------------------------------------------------------------------

def test_the_form_offers_the_published_labs_and_creates_a_class_that_i_teach(teaching, teacher, labs, audit):
    form = teaching.get("/classrooms/new/")
    assert form.status_code == 200
    text = form.content.decode()
    assert 'type="datetime-local"' in text and 'value="hello"' in text and 'value="swarms"' in text
    assert 'name="organisation"' not in text  # the teacher belongs to none

    start = timezone.now().replace(second=0, microsecond=0) + timedelta(hours=1)
    answer = teaching.post("/classrooms/new/", form_data(
        title="Swarm day", lab="swarms", seats=20, starts_at=local(start), ends_at=local(start + timedelta(hours=2)),
        join_code_max_uses=25, invite_expires_at=local(start + timedelta(minutes=30)), max_instances=4,
        session_lifetime=90))
    classroom = Classroom.objects.get(title="Swarm day")
    assert answer.status_code == 302 and answer["Location"] == f"/classrooms/{classroom.id}/"
    assert list(classroom.instructors.all()) == [teacher]
    assert (classroom.lab.slug, classroom.seats, classroom.starts_at, classroom.ends_at) == (
        "swarms", 20, start, start + timedelta(hours=2))
    assert (classroom.join_code_max_uses, classroom.invite_max_uses) == (25, None)
    assert classroom.invite_expires_at == start + timedelta(minutes=30) and classroom.join_code_expires_at is None
    assert (classroom.max_instances, classroom.session_lifetime) == (4, 90 * 60)
    assert any(line.startswith("class.created by=teacher#") and f"classroom={classroom.id}" in line
               for line in audit())


def test_times_are_read_in_the_servers_timezone(teaching, labs, settings):
    settings.TIME_ZONE = "Europe/Paris"
    timezone.deactivate()
    teaching.post("/classrooms/new/", form_data(starts_at="2099-07-01T10:00", ends_at="2099-07-01T12:00"))
    classroom = Classroom.objects.get()
    assert classroom.starts_at == datetime(2099, 7, 1, 8, 0, tzinfo=UTC)
    edit = teaching.get(f"/classrooms/{classroom.id}/edit/").content.decode()
    assert 'value="2099-07-01T10:00"' in edit and "Times are in Europe/Paris" in edit


def test_wrong_fields_are_explained_beside_each_field_and_nothing_is_made(teaching, labs):
    now = timezone.now()
    page = teaching.post("/classrooms/new/", form_data(
        seats=0, starts_at=local(now + timedelta(hours=2)), ends_at=local(now + timedelta(hours=1)),
        max_instances=51, session_lifetime=0, join_code_max_uses=0,
        join_code_expires_at=local(now + timedelta(minutes=30))))
    assert page.status_code == 400
    errors = errors_of(page)
    assert errors["seats"] == ["A class needs at least one seat."]
    assert errors["ends_at"] == ["A class must end after it starts."]
    assert errors["max_instances"] == [f"Instances per learner: from 1 to {actions.CLASS_MAX_INSTANCES}."]
    assert errors["session_lifetime"] == ["A session lives from 1 minute to 7 days."]
    assert errors["join_code_max_uses"] == [
        "The join code needs at least one use (leave it blank for no maximum)."]
    assert errors["join_code_expires_at"] == [
        "The join code would expire before the class starts, so nobody could use it."]
    text = page.content.decode()
    assert 'id="ends_at-error"' in text and "A class must end after it starts." in text
    assert not Classroom.objects.exists()

    past = teaching.post("/classrooms/new/", form_data(starts_at=local(now - timedelta(hours=3)),
                                                       ends_at=local(now - timedelta(hours=1))))
    assert errors_of(past) == {"ends_at": ["This class would be over already: its end is in the past."]}
    too_many = teaching.post("/classrooms/new/", form_data(seats=actions.CLASS_MAX_SEATS + 1))
    assert errors_of(too_many) == {"seats": [f"A class has at most {actions.CLASS_MAX_SEATS} seats."]}
    bad_input = teaching.post("/classrooms/new/", form_data(title=" ", lab="nope", starts_at="tomorrow",
                                                            seats="many"))
    assert set(errors_of(bad_input)) == {"title", "lab", "starts_at", "seats"}
    assert not Classroom.objects.exists()


def test_a_draft_lab_is_not_offered(teaching, labs):
    from playground.labs.models import Lab

    Lab.objects.filter(slug="swarms").update(draft=True)
    assert 'value="swarms"' not in teaching.get("/classrooms/new/").content.decode()
    assert "lab" in errors_of(teaching.post("/classrooms/new/", form_data(lab="swarms")))


def test_an_organisation_can_be_chosen_only_among_mine(teaching, teacher, labs):
    mine = Organisation.objects.create(name="Mine")
    mine.instructors.add(teacher)
    theirs = Organisation.objects.create(name="Theirs")
    text = teaching.get("/classrooms/new/").content.decode()
    assert 'name="organisation"' in text and "Mine" in text and "Theirs" not in text
    assert "organisation" in errors_of(teaching.post("/classrooms/new/", form_data(organisation=theirs.pk)))
    teaching.post("/classrooms/new/", form_data(organisation=mine.pk))
    assert Classroom.objects.get().organisation == mine
    # The action refuses it too, whoever calls it.
    with pytest.raises(actions.ClassInvalid, match="not an instructor of Theirs"):
        make_class(teacher, organisation=theirs)


# -- editing ----------------------------------------------------------------------------------

def test_editing_shows_the_class_and_saves_the_changes(teaching, teacher, labs, audit):
    classroom = make_class(teacher, starts_in=timedelta(hours=5), max_instances=3, session_lifetime=3600)
    page = teaching.get(f"/classrooms/{classroom.id}/edit/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'value="Live"' in text and f'value="{local(classroom.starts_at)}"' in text
    assert 'name="session_lifetime" value="60"' in text and 'name="max_instances" value="3"' in text

    start = timezone.now().replace(second=0, microsecond=0) + timedelta(hours=6)
    answer = teaching.post(f"/classrooms/{classroom.id}/edit/", form_data(
        title="Live, moved", lab="swarms", seats=8, starts_at=local(start), ends_at=local(start + timedelta(hours=1)),
        invite_max_uses=8, max_instances=""))
    assert answer.status_code == 302 and answer["Location"] == f"/classrooms/{classroom.id}/"
    classroom.refresh_from_db()
    assert (classroom.title, classroom.lab.slug, classroom.seats, classroom.starts_at) == (
        "Live, moved", "swarms", 8, start)
    assert (classroom.invite_max_uses, classroom.max_instances, classroom.session_lifetime) == (8, None, None)
    [line] = [line for line in audit() if line.startswith("class.changed")]
    assert f"classroom={classroom.id}" in line and "by=teacher#" in line
    assert "fields=title,lab,seats,starts_at,ends_at,invite_max_uses,max_instances,session_lifetime" in line


def test_editing_keeps_an_organisation_an_operator_set(teaching, teacher, labs):
    classroom = make_class(teacher, starts_in=timedelta(hours=5))
    org = Organisation.objects.create(name="Centre")  # the teacher is not one of its instructors
    Classroom.objects.filter(pk=classroom.pk).update(organisation=org)
    text = teaching.get(f"/classrooms/{classroom.id}/edit/").content.decode()
    assert 'name="organisation"' in text and "Centre" in text
    data = form_data(title="Renamed", organisation=org.pk)
    assert teaching.post(f"/classrooms/{classroom.id}/edit/", data).status_code == 302
    assert Classroom.objects.get(pk=classroom.pk).organisation == org


def test_once_learners_joined_the_lab_is_fixed_and_seats_cannot_drop_below_them(
        teaching, teacher, labs, django_capture_on_commit_callbacks):
    classroom = make_class(teacher, seats=3)
    for name in ("bob", "carol"):
        with django_capture_on_commit_callbacks(execute=True):
            actions.join(user=get_user_model().objects.create_user(name), code=classroom.join_code)
    page = teaching.get(f"/classrooms/{classroom.id}/edit/")
    assert page.context["form"].fields["lab"].disabled
    data = form_data(lab="swarms", seats=1, starts_at=local(classroom.starts_at),
                     ends_at=local(classroom.ends_at))
    page = teaching.post(f"/classrooms/{classroom.id}/edit/", data)
    assert errors_of(page) == {"seats": ["2 learners have joined already: keep at least 2 seats."]}
    with pytest.raises(actions.ClassInvalid, match="its lab can no longer change"):
        actions.update_classroom(user=teacher, classroom=classroom, title="x", lab="swarms", seats=3,
                                 starts_at=classroom.starts_at, ends_at=classroom.ends_at)
    classroom.refresh_from_db()
    assert (classroom.lab.slug, classroom.seats) == ("hello", 3)


def test_an_ended_class_cannot_be_edited(teaching, teacher, labs):
    ended = make_class(teacher, title="Over")
    actions.end_classroom(classroom=ended, user=teacher)
    page = teaching.get(f"/classrooms/{ended.id}/edit/")
    assert page.status_code == 409
    assert "has ended: it can no longer be changed" in page.content.decode() and page.context["form"] is None
    answer = teaching.post(f"/classrooms/{ended.id}/edit/", form_data(title="Again"))
    assert answer.status_code == 409 and Classroom.objects.get(pk=ended.pk).title == "Over"

    # Over by its end time, without anyone ending it: the same.
    Classroom.objects.filter(pk=ended.pk).update(ended_at=None, ends_at=timezone.now() - timedelta(minutes=1))
    assert teaching.get(f"/classrooms/{ended.id}/edit/").status_code == 409


# -- the warm pool follows a change -----------------------------------------------------------

def test_moving_the_start_keeps_the_warm_pool_right(teaching, teacher, labs, settings,
                                                    django_capture_on_commit_callbacks):
    classroom = make_class(teacher, seats=2, starts_in=timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.warm_classes() == {classroom.id: 2}

    # Still within the lead: the pool stays, and waits until the new window closes.
    start = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=8)
    window_end = start + timedelta(seconds=settings.PLAYGROUND_CLASS_WARM_WINDOW)
    with django_capture_on_commit_callbacks(execute=True):
        teaching.post(f"/classrooms/{classroom.id}/edit/", form_data(
            seats=2, starts_at=local(start), ends_at=local(start + timedelta(hours=1))))
    warm = Session.objects.filter(warm__classroom=classroom)
    assert warm.count() == 2 and all(s.last_activity_at == window_end for s in warm)
    assert all(s.expires_at <= start + timedelta(hours=1) for s in warm)

    # One seat fewer: one warm session fewer.
    with django_capture_on_commit_callbacks(execute=True):
        teaching.post(f"/classrooms/{classroom.id}/edit/", form_data(
            seats=1, starts_at=local(start), ends_at=local(start + timedelta(hours=1))))
    assert WarmSession.objects.filter(classroom=classroom).count() == 1
    assert Session.objects.filter(state__in=Session.LIVE_STATES).count() == 1

    # Moved to tomorrow: out of the lead, the pool goes now; warm_classes makes it again in time.
    tomorrow = start + timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        teaching.post(f"/classrooms/{classroom.id}/edit/", form_data(
            seats=1, starts_at=local(tomorrow), ends_at=local(tomorrow + timedelta(hours=1))))
    assert not WarmSession.objects.filter(classroom=classroom).exists()
    assert not Session.objects.filter(state__in=Session.LIVE_STATES).exists()
    assert hosts.driver_for("fake://lab1").list_objects() == []
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.warm_classes() == {}
    Classroom.objects.filter(pk=classroom.pk).update(starts_at=timezone.now() + timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.warm_classes() == {classroom.id: 1}


def test_changing_the_lab_drops_the_warm_pool_of_the_old_lab(teaching, teacher, labs,
                                                            django_capture_on_commit_callbacks):
    classroom = make_class(teacher, seats=1, starts_in=timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        actions.warm_classes()
    assert WarmSession.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        teaching.post(f"/classrooms/{classroom.id}/edit/", form_data(
            lab="swarms", seats=1, starts_at=local(classroom.starts_at), ends_at=local(classroom.ends_at)))
    assert not WarmSession.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.warm_classes() == {classroom.id: 1}
    assert Session.objects.get(warm__classroom=classroom).lab_run.lab.slug == "swarms"
    assert not Learner.objects.exists()
