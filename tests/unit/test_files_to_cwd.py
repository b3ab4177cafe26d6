"""Uploading into the shell's current directory (PUT .../files/?name=), on fakes."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from playground.accounts.actions import create_api_token
from playground.errors import Invalid
from playground.sessions import actions, hosts

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_api():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(username='alice')}")
    return client


@pytest.fixture
def node1(alice_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = alice_api.post("/api/sessions/", {}, format="json").json()
    return body["id"], body["instances"][0]["id"]


def _put(client, sid, iid, query, data=b"hello\n"):
    return client.put(f"/api/sessions/{sid}/instances/{iid}/files/?{query}", data,
                      content_type="application/octet-stream")


def _shell_in(monkeypatch, answer):
    """The fake engine answers the cwd lookup with ``answer`` (exit code, output)."""
    driver = hosts.driver_for("fake://lab1")
    original = driver.handle_exec

    def handle(hostname, command):
        return answer if "pgrep" in command else original(hostname, command)

    monkeypatch.setattr(driver, "handle_exec", handle)


@pytest.mark.parametrize("name", ["", "a/b", "/etc", "..", ".", "x\x00y", "n" * 256])
def test_a_name_that_is_not_a_plain_file_name_is_refused(name):
    with pytest.raises(Invalid, match="plain file name"):
        actions.check_file_name(name)


@pytest.mark.parametrize("name", ["notes.txt", "a..b", ".bashrc", "ünïcode file.txt"])
def test_plain_names_pass(name):
    assert actions.check_file_name(name) == name


def test_the_file_lands_in_the_shell_cwd(alice_api, node1, monkeypatch):
    _shell_in(monkeypatch, (0, b"/tmp/work"))
    sid, iid = node1
    answer = _put(alice_api, sid, iid, "name=x.txt")
    assert answer.status_code == 201, answer.content
    assert answer.json() == {"path": "/tmp/work/x.txt", "size": 6}
    got = alice_api.get(f"/api/sessions/{sid}/instances/{iid}/files/?path=/tmp/work/x.txt")
    assert got.content == b"hello\n"


def test_without_a_shell_the_file_goes_home(alice_api, node1, monkeypatch):
    _shell_in(monkeypatch, (0, b"/root"))  # what the lookup prints when it falls back
    sid, iid = node1
    assert _put(alice_api, sid, iid, "name=x.txt").json()["path"] == "/root/x.txt"
    _shell_in(monkeypatch, (1, b"pgrep: not found\n"))
    assert _put(alice_api, sid, iid, "name=y.txt").json()["path"] == "/root/y.txt"


def test_a_bad_name_is_400_invalid_before_anything_runs(alice_api, node1):
    sid, iid = node1
    [instance] = hosts.driver_for("fake://lab1").host.instances.values()
    before = dict(instance.files)
    answer = _put(alice_api, sid, iid, "name=../etc/passwd")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid"
    assert instance.files == before
    answer = _put(alice_api, sid, iid, "name=")
    assert answer.status_code == 400


def test_over_the_size_limit_is_400_with_the_limit(alice_api, node1, settings):
    settings.PLAYGROUND_MAX_FILE_BYTES = 10
    sid, iid = node1
    answer = _put(alice_api, sid, iid, "name=big.bin", b"x" * 11)
    assert answer.status_code == 400
    assert "limit of 10 bytes" in answer.json()["error"]["message"]


def test_the_session_page_passes_the_size_limit(node1, settings, client, django_user_model):
    settings.PLAYGROUND_MAX_FILE_BYTES = 12345
    client.force_login(django_user_model.objects.get(username="alice"))
    page = client.get(f"/sessions/{node1[0]}/")
    assert b'data-max-file-bytes="12345"' in page.content
    assert b'id="download-file"' in page.content
