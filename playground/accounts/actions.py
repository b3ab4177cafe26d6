"""Use cases about people: guests, API tokens."""
from __future__ import annotations

import ipaddress
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from playground import audit

from .addresses import client_address
from .models import Profile

log = logging.getLogger(__name__)

User = get_user_model()


def profile_of(user) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


def is_guest(user) -> bool:
    return bool(user.is_authenticated and profile_of(user).is_guest)


@transaction.atomic
def create_guest(*, request: HttpRequest):
    """Give an anonymous browser an identity of its own (a cookie session)."""
    user = User.objects.create_user(username=f"guest-{secrets.token_hex(6)}")
    user.set_unusable_password()
    user.save(update_fields=["password"])
    Profile.objects.create(user=user, is_guest=True, display_name="Guest", address=_storable(client_address(request)))
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return user


def _storable(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None  # not an IP (a unix socket's peer): the guests of no address share one bucket


def guest_address(user, address: str | None) -> tuple[bool, str | None]:
    """Whether ``user`` is a guest, and (for a guest) the client address its
    creations count against: ``address`` when given (and noted on the guest,
    so that its live instances count there from now on), else the one noted."""
    profile = profile_of(user) if user.is_authenticated else None
    if profile is None or not profile.is_guest:
        return False, None
    if address is not None:
        stored = _storable(address)
        if stored != profile.address:
            Profile.objects.filter(pk=profile.pk).update(address=stored)
            profile.address = stored
    return True, profile.address


def lock_guests_of(address: str | None) -> list[int]:
    """Lock (until the transaction ends) the guests of one address, so that
    two creations from that address count their live instances in turn; the
    ids of those guests' users."""
    profiles = Profile.objects.select_for_update().filter(is_guest=True).order_by("pk")
    profiles = profiles.filter(address=address) if address is not None else profiles.filter(address__isnull=True)
    return [user_id for _, user_id in profiles.values_list("pk", "user_id")]


def delete_stale_guests(*, now=None) -> int:
    """Delete the guests with no live session whose last session ended
    PLAYGROUND_GUEST_RETENTION_DAYS ago (or who never had one and were made
    that long ago), with every row of theirs; returns how many."""
    from playground.sessions.models import Session  # sessions builds on accounts, not the reverse

    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.PLAYGROUND_GUEST_RETENTION_DAYS)
    recent = Q(play_sessions__state__in=Session.LIVE_STATES) | Q(play_sessions__ended_at__gte=cutoff) | Q(
        play_sessions__ended_at__isnull=True, play_sessions__created_at__gte=cutoff
    )
    stale = (User.objects.filter(profile__is_guest=True, date_joined__lt=cutoff)
             .exclude(pk__in=User.objects.filter(recent).values("pk")))
    deleted = 0
    for pk in stale.values_list("pk", flat=True).iterator():
        with transaction.atomic():
            # Checked again under the row lock: the guest may have started a session since.
            user = User.objects.select_for_update().filter(pk=pk).exclude(
                pk__in=User.objects.filter(recent).values("pk")).first()
            if user is None:
                continue
            user.delete()
            deleted += 1
    if deleted:
        log.info("deleted %d stale guest(s)", deleted)
        audit.record("guests.deleted", count=deleted, retention_days=settings.PLAYGROUND_GUEST_RETENTION_DAYS)
    return deleted


@transaction.atomic
def create_api_token(*, username: str, instructor: bool = False) -> str:
    """Return the user's API key, creating the user (and the key) if missing."""
    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    profile = profile_of(user)
    if instructor and not profile.is_instructor:
        profile.is_instructor = True
        profile.save(update_fields=["is_instructor"])
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
