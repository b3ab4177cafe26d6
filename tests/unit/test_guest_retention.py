"""Stale guests are deleted with their rows; a guest with a live session, a
recent one, or a signed-in user never is (fake driver, eager tasks)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from playground.accounts.actions import delete_stale_guests
from playground.accounts.models import Profile
from playground.sessions import actions
from playground.sessions.models import Instance, Session

pytestmark = pytest.mark.django_db
User = get_user_model()


def make_guest(name: str, *, days_old: float):
    user = User.objects.create_user(name)
    User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=days_old))
    Profile.objects.create(user=user, is_guest=True)
    return user


def ended(session: Session, *, days_ago: float) -> None:
    actions.end_session(session=session)
    Session.objects.filter(pk=session.pk).update(ended_at=timezone.now() - timedelta(days=days_ago))


def test_guests_whose_last_session_ended_long_ago_are_deleted_with_their_rows(settings, start, alice):
    settings.PLAYGROUND_GUEST_RETENTION_DAYS = 7
    gone = make_guest("guest-old", days_old=30)
    old_session = start(user=gone)
    ended(old_session, days_ago=8)
    never = make_guest("guest-never", days_old=8)
    recent = make_guest("guest-recent", days_old=30)
    ended(start(user=recent), days_ago=2)
    live = make_guest("guest-live", days_old=30)
    live_session = start(user=live)
    Session.objects.filter(pk=live_session.pk).update(created_at=timezone.now() - timedelta(days=20))
    fresh = make_guest("guest-fresh", days_old=1)
    User.objects.filter(pk=alice.pk).update(date_joined=timezone.now() - timedelta(days=400))

    assert delete_stale_guests() == 2
    left = set(User.objects.values_list("username", flat=True))
    assert left == {"alice", "guest-recent", "guest-live", "guest-fresh"}
    assert not Session.objects.filter(pk=old_session.pk).exists()
    assert not Instance.objects.filter(session_id=old_session.pk).exists()
    assert not Profile.objects.filter(user_id__in=[gone.pk, never.pk]).exists()
    assert Session.objects.get(pk=live_session.pk).is_live
    assert fresh.pk and delete_stale_guests() == 0  # safe to run twice


def test_the_beat_task_runs_the_action(settings):
    from playground.accounts import tasks
    from playground.celery import app

    make_guest("guest-old", days_old=9)
    assert tasks.delete_stale_guests.delay() is not None
    assert not User.objects.filter(username="guest-old").exists()
    app.loader.import_default_modules()
    app.finalize()
    names = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "playground.accounts.tasks.delete_stale_guests" in names
