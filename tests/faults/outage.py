"""What a learner's client meets while a part the playground needs is down,
and after it returns: shared by the Redis and the database fault tests."""
from __future__ import annotations

import time
from collections.abc import Callable

import requests

from tests.integration.conftest import wait_instance
from tests.stack import wait_for

CONTRACT_SECONDS = 5.0  # docs/api.md: 503 unavailable is answered within 5 s


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def assert_unavailable(calls: dict[str, Callable[[], requests.Response]], *, part: str, fault: str,
                       measured) -> None:
    """Each call answers 503 ``unavailable`` naming ``part``, with Retry-After, within the contract's 5 s."""
    for what, call in calls.items():
        answer, took = timed(call)
        assert answer.status_code == 503, (what, answer.text)
        assert answer.json()["error"]["code"] == "unavailable", what
        assert part in answer.json()["error"]["message"], what
        assert int(answer.headers["Retry-After"]) > 0
        assert took < CONTRACT_SECONDS, (what, took)
        measured(fault, f"{what}: 503 unavailable, answered in", took)


def assert_healthz_names(stack, down: list[str]) -> dict:
    health, took = timed(lambda: requests.get(stack.url + "/healthz", timeout=30))
    assert health.status_code == 503 and took < CONTRACT_SECONDS, (health.text, took)
    assert health.json()["down"] == down
    return health.json()


def a_session_runs_again(stack, client) -> None:
    """/healthz is ok again and a new session starts and runs (nothing restarted by hand)."""
    wait_for(lambda: requests.get(stack.url + "/healthz", timeout=10).status_code == 200, timeout=60,
             what="/healthz to be ok again")
    started = wait_for(lambda: (lambda a: a if a.status_code == 201 else None)(  # noqa: PLC3002 - the response, kept only when it is a 201
        client.post(stack.url + "/api/sessions/", json={}, timeout=30)), timeout=60, what="a session to start")
    body = started.json()
    wait_instance(stack, client, body["id"], body["instances"][0]["id"], "running", timeout=60)
