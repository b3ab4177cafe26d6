"""The web tier refuses what is not the caller's, foreign pages, oversized
bodies and floods, with docs/api.md's codes. (The terminal WebSocket's 4404, foreign
Origin, 1009 and 4429 are proven in tests/integration/test_terminal.py.)"""
from __future__ import annotations

import pytest
import requests

from tests.security.conftest import MAX_FILE_BYTES, open_shell

pytestmark = [pytest.mark.engine, pytest.mark.stack]


def test_someone_elses_ids_are_404_on_every_endpoint(stack, mallory, neighbour):
    sessions = f"{stack.url}/api/sessions/{neighbour.sid}/"
    instance = f"{sessions}instances/{neighbour.iid}/"
    attempts = [
        mallory.get(sessions, timeout=10),
        mallory.post(sessions + "extend/", timeout=10),
        mallory.post(sessions + "instances/", json={}, timeout=10),
        mallory.post(instance + "exec/", json={"command": "id"}, timeout=10),
        mallory.get(instance + "files/", params={"path": "/etc/hostname"}, timeout=10),
        mallory.put(instance + "files/", params={"path": "/root/x"}, data=b"x", timeout=10),
        mallory.delete(instance, timeout=10),
        mallory.delete(sessions, timeout=10),
    ]
    for answer in attempts:
        assert answer.status_code == 404, (answer.request.method, answer.request.url, answer.text)
        assert answer.json()["error"]["code"] == "not_found"
    assert neighbour.instance()["state"] == "running"
    assert neighbour.run("echo untouched")[1].strip() == "untouched"


def test_oversized_bodies_are_refused(attacker):
    answer = attacker.client.put(attacker.url + "files/", params={"path": "/root/big"},
                                 data=b"x" * (MAX_FILE_BYTES + 1), timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid", answer.text
    answer = attacker.client.post(attacker.url + "exec/", json={"command": "x" * (2 * 1024 * 1024)}, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid", answer.text


def test_a_foreign_page_cannot_use_a_learners_cookie(stack):
    browser = requests.Session()
    browser.get(stack.url + "/", timeout=10)  # a guest identity and a CSRF cookie
    token = browser.cookies.get("csrftoken")
    assert token
    forged = browser.post(stack.url + "/api/sessions/", json={}, timeout=10,
                          headers={"X-CSRFToken": token, "Origin": "http://evil.example",
                                   "Referer": "http://evil.example/"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "forbidden", forged.text
    no_token = browser.post(stack.url + "/api/sessions/", json={}, timeout=10,
                            headers={"Origin": stack.url})
    assert no_token.status_code == 403


def test_a_session_creation_flood_gets_429_with_retry_after(strict_stack):
    flooder = strict_stack.client("flooder")
    answers = [flooder.post(strict_stack.url + "/api/sessions/", json={}, timeout=30) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert int(answers[-1].headers["Retry-After"]) >= 1


def test_an_exec_flood_gets_429_with_retry_after(strict_stack):
    shell = open_shell(strict_stack, strict_stack.client("exec-flooder"))  # one exec already
    answers = [shell.client.post(shell.url + "exec/", json={"command": "true"}, timeout=30) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert int(answers[-1].headers["Retry-After"]) >= 1


def test_the_logs_hold_an_audit_trail_and_no_secret(stack, mallory, neighbour):
    logs = "".join(stack.log(name) for name in ("web", "worker", "beat"))
    assert "session.started by=victim#" in logs and f"session={neighbour.sid}" in logs
    secrets_in_use = [*stack.tokens.values(), (stack.workdir / "secret_key").read_text().strip()]
    assert len(secrets_in_use) >= 3
    for secret in secrets_in_use:
        assert secret not in logs
