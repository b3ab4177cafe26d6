"""Redis stopped under a running playground (it is the broker, the cache and
the channel layer): API calls answer 503 `unavailable` with Retry-After within
5 s, /healthz names the broker and not the lab hosts, an open terminal keeps
working, and everything comes back by itself when Redis does."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.outage import (
    CONTRACT_SECONDS,
    a_session_runs_again,
    assert_healthz_names,
    assert_unavailable,
    timed,
)
from tests.integration.conftest import running_stack, wait_instance
from tests.integration.test_terminal import Terminal, token
from tests.stack import free_port, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]


class PrivateRedis:
    """A redis-server of the test's own, to stop and start (never the shared one)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--databases", "4", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, timeout=10, what="the private Redis to answer")
        return self

    def answers(self) -> bool:
        done = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, check=False)
        return done.stdout.strip() == "PONG"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="module")
def redis(tmp_path_factory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory, redis):
    yield from running_stack(engine, tmp_path_factory.mktemp("redis-down"), redis_db=1, redis=redis.url)


def test_with_redis_down_the_api_says_unavailable_and_open_terminals_keep_working(stack, redis, measured):
    alice = stack.client("alice")
    session = alice.post(stack.url + "/api/sessions/", json={}, timeout=30).json()
    node = wait_instance(stack, alice, session["id"], session["instances"][0]["id"], "running", timeout=60)
    terminal = Terminal(stack, node["id"], token=token(stack, alice))
    terminal.event("status", state="running")

    redis.stop()
    try:
        assert_unavailable({
            "start a session": lambda: alice.post(stack.url + "/api/sessions/", json={}, timeout=30),
            "exec": lambda: alice.post(f"{stack.url}/api/sessions/{session['id']}/instances/{node['id']}/exec/",
                                       json={"command": "true"}, timeout=30),
        }, part="Redis", fault="Redis stopped", measured=measured)
        # What needs only the database still answers.
        listed, took = timed(lambda: alice.get(stack.url + "/api/sessions/", timeout=30))
        assert listed.status_code == 200 and took < CONTRACT_SECONDS
        health = assert_healthz_names(stack, ["broker"])
        assert set(health["lab_hosts"].values()) == {"ok"}

        mark = len(terminal.output)
        terminal.type("echo still-$((40+2))\r")
        terminal.expect(rb"still-42", after=mark, timeout=30)
    finally:
        redis.start()
    back_at = time.monotonic()

    # Back by itself: new sessions start (the worker reconnected), and the open
    # terminal hears its session's events again.
    a_session_runs_again(stack, alice)
    measured("Redis back", "a new session starts and runs, after", time.monotonic() - back_at)

    def extended() -> bool:
        alice.post(f"{stack.url}/api/sessions/{session['id']}/extend/", timeout=30)
        expires = alice.get(f"{stack.url}/api/sessions/{session['id']}/", timeout=30).json()["expires_at"]
        terminal.read(timeout=1.0)
        return any(e.get("type") == "expiry" and e.get("expires_at") == expires for e in terminal.events)

    wait_for(extended, timeout=30, interval=1.0, what="the terminal to hear the session's expiry again")
    measured("Redis back", "the open terminal hears its session's events again, after", time.monotonic() - back_at)
    terminal.close()
