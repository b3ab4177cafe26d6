"""The audit log (logger ``playground.audit``) records session life cycles,
instance changes and admin actions, and never a credential."""
from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from playground.accounts.actions import create_api_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def audit(caplog):
    caplog.set_level(logging.INFO, logger="playground.audit")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "playground.audit"]

    return lines


def test_a_session_life_cycle_is_audited_without_the_token(audit, django_capture_on_commit_callbacks):
    key = create_api_token(username="alice")
    alice = APIClient()
    alice.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    with django_capture_on_commit_callbacks(execute=True):
        session = alice.post("/api/sessions/", {}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        node2 = alice.post(f"/api/sessions/{session['id']}/instances/", {}, format="json").json()
    alice.delete(f"/api/sessions/{session['id']}/instances/{node2['id']}/")
    alice.delete(f"/api/sessions/{session['id']}/")

    events = [line.split()[0] for line in audit()]
    assert events == ["session.started", "instance.added", "instance.removed", "session.ended"]
    assert all(" by=alice#" in line and f"session={session['id']}" in line for line in audit())
    assert not any(key in line for line in audit())


def test_an_expired_session_is_audited(audit, alice, start):
    from datetime import timedelta

    from django.utils import timezone

    from playground.sessions import actions
    from playground.sessions.models import Session

    session = start(user=alice)
    Session.objects.filter(id=session.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    actions.expire_due_sessions()
    assert any(line.startswith("session.expired by=alice#") and session.id in line for line in audit())


def test_admin_actions_are_audited(audit, admin_client, alice):
    answer = admin_client.post(f"/admin/auth/user/{alice.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    [line] = [line for line in audit() if line.startswith("admin.")]
    assert line.startswith("admin.deleted by=admin#")
    assert f"object=auth.user:{alice.pk}" in line and "name=alice" in line
