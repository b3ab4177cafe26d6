"""Anonymous capacity is bounded: guests from one client address (fresh
cookies each, a made-up leftmost X-Forwarded-For each) hold at most
PLAYGROUND_GUEST_INSTANCES_PER_ADDRESS live instances together; a signed-in
user at that address and a class join by code are not refused. Real stack
(Daphne, Celery, Redis database 2 of its own), real engine."""
from __future__ import annotations

import pytest
import requests

from tests.integration.conftest import wait_instance
from tests.security.conftest import _running
from tests.stack import ROOT, wait_for

pytestmark = pytest.mark.stack

CAP = 4
CLIENT = "203.0.113.7"  # the address the trusted proxy (loopback) says it saw
SET_UP = f"""
from django.core.management import call_command
from playground.accounts.actions import create_api_token
call_command("import_labs", "{ROOT / 'labs' / 'what-is-a-container'}", verbosity=0)
print(create_api_token(username="alice"), create_api_token(username="teacher", instructor=True))
"""


@pytest.fixture(scope="module")
def guests_stack(tmp_path_factory, engine):
    for running in _running(tmp_path_factory, engine, "security-guests", 2, {
        "PLAYGROUND_GUEST_INSTANCES_PER_ADDRESS": str(CAP),
        "PLAYGROUND_TRUSTED_PROXIES": "127.0.0.1",
    }):
        wait_for(lambda: requests.get(running.url + "/healthz", timeout=5).status_code == 200,  # noqa: B023 - called at once, in this iteration
                 timeout=30, what="the lab host to be seen healthy")
        yield running


class Guest:
    """A browser without cookies, behind the proxy, that writes a leftmost
    X-Forwarded-For of its own choosing each time."""

    def __init__(self, stack, n: int) -> None:
        self.stack, self.http = stack, requests.Session()
        self.http.headers["X-Forwarded-For"] = f"198.51.100.{n}, {CLIENT}"
        self.http.get(stack.url + "/", timeout=10).raise_for_status()  # a guest identity and a CSRF cookie
        self.http.headers["X-CSRFToken"] = self.http.cookies["csrftoken"]
        self.sessions: list[str] = []

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        answer = self.http.post(self.stack.url + path, json=body or {}, timeout=60)
        if path == "/api/sessions/" and answer.status_code in (200, 201):
            self.sessions.append(answer.json()["id"])
        return answer

    def end(self) -> None:
        for sid in self.sessions:
            self.http.delete(f"{self.stack.url}/api/sessions/{sid}/", timeout=60)


def test_guests_of_one_address_are_capped_and_their_neighbours_are_not(guests_stack):
    stack = guests_stack
    guests = [Guest(stack, n) for n in range(4)]
    try:
        first, second, third, learner = guests
        started = first.post("/api/sessions/")
        assert started.status_code == 201, started.text
        sid = started.json()["id"]
        assert [first.post(f"/api/sessions/{sid}/instances/").status_code for _ in range(2)] == [201, 201]
        assert second.post("/api/sessions/").status_code == 201  # 4 live instances: the cap
        refused = [second.post(f"/api/sessions/{second.sessions[0]}/instances/"), third.post("/api/sessions/")]
        for answer in refused:
            assert answer.status_code == 409, answer.text
            error = answer.json()["error"]
            assert error["code"] == "limit_reached" and "sign in" in error["message"]

        # The neighbours: a signed-in user at the same address starts, and
        # runs; a guest there still joins a class by its code.
        # One manage.py run (each costs seconds): the class's lab, the users' keys.
        keys = stack.manage("shell", "-c", SET_UP).split()[-2:]  # import_labs says what it did first
        stack.tokens.update(alice=keys[0], teacher=keys[1])
        alice = stack.client("alice")
        alice.headers["X-Forwarded-For"] = f"198.51.100.99, {CLIENT}"
        started = alice.post(f"{stack.url}/api/sessions/", json={}, timeout=60)
        assert started.status_code == 201, started.text
        session = started.json()
        wait_instance(stack, alice, session["id"], session["instances"][0]["id"], "running", timeout=60)
        created = stack.client("teacher").post(f"{stack.url}/api/classrooms/", timeout=30, json={
            "title": "Behind one NAT", "lab": "what-is-a-container", "seats": 5,
            "starts_at": "2020-01-01T00:00:00+00:00", "ends_at": "2099-01-01T00:00:00+00:00"})
        assert created.status_code == 201, created.text
        joined = learner.post("/api/sessions/", {"join_code": created.json()["join_code"]})
        assert joined.status_code == 201, joined.text
        assert joined.json()["classroom"] == created.json()["id"]
    finally:
        for guest in guests:
            guest.end()
