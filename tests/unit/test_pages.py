"""The server-rendered pages: who sees what (fake driver, eager tasks)."""
from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.django_db


def session_data(page) -> dict:
    match = re.search(r'<script id="session-data" type="application/json">(.*?)</script>', page.content.decode(), re.DOTALL)
    return json.loads(match.group(1))


def test_the_landing_page_makes_a_guest_and_offers_start(client):
    page = client.get("/")
    assert page.status_code == 200
    assert b'id="start"' in page.content
    assert b"build/landing.js" in page.content
    assert "csrftoken" in page.cookies
    assert client.get("/api/sessions/").status_code == 200  # the guest is signed in


def test_the_landing_page_lists_the_visitors_live_sessions(client, alice, start):
    client.force_login(alice)
    session = start(user=alice)
    page = client.get("/")
    assert f'href="/sessions/{session.id}/"'.encode() in page.content
    assert b"node1" in page.content


def test_the_owner_gets_the_session_page_with_its_json(client, alice, start):
    client.force_login(alice)
    session = start(user=alice)
    page = client.get(f"/sessions/{session.id}/")
    assert page.status_code == 200
    assert b"build/session.js" in page.content
    data = session_data(page)
    assert data["id"] == session.id
    assert data["instances"][0]["terminal"] == f"/ws/instances/{data['instances'][0]['id']}/terminal/"


def test_someone_elses_session_page_is_not_found(client, alice, bob, start):
    session = start(user=alice)
    client.force_login(bob)
    assert client.get(f"/sessions/{session.id}/").status_code == 404
    assert client.get("/sessions/nosuchsession/").status_code == 404


def test_an_anonymous_visitor_gets_no_session_page(client, alice, start):
    session = start(user=alice)
    assert client.get(f"/sessions/{session.id}/").status_code == 404


def test_an_ended_session_still_has_a_page_that_says_so(client, alice, start):
    from playground.sessions import actions

    client.force_login(alice)
    session = start(user=alice)
    actions.end_session(session=session)
    page = client.get(f"/sessions/{session.id}/")
    assert page.status_code == 200
    assert session_data(page)["state"] == "ended"


def test_without_guests_an_anonymous_visitor_is_asked_to_sign_in(client, settings):
    settings.PLAYGROUND_ALLOW_GUESTS = False
    page = client.get("/")
    assert b'id="start"' not in page.content
    assert b'href="/accounts/login/?next=/"' in page.content
    assert client.get("/accounts/login/").status_code == 200
