"""/metrics on the real stack: each metric read after doing what moves it.
The worker (pool fills, failed starts), beat (host health, queued jobs) and
the web process (API errors, terminals, class joins) each see part; one
scrape of the web process shows all of it."""
from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta

import pytest
import requests
from websockets.sync.client import connect

from tests.integration.conftest import _purge, labelled, nothing_left, wait_instance
from tests.stack import ENGINE, Stack, wait_for
from tests.unit.labs_helpers import write_lab
from tests.unit.metrics_helpers import dashboard_metrics, samples, total, value

pytestmark = [pytest.mark.engine, pytest.mark.stack]


@pytest.fixture(scope="module")
def metered(tmp_path_factory, engine):
    workdir = tmp_path_factory.mktemp("metrics")
    gone = f"unix://{workdir}/no-engine.sock"  # a lab host that never answers
    running = Stack(workdir, redis_db=20, env={
        "PLAYGROUND_LAB_HOSTS": f"{ENGINE},{gone}",
        "PLAYGROUND_POOL_IMAGES": "shell=1,docker=1",
        "PLAYGROUND_POOL_SECONDS": "1",
        # An image the lab host does not have: its pooled instance fails to
        # start (once: then it waits out the back-off), as a session of it does.
        "PLAYGROUND_IMAGE_DOCKER": "playground-no-such-image:latest",
        "PLAYGROUND_POOL_BACKOFF_SECONDS": "3600",
    }).start()
    running.gone = gone
    try:
        yield running
        end_what_was_started(running)
        wait_for(lambda: only_the_pool_left(running, engine), timeout=30,
                 what="the reconciler to remove what the failed starts left")
    finally:
        running.stop()  # no filler may refill what is drained below
        try:
            running.manage("drain_pool")
            wait_for(lambda: nothing_left(engine, running.deployment), timeout=30,
                     what="nothing labelled to remain once the pool is drained")
        finally:
            _purge(engine, running.deployment)


PEOPLE = """
import io, json
from django.core.management import call_command

def token(*args):
    out = io.StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue().strip()

call_command("import_labs", {lab!r}, stdout=io.StringIO())
print(json.dumps({{"alice": token("alice"), "bob": token("bob"), "carol": token("carol"),
                  "teacher": token("--instructor", "teacher")}}))
"""


def meet_the_people(stack, lab) -> None:
    """Learners' tokens, an instructor's and a lab, in one manage.py run
    (each run costs seconds)."""
    printed = stack.manage("shell", "-c", PEOPLE.format(lab=str(lab)))
    stack.tokens.update(json.loads(printed.strip().splitlines()[-1]))


def end_what_was_started(stack) -> None:
    """Classes and sessions, through the API (as end_every_session, without its manage.py run)."""
    if "teacher" in stack.tokens:
        teacher = stack.client("teacher")
        for classroom in teacher.get(f"{stack.url}/api/classrooms/", timeout=10).json():
            teacher.delete(f"{stack.url}/api/classrooms/{classroom['id']}/", timeout=120)
    for username in list(stack.tokens):
        client = stack.client(username)
        for body in client.get(f"{stack.url}/api/sessions/", timeout=10).json():
            if body["state"] in {"starting", "running"}:
                client.delete(f"{stack.url}/api/sessions/{body['id']}/", timeout=60)


def only_the_pool_left(stack, engine) -> bool:
    pooled = {row[0] for row in stack.sql(
        "SELECT id FROM play_sessions_instance WHERE session_id IS NULL AND state IN ('provisioning', 'running')")}
    objects = labelled(engine, stack.deployment)
    return (all(c["Labels"].get("playground.instance") in pooled for c in objects["containers"])
            and len(objects["networks"]) <= len(pooled))


def scrape(stack, headers: dict | None = None) -> requests.Response:
    return requests.get(stack.url + "/metrics", headers=headers, timeout=30)


def until(stack, check, what: str) -> dict:
    """The samples of the first scrape for which ``check(samples)`` holds."""
    def look():
        answer = scrape(stack)
        assert answer.status_code == 200, answer.text
        found = samples(answer.text)
        return found if check(found) else None

    return wait_for(look, timeout=60, interval=0.3, what=what)


def test_each_metric_moves_with_what_the_playground_does(metered, tmp_path):
    stack, host = metered, ENGINE
    meet_the_people(stack, write_lab(tmp_path))  # meanwhile the pool fills

    # The pools, filled by the worker on beat's rounds; the docker image is
    # missing, so its pooled instance fails to start. The host health beat keeps.
    found = until(stack, lambda f: value(f, "playground_pool_instances", host=host, image="shell",
                                         state="running") == 1
                  and value(f, "playground_provisioning_failures_total", image="docker", reason="refused",
                            kind="pool") == 1
                  and value(f, "playground_lab_host_up", host=stack.gone) == 0,
                  "the shell pool to fill, the docker one to fail and the missing host to be seen down")
    assert value(found, "playground_pool_target", host=host, image="shell") == 1
    assert value(found, "playground_lab_host_up", host=host) == 1
    assert value(found, "playground_lab_host_state", host=host, state="active") == 1
    assert (value(found, "playground_lab_host_memory_bytes", host=host) or 0) > 0
    assert total(found, "playground_metrics_source_up") == 4  # database, lab hosts, Redis, the broker
    assert total(found, "playground_live_sessions") == 0

    # A session: the pooled instance, handed over in the request.
    alice = stack.client("alice")
    created = alice.post(stack.url + "/api/sessions/", json={}, timeout=30)
    assert created.status_code == 201, created.text
    session = created.json()
    node1 = wait_instance(stack, alice, session["id"], session["instances"][0]["id"], "running", timeout=60)
    found = until(stack, lambda f: total(f, "playground_session_start_seconds_count", image="shell") == 1,
                  "the session's start to be counted")
    assert value(found, "playground_live_sessions", host=host, image="shell", state="running") == 1
    assert value(found, "playground_live_instances", host=host, image="shell", state="running") == 1
    assert total(found, "playground_session_start_seconds_bucket", image="shell", le="+Inf") == 1

    # A session of the missing image: the worker's start fails, and says so.
    bob = stack.client("bob")
    doomed = bob.post(stack.url + "/api/sessions/", json={"image": "docker"}, timeout=30)
    assert doomed.status_code == 201, doomed.text
    found = until(stack, lambda f: value(f, "playground_provisioning_failures_total", image="docker",
                                         reason="refused", kind="session") == 1, "the failed start to be counted")
    assert total(found, "playground_live_sessions") == 1  # the failed one is not live

    # API errors, by code.
    before = value(found, "playground_api_errors_total", code="not_found")
    assert alice.get(f"{stack.url}/api/sessions/{'0' * 32}/", timeout=30).status_code == 404
    assert requests.get(stack.url + "/api/sessions/", timeout=30).status_code == 401
    until(stack, lambda f: value(f, "playground_api_errors_total", code="not_found") == before + 1
          and value(f, "playground_api_errors_total", code="unauthenticated") == 1, "the API errors to be counted")

    # A terminal WebSocket: open while it is, counted once opened.
    url = stack.url.replace("http://", "ws://") + node1["terminal"]
    with connect(url, additional_headers={"Authorization": f"Token {stack.token('alice')}"}, open_timeout=30):
        until(stack, lambda f: value(f, "playground_terminal_connections") == 1
              and value(f, "playground_terminal_connections_opened_total") == 1, "the open terminal to be counted")
    until(stack, lambda f: value(f, "playground_terminal_connections") == 0, "the closed terminal to be let go")

    # A learner joins a class with its code.
    now = datetime.now(UTC)
    opened = stack.client("teacher").post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": "Metrics 101", "lab": "hello", "seats": 1,
        "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()})
    assert opened.status_code == 201, opened.text
    joined = stack.client("carol").post(f"{stack.url}/api/sessions/", json={"join_code": opened.json()["join_code"]},
                                        timeout=60)
    assert joined.status_code == 201, joined.text
    until(stack, lambda f: value(f, "playground_class_joins_total", via="code") == 1, "the join to be counted")

    # Jobs wait in the broker's queue while no worker takes them (beat queues some every second).
    worker = stack.process("worker")
    worker.send_signal(signal.SIGSTOP)
    try:
        until(stack, lambda f: value(f, "playground_celery_queue_length", queue="celery") >= 2,
              "beat's jobs to wait in the queue")
    finally:
        worker.send_signal(signal.SIGCONT)

    # Not to an address nobody allowed, nor through a proxy nobody vouched for.
    refused = scrape(stack, {"X-Forwarded-For": "203.0.113.9"})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"

    # One scrape holds everything the dashboard charts.
    exported = {name for name, _ in samples(scrape(stack).text)}
    assert not dashboard_metrics() - exported, sorted(dashboard_metrics() - exported)
