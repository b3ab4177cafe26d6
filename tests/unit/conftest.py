"""Unit tests of the web layer: the real Django code against in-memory fake
drivers (sandboxes/fake.py), a local-memory cache, and eager Celery tasks."""
from __future__ import annotations

import pytest

from playground.celery import app as celery_app
from playground.sessions import actions, hosts


@pytest.fixture(autouse=True)
def web_layer_with_fakes(settings, monkeypatch):
    from sandboxes import fake

    settings.PLAYGROUND_DRIVER = "sandboxes.fake.FakeDriver"
    settings.PLAYGROUND_LAB_HOSTS = ["fake://lab1"]
    settings.PLAYGROUND_DEPLOYMENT = "test-unit"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.PLAYGROUND_ACTIVITY_FLUSH_SECONDS = 0
    monkeypatch.setattr(actions, "PROVISION_RETRY_DELAYS", (0.0, 0.0, 0.0))
    celery_app.conf.task_always_eager = True
    fake.reset()
    hosts.forget_drivers()
    from django.core.cache import cache

    cache.clear()
    yield
    celery_app.conf.task_always_eager = False
    hosts.forget_drivers()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob")


@pytest.fixture
def guest(django_user_model):
    from playground.accounts.models import Profile

    user = django_user_model.objects.create_user("guest-1")
    Profile.objects.create(user=user, is_guest=True)
    return user


@pytest.fixture
def start(django_capture_on_commit_callbacks):
    """start_session with its on-commit provisioning run, as the worker would."""

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return actions.start_session(**kwargs)

    return run
