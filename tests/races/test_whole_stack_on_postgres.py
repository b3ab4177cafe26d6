"""The whole playground on PostgreSQL: Daphne, a Celery worker and beat on a
database of their own on the tier's server, against the real engine. A
session starts, runs a command, gets a second instance and ends, and nothing
labelled is left on the engine."""
from __future__ import annotations

import os

import pytest

from tests import pg
from tests.integration.conftest import engine, labelled, running_stack, wait_instance  # noqa: F401 - engine: a fixture

pytestmark = [pytest.mark.engine, pytest.mark.stack]


@pytest.fixture(scope="module")
def stack_on_postgres(tmp_path_factory, engine):  # noqa: F811 - the fixture imported above
    server = os.environ.get("DATABASE_URL") if pg.is_postgres(os.environ.get("DATABASE_URL")) else pg.cluster_url()
    workdir = tmp_path_factory.mktemp("stack-on-postgres")
    stack = None
    try:
        for stack in running_stack(engine, workdir, redis_db=63, database_url=server, timeout=60):
            yield stack
    finally:
        if stack is not None:
            stack.drop_database()


def test_a_session_starts_runs_a_command_grows_and_ends_on_postgres(stack_on_postgres, engine):  # noqa: F811
    stack = stack_on_postgres
    assert stack.database and stack.env["DATABASE_URL"].startswith("postgres://")
    alice = stack.client("alice")
    api = f"{stack.url}/api/sessions/"

    started = alice.post(api, json={}, timeout=30)
    assert started.status_code == 201, started.text
    sid, node1 = started.json()["id"], started.json()["instances"][0]["id"]
    answer = alice.post(f"{api}{sid}/instances/{node1}/exec/", json={"command": "echo $((6*7))"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"exit_code": 0, "output": "42\n"}

    added = alice.post(f"{api}{sid}/instances/", json={}, timeout=30)
    assert added.status_code == 201, added.text
    wait_instance(stack, alice, sid, added.json()["id"], "running", timeout=60)

    ended = alice.delete(f"{api}{sid}/", timeout=60)
    assert ended.status_code == 204, ended.text
    # What the rows say, read from PostgreSQL itself.
    assert stack.sql("SELECT state FROM play_sessions_session WHERE id = ?", (sid,)) == [("ended",)]
    # Gone before the answer (docs/api.md); the fixture then checks nothing else is left.
    assert labelled(engine, stack.deployment)["containers"] == []
