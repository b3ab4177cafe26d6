"""The concurrency tier: races that two requests or jobs run at once, on
PostgreSQL, where they are real (SQLite runs one writer at a time, so there
they cannot happen). Each race test lets two threads, each on a connection of
its own, call the use cases at once (a barrier releases them together), many
rounds over, and asserts the invariant the conditional update or lock keeps.
The lab host is the in-memory fake (the database is what is under test); the
whole-stack smoke run uses the real engine.

`make test` runs this tier in a pytest run of its own with DATABASE_URL set to
the project's PostgreSQL (scripts/postgres.sh), and leaves it out of its main
run (-m "not concurrency"). Collected on any other database, its tests are
skipped with the reason (a skip CI refuses: tests/conftest.py)."""
from __future__ import annotations

import os

import pytest
from django.db import connection

from tests.unit.conftest import web_layer_with_fakes  # noqa: F401 - autouse: fake lab host, eager jobs

ON_POSTGRES = "the concurrency tier needs PostgreSQL: run it with DATABASE_URL=postgres://... " \
              "(`make test` runs it on the project's cluster, scripts/postgres.sh, in a second pytest run)"


@pytest.hookimpl(tryfirst=True)  # the mark must be there before -m selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/races/" in str(item.fspath):
            item.add_marker(pytest.mark.concurrency)
            if connection.vendor != "postgresql":
                item.add_marker(pytest.mark.skip(reason=ON_POSTGRES))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """A test database of this run's own, so two runs on one cluster (CI and an
    engineer) never drop each other's."""
    from django.conf import settings

    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_playground_races_{os.getpid()}"


@pytest.fixture(autouse=True)
def channel_layer_in_memory(settings) -> None:
    """Session events stay in this process (the shared Redis is others')."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.PLAYGROUND_HOST_CAPACITY = 1000  # rounds add up; capacity is not under test
