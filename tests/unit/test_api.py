"""The HTTP layer: shapes, codes and throttles (fake driver, eager tasks)."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from playground.accounts.actions import create_api_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_of(db):
    def make(username: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(username=username)}")
        return client

    return make


def test_create_api_token_is_idempotent_and_can_make_instructors():
    from playground.accounts.models import Profile

    key = create_api_token(username="ines", instructor=True)
    assert create_api_token(username="ines") == key
    assert Profile.objects.get(user__username="ines").is_instructor


def test_a_session_round_trip(client_of, django_capture_on_commit_callbacks):
    alice = client_of("alice")
    with django_capture_on_commit_callbacks(execute=True):
        created = alice.post("/api/sessions/", {}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert set(body) >= {"id", "state", "created_at", "expires_at", "lab", "classroom", "instances"}
    assert body["lab"] is None and body["classroom"] is None
    [node1] = body["instances"]
    assert set(node1) >= {"id", "hostname", "ip", "image", "state", "terminal", "ports"}
    listed = alice.get("/api/sessions/").json()
    assert [s["id"] for s in listed] == [body["id"]]
    assert alice.get(f"/api/sessions/{body['id']}/").json()["state"] == "running"
    answer = alice.post(f"/api/sessions/{body['id']}/instances/{node1['id']}/exec/",
                        {"command": "echo hi"}, format="json")
    assert answer.json() == {"exit_code": 0, "output": "hi\n"}
    assert alice.delete(f"/api/sessions/{body['id']}/").status_code == 204


def test_no_credentials_is_401_in_the_error_shape():
    answer = APIClient().get("/api/sessions/")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"


def test_exec_needs_a_command(client_of, django_capture_on_commit_callbacks):
    alice = client_of("alice")
    with django_capture_on_commit_callbacks(execute=True):
        body = alice.post("/api/sessions/", {}, format="json").json()
    answer = alice.post(f"/api/sessions/{body['id']}/instances/{body['instances'][0]['id']}/exec/", {}, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"] == {"code": "invalid", "message": "command: This field is required."}


@pytest.mark.parametrize("command", [123, 1.5, True, ["ls"], {"sh": "ls"}])
def test_an_exec_command_that_is_not_text_is_invalid_and_runs_nothing(client_of, django_capture_on_commit_callbacks,
                                                                      command, monkeypatch):
    from playground.sessions import actions

    ran = []
    monkeypatch.setattr(actions, "exec_command", lambda **kwargs: ran.append(kwargs))
    alice = client_of("alice")
    with django_capture_on_commit_callbacks(execute=True):
        body = alice.post("/api/sessions/", {}, format="json").json()
    answer = alice.post(f"/api/sessions/{body['id']}/instances/{body['instances'][0]['id']}/exec/",
                        {"command": command}, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"] == {"code": "invalid", "message": "command: must be a string"}
    assert ran == []


def test_an_exec_timeout_over_the_maximum_is_invalid(client_of, django_capture_on_commit_callbacks):
    alice = client_of("alice")
    with django_capture_on_commit_callbacks(execute=True):
        body = alice.post("/api/sessions/", {}, format="json").json()
    answer = alice.post(f"/api/sessions/{body['id']}/instances/{body['instances'][0]['id']}/exec/",
                        {"command": "true", "timeout": 10**6}, format="json")
    assert answer.status_code == 400


def test_a_body_that_is_not_an_object_is_invalid(client_of):
    answer = client_of("alice").post("/api/sessions/", [1, 2], format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid"


def test_templates_labs_and_join_codes_are_refused_until_they_exist(client_of):
    answer = client_of("alice").post("/api/sessions/", {"lab": "intro"}, format="json")
    assert answer.status_code == 400
    assert "lab" in answer.json()["error"]["message"]


def test_guests_are_limited_to_three_creations_a_minute(client, settings):
    settings.PLAYGROUND_MAX_SESSIONS_GUEST = 100
    client.get("/")  # becomes a guest
    codes = [client.post("/api/sessions/", {}, content_type="application/json",
                         HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]


def test_the_landing_page_makes_a_guest_once(client, django_user_model):
    client.get("/")
    client.get("/")
    assert django_user_model.objects.filter(username__startswith="guest-").count() == 1


def test_a_cookie_post_without_csrf_is_403(client):
    client.get("/")
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    answer = strict.post("/api/sessions/", {}, content_type="application/json")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"
