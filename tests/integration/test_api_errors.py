"""Every error in docs/api.md's table, provoked once through the real stack."""
from __future__ import annotations

import re

import pytest
import requests

from tests.integration.conftest import wait_instance

pytestmark = [pytest.mark.engine, pytest.mark.stack]


def error_of(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return body["error"]["code"]


def test_no_credentials_is_401(stack):
    answer = requests.get(stack.url + "/api/sessions/", timeout=10)
    assert answer.status_code == 401
    assert error_of(answer) == "unauthenticated"


def test_a_bad_token_is_401(stack):
    answer = requests.get(stack.url + "/api/sessions/", headers={"Authorization": "Token not-a-key"}, timeout=10)
    assert answer.status_code == 401
    assert error_of(answer) == "unauthenticated"


def test_malformed_json_is_400(stack, alice):
    answer = alice.post(stack.url + "/api/sessions/", data=b"{not json",
                        headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 400
    assert error_of(answer) == "invalid"


def test_an_unknown_image_is_400_and_names_the_choices(stack, alice):
    answer = alice.post(stack.url + "/api/sessions/", json={"image": "windows-95"}, timeout=10)
    assert answer.status_code == 400
    assert error_of(answer) == "invalid"
    assert "shell" in answer.json()["error"]["message"]


def test_an_unknown_field_is_400(stack, alice):
    answer = alice.post(stack.url + "/api/sessions/", json={"imgae": "shell"}, timeout=10)
    assert answer.status_code == 400
    assert "imgae" in answer.json()["error"]["message"]


def test_an_unknown_path_is_a_json_404(stack, alice):
    answer = alice.get(stack.url + "/api/nothing-here/", timeout=10)
    assert answer.status_code == 404
    assert error_of(answer) == "not_found"


def test_someone_elses_ids_are_404(stack, alice, bob, new_session):
    session = new_session(alice)
    sid, iid = session["id"], session["instances"][0]["id"]
    base = f"{stack.url}/api/sessions/{sid}"
    attempts = [
        bob.get(base + "/", timeout=10),
        bob.delete(base + "/", timeout=10),
        bob.post(base + "/extend/", timeout=10),
        bob.post(base + "/instances/", json={}, timeout=10),
        bob.delete(f"{base}/instances/{iid}/", timeout=10),
        bob.post(f"{base}/instances/{iid}/exec/", json={"command": "id"}, timeout=10),
        bob.get(f"{base}/instances/{iid}/files/?path=/etc/hostname", timeout=10),
        bob.put(f"{base}/instances/{iid}/files/?path=/tmp/x", data=b"x", timeout=10),
    ]
    for answer in attempts:
        assert answer.status_code == 404, (answer.request.method, answer.request.url, answer.text)
        assert error_of(answer) == "not_found"
    assert alice.get(base + "/", timeout=10).json()["state"] in {"starting", "running"}
    assert sid not in {s["id"] for s in bob.get(stack.url + "/api/sessions/", timeout=10).json()}


def test_ids_are_opaque(stack, alice, new_session):
    session = new_session(alice)
    assert re.fullmatch(r"[0-9a-f]{32}", session["id"])
    assert re.fullmatch(r"[0-9a-f]{32}", session["instances"][0]["id"])


def test_the_session_cap_per_user_is_409(stack, new_session):
    carol = stack.client("carol")
    new_session(carol)
    new_session(carol)
    third = carol.post(stack.url + "/api/sessions/", json={}, timeout=10)
    assert third.status_code == 409
    assert error_of(third) == "limit_reached"


def test_the_instance_cap_per_session_is_409(stack, new_session):
    dave = stack.client("dave")
    session = new_session(dave)
    url = f"{stack.url}/api/sessions/{session['id']}/instances/"
    for n in range(2, 6):
        answer = dave.post(url, json={}, timeout=10)
        assert answer.status_code == 201, answer.text
        assert answer.json()["hostname"] == f"node{n}"
    sixth = dave.post(url, json={}, timeout=10)
    assert sixth.status_code == 409
    assert error_of(sixth) == "limit_reached"


def test_exec_on_an_instance_that_is_not_running_is_409(stack, alice, new_session, engine):
    session = new_session(alice)
    node1 = wait_instance(stack, alice, session["id"], session["instances"][0]["id"], "running")
    container = next(iter(engine.containers(filters={"label": f"playground.instance={node1['id']}"})))
    engine.remove_container(container["Id"], force=True)
    answer = alice.post(f"{stack.url}/api/sessions/{session['id']}/instances/{node1['id']}/exec/",
                        json={"command": "true", "timeout": 5}, timeout=30)
    assert answer.status_code == 409
    assert error_of(answer) == "not_ready"


def test_a_cookie_request_without_csrf_token_is_403(stack):
    browser = requests.Session()
    assert browser.get(stack.url + "/", timeout=10).status_code == 200
    answer = browser.post(stack.url + "/api/sessions/", json={}, timeout=10)
    assert answer.status_code == 403
    assert error_of(answer) == "forbidden"


def test_a_guest_gets_an_identity_and_one_session(stack):
    browser = requests.Session()
    browser.get(stack.url + "/", timeout=10)
    assert browser.get(stack.url + "/api/sessions/", timeout=10).json() == []
    csrf = {"X-CSRFToken": browser.cookies["csrftoken"], "Referer": stack.url + "/"}
    first = browser.post(stack.url + "/api/sessions/", json={}, headers=csrf, timeout=30)
    assert first.status_code == 201, first.text
    try:
        second = browser.post(stack.url + "/api/sessions/", json={}, headers=csrf, timeout=30)
        assert second.status_code == 409
        assert error_of(second) == "limit_reached"
    finally:
        browser.delete(f"{stack.url}/api/sessions/{first.json()['id']}/", headers=csrf, timeout=60)


def test_the_token_decides_when_a_cookie_comes_too(stack, alice, new_session):
    session = new_session(alice)
    browser = requests.Session()
    browser.get(stack.url + "/", timeout=10)  # a guest cookie
    answer = browser.get(f"{stack.url}/api/sessions/{session['id']}/",
                         headers={"Authorization": alice.headers["Authorization"]}, timeout=10)
    assert answer.status_code == 200


def test_images_and_templates_are_listed(stack, alice):
    images = alice.get(stack.url + "/api/images/", timeout=10).json()
    assert {"name": "shell", "description": images[0]["description"]} in images
    templates = {t["name"]: t["instances"] for t in alice.get(stack.url + "/api/templates/", timeout=10).json()}
    assert templates == {"swarm-1m1w": 2, "swarm-3m2w": 5}


def test_the_openapi_schema_is_served(stack, alice):
    schema = alice.get(stack.url + "/api/schema/?format=json", timeout=30)
    assert schema.status_code == 200
    assert "/api/sessions/{sid}/instances/{iid}/exec/" in schema.json()["paths"]
