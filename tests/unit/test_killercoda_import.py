"""``import_labs`` with KillerCoda scenarios and courses: the same idempotent
import as lab folders, warnings printed, nothing imported when a scenario
cannot run; and the imported lab in a session and through the API (fake
driver, eager tasks)."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from playground.accounts.actions import create_api_token
from playground.labs import actions
from playground.labs.models import Lab, LabRun
from sandboxes.fake import FakeDriver

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "killercoda"
HELLO = FIXTURES / "hello-scenario"


def test_a_scenario_imports_like_a_lab_folder_and_again_changes_nothing(capsys):
    call_command("import_labs", str(HELLO))
    assert capsys.readouterr().out.splitlines() == ["hello-scenario: created: 3 steps"]
    call_command("import_labs", str(HELLO))
    assert capsys.readouterr().out.splitlines() == ["hello-scenario: unchanged"]
    lab = Lab.objects.get(slug="hello-scenario")
    assert (lab.title, lab.source, lab.steps.count()) == ("Hello, KillerCoda", str(HELLO.resolve()), 3)


def test_warnings_are_printed_with_file_and_line_and_the_lab_is_imported(capsys):
    call_command("import_labs", str(FIXTURES / "warned-scenario"))
    output = capsys.readouterr()
    assert output.out.splitlines() == ["warned-scenario: created: 2 steps"]
    assert f"{FIXTURES / 'warned-scenario' / 'index.json'}:" in output.err
    assert len([line for line in output.err.splitlines() if ": warning: " in line]) == 14


def test_nothing_is_imported_while_a_scenario_cannot_run(capsys):
    with pytest.raises(CommandError, match="2 problem"):
        call_command("import_labs", str(HELLO), str(FIXTURES / "refused-scenario"))
    assert "a Kubernetes backend cannot run here" in capsys.readouterr().err
    assert not Lab.objects.exists()


def test_a_course_imports_each_scenario_it_lists(capsys):
    call_command("import_labs", str(FIXTURES / "course"))
    assert capsys.readouterr().out.splitlines() == [
        "course-first: created: 1 steps", "course-second: created: 1 steps", "more-third: created: 1 steps",
    ]


def test_a_session_of_the_imported_lab_gets_its_files_and_set_up(alice, django_capture_on_commit_callbacks):
    call_command("import_labs", str(HELLO), verbosity=0)
    with django_capture_on_commit_callbacks(execute=True):
        session = actions.start_lab(user=alice, slug="hello-scenario")
    run = LabRun.objects.get(session=session)
    assert run.setup_state == "done", run.setup_output
    instance = session.instances.get()
    assert (instance.hostname, instance.image) == ("node1", "docker")
    driver = FakeDriver(url="fake://lab1", deployment="test-unit")
    assert driver.get_file(instance.driver_state, "/root/solution.sh") == (HELLO / "assets/solution.sh").read_bytes()
    assert driver.get_file(instance.driver_state, "/etc/hello/conf/app.json") == b'{"answer": 42}\n'


def test_the_player_gets_the_steps_with_their_actions_rendered(alice):
    call_command("import_labs", str(HELLO), verbosity=0)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(username='alice')}")
    lab = client.get("/api/labs/hello-scenario/").json()
    assert '<pre class="lab-code" data-run="node1" data-onopen="1">' in lab["intro"]
    first = lab["steps"][0]
    assert '<code class="lab-run-inline" data-run="node1">cat ~/greeting.txt</code>' in first["text"]
    assert '<code class="lab-copy">hello.txt</code>' in first["text"]
    assert '<details class="lab-details"><summary>Solution</summary>' in first["text"]
    assert '<span class="lab-port" data-port="node1:80">' in first["text"]
    assert first["has_check"] is True and lab["steps"][2]["has_check"] is False
