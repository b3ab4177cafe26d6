"""Guests of one client address share a cap of live instances (class joins
aside); adding instances is rate limited like starting sessions; wrong join
codes and wrong passwords are counted per address (fake driver, eager tasks)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from playground.accounts.actions import create_api_token
from playground.sessions import api

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.7"


class Browser:
    """A cookie-less browser: its first page visit makes it a guest."""

    def __init__(self, capture, address: str = ADDRESS, **extra) -> None:
        self.client = Client(REMOTE_ADDR=address, **extra)
        self.capture = capture
        self.client.get("/")

    def post(self, url: str, body: dict | None = None):
        with self.capture(execute=True):
            return self.client.post(url, body or {}, content_type="application/json",
                                    HTTP_X_CSRFTOKEN=self.client.cookies["csrftoken"].value)

    def start(self):
        return self.post("/api/sessions/")

    def add(self, sid: str):
        return self.post(f"/api/sessions/{sid}/instances/")


@pytest.fixture
def cap(settings):
    settings.PLAYGROUND_GUEST_INSTANCES_PER_ADDRESS = 4


def test_guests_of_one_address_hold_at_most_the_cap_together(cap, django_capture_on_commit_callbacks):
    first = Browser(django_capture_on_commit_callbacks)
    sid = first.start().json()["id"]
    assert [first.add(sid).status_code for _ in range(2)] == [201, 201]  # 3 live
    second = Browser(django_capture_on_commit_callbacks)
    other_sid = second.start().json()["id"]  # 4 live: the cap
    refused = [second.add(other_sid), Browser(django_capture_on_commit_callbacks).start(), first.add(sid)]
    assert [r.status_code for r in refused] == [409, 409, 409]
    body = refused[0].json()["error"]
    assert body["code"] == "limit_reached" and "sign in" in body["message"]
    # Ending a session frees its instances for the address.
    with django_capture_on_commit_callbacks(execute=True):
        assert first.client.delete(f"/api/sessions/{sid}/",
                                   HTTP_X_CSRFTOKEN=first.client.cookies["csrftoken"].value).status_code == 204
    assert Browser(django_capture_on_commit_callbacks).start().status_code == 201


def test_others_are_not_counted_with_the_guests_of_an_address(cap, django_capture_on_commit_callbacks):
    for _ in range(4):
        assert Browser(django_capture_on_commit_callbacks).start().status_code == 201
    assert Browser(django_capture_on_commit_callbacks).start().status_code == 409
    # A guest elsewhere, and a signed-in user at the same address, start as usual.
    assert Browser(django_capture_on_commit_callbacks, address="203.0.113.8").start().status_code == 201
    alice = Client(REMOTE_ADDR=ADDRESS, HTTP_AUTHORIZATION=f"Token {create_api_token(username='alice')}")
    with django_capture_on_commit_callbacks(execute=True):
        answer = alice.post("/api/sessions/", {}, content_type="application/json")
    assert answer.status_code == 201


def test_a_spoofed_forwarded_for_does_not_make_a_new_address(cap, settings, django_capture_on_commit_callbacks):
    from playground.accounts.addresses import parse_networks

    settings.PLAYGROUND_TRUSTED_PROXIES = parse_networks(["127.0.0.1"])
    codes = []
    for n in range(5):  # behind the trusted proxy, each with a fresh made-up leftmost entry
        browser = Browser(django_capture_on_commit_callbacks, address="127.0.0.1",
                          HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, {ADDRESS}")
        codes.append(browser.start().status_code)
    assert codes == [201, 201, 201, 201, 409]


def test_class_joins_by_code_neither_count_nor_are_refused(cap, settings, tmp_path,
                                                           django_capture_on_commit_callbacks):
    from playground.classrooms import actions as class_actions
    from playground.labs import actions as lab_actions
    from playground.labs.loader import load_lab
    from tests.unit.labs_helpers import write_lab

    lab_actions.import_lab(lab_def=load_lab(write_lab(tmp_path)))
    create_api_token(username="teacher", instructor=True)
    from django.contrib.auth import get_user_model

    now = timezone.now()
    classroom = class_actions.create_classroom(
        user=get_user_model().objects.get(username="teacher"), title="Docker 101", lab="hello", seats=10,
        starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=2))
    for _ in range(4):
        assert Browser(django_capture_on_commit_callbacks).start().status_code == 201
    learner = Browser(django_capture_on_commit_callbacks)
    joined = learner.post("/api/sessions/", {"join_code": classroom.join_code})
    assert joined.status_code == 201
    assert learner.add(joined.json()["id"]).status_code == 201  # the class's limits, not the address's


def test_adding_instances_is_rate_limited(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(api.InstanceCreateThrottle, "THROTTLE_RATES",
                        {**api.InstanceCreateThrottle.THROTTLE_RATES, "instance_create_guest": "2/min"})
    guest = Browser(django_capture_on_commit_callbacks)
    sid = guest.start().json()["id"]
    answers = [guest.add(sid) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited" and int(answers[-1]["Retry-After"]) >= 1


@pytest.fixture
def few_failures(monkeypatch):
    from playground.accounts.throttles import AddressThrottle

    monkeypatch.setattr(AddressThrottle, "THROTTLE_RATES",
                        {**AddressThrottle.THROTTLE_RATES, "join_address": "2/min", "login_address": "2/min"})


def test_wrong_join_codes_are_counted_per_address(few_failures, django_capture_on_commit_callbacks):
    guesser = Client(REMOTE_ADDR=ADDRESS)
    guesser.get("/join/")
    token = guesser.cookies["csrftoken"].value
    codes = [guesser.post("/join/", {"code": f"WRONG{n}"}, HTTP_X_CSRFTOKEN=token).status_code for n in range(3)]
    assert codes == [404, 404, 429]
    page = guesser.post("/join/", {"code": "WRONG9"}, HTTP_X_CSRFTOKEN=token)
    assert page.status_code == 429 and b"Too many attempts" in page.content and int(page["Retry-After"]) >= 1
    # The API's join by code counts the same failures (docs/api.md's JSON).
    api_answer = Browser(django_capture_on_commit_callbacks).post("/api/sessions/", {"join_code": "WRONG"})
    assert api_answer.status_code == 429 and api_answer.json()["error"]["code"] == "rate_limited"
    # Another address is not affected.
    elsewhere = Client(REMOTE_ADDR="203.0.113.8")
    elsewhere.get("/join/")
    assert elsewhere.post("/join/", {"code": "WRONG"},
                          HTTP_X_CSRFTOKEN=elsewhere.cookies["csrftoken"].value).status_code == 404


def test_wrong_passwords_are_counted_per_address(few_failures, django_user_model):
    user = django_user_model.objects.create_user("alice", password="right horse battery")
    attacker = Client(REMOTE_ADDR=ADDRESS)
    codes = [attacker.post("/accounts/login/", {"username": "alice", "password": f"guess{n}"}).status_code
             for n in range(2)]
    assert codes == [200, 200]  # the form again, with its error
    blocked = attacker.post("/accounts/login/", {"username": "alice", "password": "right horse battery"})
    assert blocked.status_code == 429 and b"Too many failed sign-ins" in blocked.content
    assert "_auth_user_id" not in attacker.session
    owner = Client(REMOTE_ADDR="203.0.113.8")
    signed_in = owner.post("/accounts/login/", {"username": "alice", "password": "right horse battery"})
    assert signed_in.status_code == 302 and owner.session["_auth_user_id"] == str(user.pk)


def test_the_admin_sign_in_counts_the_same_failures(few_failures, django_user_model):
    django_user_model.objects.create_superuser("root", password="right horse battery")
    attacker = Client(REMOTE_ADDR=ADDRESS)
    codes = [attacker.post("/admin/login/", {"username": "root", "password": f"guess{n}"}).status_code
             for n in range(3)]
    assert codes == [200, 200, 429]
    owner = Client(REMOTE_ADDR="203.0.113.8")
    assert owner.post("/admin/login/?next=/admin/", {"username": "root", "password": "right horse battery"}).status_code == 302
