"""Use cases about people: guests, API tokens."""
from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model, login
from django.db import transaction
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from .models import Profile

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
    Profile.objects.create(user=user, is_guest=True, display_name="Guest")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return user


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
