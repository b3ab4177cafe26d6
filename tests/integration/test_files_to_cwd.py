"""PUT .../files/?name= through the real stack: with nobody in the terminal
the file lands in the shell's starting directory, /root."""
from __future__ import annotations

import pytest

from tests.integration.conftest import running_stack

pytestmark = [pytest.mark.engine, pytest.mark.stack]


@pytest.fixture(scope="module")
def files_stack(tmp_path_factory, engine):
    """A stack of this module's own (Redis database 45)."""
    yield from running_stack(engine, tmp_path_factory.mktemp("files-stack"), redis_db=45)


def test_a_named_file_lands_in_the_shells_directory(files_stack):
    alice = files_stack.client("alice")
    created = alice.post(f"{files_stack.url}/api/sessions/", json={}, timeout=30)
    assert created.status_code == 201, created.text
    session = created.json()
    base = f"{files_stack.url}/api/sessions/{session['id']}/instances/{session['instances'][0]['id']}"

    # Waits for the provisioning instance, like exec does.
    put = alice.put(base + "/files/?name=dropped.txt", data=b"dropped\n", timeout=60)
    assert put.status_code == 201, put.text
    assert put.json() == {"path": "/root/dropped.txt", "size": 8}
    seen = alice.post(base + "/exec/", json={"command": "cat /root/dropped.txt"}, timeout=30).json()
    assert seen == {"exit_code": 0, "output": "dropped\n"}

    for bad in ("../escape.txt", "", ".."):
        refused = alice.put(base + f"/files/?name={bad}", data=b"x", timeout=30)
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["error"]["code"] == "invalid"
    assert alice.delete(f"{files_stack.url}/api/sessions/{session['id']}/", timeout=60).status_code == 204
