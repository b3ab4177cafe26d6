"""Exec is rate limited per user, harder for guests (fake driver, eager tasks)."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from playground.accounts.actions import create_api_token
from playground.sessions import api

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(monkeypatch):
    monkeypatch.setattr(api.ExecThrottle, "THROTTLE_RATES",
                        {**api.ExecThrottle.THROTTLE_RATES, "exec_user": "3/min", "exec_guest": "1/min"})


def _exec_codes(client, n: int, django_capture_on_commit_callbacks, **extra) -> list:
    with django_capture_on_commit_callbacks(execute=True):
        session = client.post("/api/sessions/", {}, format="json", **extra).json()
    url = f"/api/sessions/{session['id']}/instances/{session['instances'][0]['id']}/exec/"
    answers = [client.post(url, {"command": "true"}, format="json", **extra) for _ in range(n)]
    return answers


def test_a_user_over_the_exec_rate_gets_429_with_retry_after(rates, django_capture_on_commit_callbacks):
    alice = APIClient()
    alice.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(username='alice')}")
    answers = _exec_codes(alice, 4, django_capture_on_commit_callbacks)
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert int(answers[-1]["Retry-After"]) >= 1


def test_guests_get_a_harder_exec_rate(rates, client, django_capture_on_commit_callbacks):
    client.get("/")  # becomes a guest
    guest = APIClient()
    guest.cookies = client.cookies
    csrf = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}
    answers = _exec_codes(guest, 2, django_capture_on_commit_callbacks, **csrf)
    assert [a.status_code for a in answers] == [200, 429]


def test_new_guests_from_one_address_share_a_creation_rate(monkeypatch, settings, django_capture_on_commit_callbacks):
    from django.test import Client

    monkeypatch.setattr(api.GuestAddressThrottle, "THROTTLE_RATES",
                        {**api.GuestAddressThrottle.THROTTLE_RATES, "session_create_guest_address": "2/min"})
    codes = []
    for _ in range(3):  # each time a fresh browser: a new guest identity
        browser = Client(REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="198.51.100.1")
        browser.get("/")
        with django_capture_on_commit_callbacks(execute=True):
            codes.append(browser.post("/api/sessions/", {}, content_type="application/json",
                                      HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value).status_code)
    assert codes == [201, 201, 429]
    other = Client(REMOTE_ADDR="203.0.113.8")
    other.get("/")
    assert other.post("/api/sessions/", {}, content_type="application/json",
                      HTTP_X_CSRFTOKEN=other.cookies["csrftoken"].value).status_code == 201
