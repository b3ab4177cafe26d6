"""Labs in the web layer: import, sessions for labs, set-up, checks and
progress (fake driver, eager tasks)."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from playground.accounts.actions import create_api_token
from playground.errors import Invalid, LimitReached, NotReady
from playground.labs import actions
from playground.labs.loader import load_lab
from playground.labs.models import Lab, LabRun, Progress
from sandboxes.fake import FakeDriver
from tests.unit.labs_helpers import MINIMAL, write_lab

pytestmark = pytest.mark.django_db

TWO_NODES = MINIMAL.replace(
    "      image: shell\n",
    "      image: shell\n    - name: web\n      image: shell\n      assets: false\n",
).replace("    check: test -f /root/hello\n", "    instance: web\n    check: test -f /root/hello\n")


@pytest.fixture
def touched(monkeypatch):
    """A fake lab host that understands ``touch /root/hello`` and ``test -f /root/hello``."""
    done: set[str] = set()
    commands: list[tuple[str, str]] = []
    plain = FakeDriver.handle_exec

    def handle_exec(self, hostname: str, command: str):
        commands.append((hostname, command))
        if "touch /root/hello" in command:
            done.add(hostname)
            return 0, b""
        if "test -f /root/hello" in command:
            return (0, b"") if hostname in done else (1, b"no /root/hello yet\n")
        if "exit 3" in command:
            return 3, b"set-up broke\n"
        return plain(self, hostname, command)

    monkeypatch.setattr(FakeDriver, "handle_exec", handle_exec)
    return commands


@pytest.fixture
def hello(tmp_path) -> Lab:
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path)))
    return Lab.objects.get(slug="hello")


def start_lab(user, lab, capture):
    with capture(execute=True):
        return actions.start_lab(user=user, slug=lab.slug)


# -- import ---------------------------------------------------------------------------------------

def test_importing_twice_changes_nothing_the_second_time(tmp_path):
    lab_def = load_lab(write_lab(tmp_path))
    assert actions.import_lab(lab_def=lab_def).status == "created"
    first = Lab.objects.get(slug="hello")
    again = actions.import_lab(lab_def=lab_def)
    assert (again.status, again.changes) == ("unchanged", [])
    assert Lab.objects.get(slug="hello").updated_at == first.updated_at


def test_an_import_updates_in_place_reports_changes_and_keeps_progress(tmp_path, alice):
    folder = write_lab(tmp_path)
    actions.import_lab(lab_def=load_lab(folder))
    lab = Lab.objects.get(slug="hello")
    Progress.objects.create(user=alice, lab=lab, completed=[1, 2])
    (folder / "lab.yaml").write_text(MINIMAL.replace("title: Hello", "title: Hello again").replace(
        "  - title: Look around\n    text: step2.md\n", ""))
    (folder / "step1.md").write_text("New text.\n")
    result = actions.import_lab(lab_def=load_lab(folder))
    assert result.status == "updated"
    assert "title" in result.changes and "step 1 text" in result.changes and "step(s) 2 removed" in result.changes
    updated = Lab.objects.get(slug="hello")
    assert updated.pk == lab.pk and updated.title == "Hello again"
    assert list(updated.steps.values_list("number", "text")) == [(1, "New text.\n")]
    assert Progress.objects.get(user=alice, lab=lab).completed == [1]


def test_the_import_command_reports_and_refuses_invalid_labs(tmp_path, capsys):
    from django.core.management import CommandError, call_command

    write_lab(tmp_path / "labs", name="one")
    write_lab(tmp_path / "labs", name="two")
    call_command("import_labs", str(tmp_path / "labs"))
    assert capsys.readouterr().out.splitlines() == ["one: created: 2 steps", "two: created: 2 steps"]
    call_command("import_labs", str(tmp_path / "labs"))
    assert capsys.readouterr().out.splitlines() == ["one: unchanged", "two: unchanged"]
    (tmp_path / "labs" / "two" / "lab.yaml").write_text(MINIMAL.replace("duration: 5", "duration: soon"))
    with pytest.raises(CommandError, match="nothing imported"):
        call_command("import_labs", str(tmp_path / "labs"))
    assert "two/lab.yaml:3: duration: expected integer" in capsys.readouterr().err


# -- sessions for labs --------------------------------------------------------------------------

def test_a_lab_session_has_the_lab_s_named_instances_and_copies_assets(tmp_path, alice, touched,
                                                                      django_capture_on_commit_callbacks):
    folder = write_lab(tmp_path, TWO_NODES + "setup:\n  script: echo ready\n", {"assets/notes.txt": "hi\n"})
    actions.import_lab(lab_def=load_lab(folder))
    session = start_lab(alice, Lab.objects.get(slug="hello"), django_capture_on_commit_callbacks)
    assert list(session.instances.values_list("hostname", "state")) == [("node1", "running"), ("web", "running")]
    run = LabRun.objects.get(session=session)
    assert run.setup_state == "done", run.setup_output
    node1 = FakeDriver(url="fake://lab1", deployment="test-unit")
    instances = {i.hostname: i for i in session.instances.all()}
    assert node1.get_file(instances["node1"].driver_state, "/root/notes.txt") == b"hi\n"
    with pytest.raises(Exception):  # noqa: B017 - assets: false
        node1.get_file(instances["web"].driver_state, "/root/notes.txt")
    assert ("node1", "cd /root 2>/dev/null; exec bash -c 'echo ready'") in touched


def test_a_failing_set_up_is_recorded_with_its_output(tmp_path, alice, touched, django_capture_on_commit_callbacks):
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path, MINIMAL + "setup:\n  script: exit 3\n")))
    session = start_lab(alice, Lab.objects.get(slug="hello"), django_capture_on_commit_callbacks)
    run = LabRun.objects.get(session=session)
    assert run.setup_state == "failed"
    assert "set-up broke" in run.setup_output and "exited with 3" in run.setup_output


def test_a_lab_with_more_instances_than_a_session_may_have_is_refused(tmp_path, alice, settings):
    settings.PLAYGROUND_MAX_INSTANCES = 1
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path, TWO_NODES)))
    with pytest.raises(LimitReached, match="needs 2 instances"):
        actions.start_lab(user=alice, slug="hello")


def test_an_unknown_or_draft_lab_cannot_be_started(tmp_path, alice):
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path)), slug="draft-hello", draft=True)
    for slug in ("nope", "draft-hello"):
        with pytest.raises(Invalid, match="Unknown lab"):
            actions.start_lab(user=alice, slug=slug)


# -- checks and progress --------------------------------------------------------------------------

def test_a_check_fails_then_passes_once_the_step_is_done(alice, hello, touched, django_capture_on_commit_callbacks):
    session = start_lab(alice, hello, django_capture_on_commit_callbacks)
    failed = actions.check_step(user=alice, session=session, number=1)
    assert (failed.passed, failed.output, failed.hint) == (False, "no /root/hello yet\n", "Use `touch /root/hello`.")
    assert failed.progress["current"] == 1 and failed.progress["checks_failed"] == 1
    actions.run_solution(session=session, number=1)
    passed = actions.check_step(user=alice, session=session, number=1)
    assert (passed.passed, passed.hint) == (True, "")
    assert passed.progress["completed"] == [1] and passed.progress["current"] == 2
    done = actions.check_step(user=alice, session=session, number=2)  # no check: done when asked
    assert done.passed and done.progress["finished"]
    assert Progress.objects.get(user=alice, lab=hello).finished_at is not None


def test_later_steps_are_locked_until_the_earlier_ones_pass(alice, hello, touched, django_capture_on_commit_callbacks):
    session = start_lab(alice, hello, django_capture_on_commit_callbacks)
    with pytest.raises(Invalid, match="finish step 1 first"):
        actions.check_step(user=alice, session=session, number=2)
    with pytest.raises(Invalid, match="no step 3"):
        actions.check_step(user=alice, session=session, number=3)


def test_checks_wait_for_the_set_up(alice, hello, touched):
    session = actions.start_lab(user=alice, slug="hello")  # on-commit work not run: set-up pending
    LabRun.objects.filter(session=session).update(setup_state="running")
    with pytest.raises(NotReady, match="still being set up"):
        actions.check_step(user=alice, session=session, number=1)


def test_progress_survives_a_new_session(alice, hello, touched, django_capture_on_commit_callbacks):
    from playground.sessions.actions import end_session

    first = start_lab(alice, hello, django_capture_on_commit_callbacks)
    actions.run_solution(session=first, number=1)
    assert actions.check_step(user=alice, session=first, number=1).passed
    end_session(session=first)
    second = start_lab(alice, hello, django_capture_on_commit_callbacks)
    assert actions.progress_of(user=alice, lab=hello)["current"] == 2
    assert actions.check_step(user=alice, session=second, number=2).progress["finished"]


# -- the HTTP API ---------------------------------------------------------------------------------------

@pytest.fixture
def api():
    def make(username: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(username=username)}")
        return client

    return make


def test_the_catalogue_lists_published_labs_and_filters_them(tmp_path, api):
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path)))
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path, MINIMAL.replace("title: Hello", "title: Other").replace(
        "difficulty: beginner", "difficulty: advanced").replace("[basics]", "[docker]"), name="other")))
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path)), slug="hidden", draft=True)
    alice = api("alice")
    listed = alice.get("/api/labs/").json()
    assert listed == [
        {"slug": "hello", "title": "Hello", "summary": "Say hello.", "duration": 5, "difficulty": "beginner",
         "tags": ["basics"], "steps": 2},
        {"slug": "other", "title": "Other", "summary": "Say hello.", "duration": 5, "difficulty": "advanced",
         "tags": ["docker"], "steps": 2},
    ]
    assert [lab["slug"] for lab in alice.get("/api/labs/?tag=docker").json()] == ["other"]
    assert [lab["slug"] for lab in alice.get("/api/labs/?difficulty=beginner").json()] == ["hello"]
    assert [lab["slug"] for lab in alice.get("/api/labs/?q=oth").json()] == ["other"]
    assert alice.get("/api/labs/hidden/").json()["error"]["code"] == "not_found"


def test_a_lab_through_the_api(api, hello, touched, django_capture_on_commit_callbacks):
    alice = api("alice")
    detail = alice.get("/api/labs/hello/").json()
    assert detail["steps"][0]["title"] == "Write a file"
    assert '<pre class="lab-code" data-run="node1"><code class="language-bash">touch /root/hello' in detail["steps"][0]["text"]
    assert detail["progress"]["current"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        created = alice.post("/api/sessions/", {"lab": "hello"}, format="json")
    assert created.status_code == 201, created.json()
    session = created.json()
    assert session["lab"] == "hello"
    assert [i["hostname"] for i in session["instances"]] == ["node1"]
    assert alice.get(f"/api/sessions/{session['id']}/lab/").json()["setup"]["state"] == "none"
    failed = alice.post(f"/api/sessions/{session['id']}/check/", {"step": 1}, format="json").json()
    assert failed["passed"] is False and "<code>touch /root/hello</code>" in failed["hint"]
    node1 = session["instances"][0]["id"]
    alice.post(f"/api/sessions/{session['id']}/instances/{node1}/exec/", {"command": "touch /root/hello"}, format="json")
    passed = alice.post(f"/api/sessions/{session['id']}/check/", {"step": 1}, format="json").json()
    assert passed["passed"] is True and passed["progress"]["completed"] == [1]
    assert alice.get("/api/labs/hello/").json()["progress"]["completed"] == [1]
    assert alice.delete("/api/labs/hello/progress/").status_code == 204
    assert alice.get("/api/labs/hello/").json()["progress"]["completed"] == []


def test_api_errors_of_labs_have_the_error_shape(api, hello, django_capture_on_commit_callbacks):
    alice, bob = api("alice"), api("bob")
    assert alice.post("/api/sessions/", {"lab": "nope"}, format="json").json()["error"]["code"] == "invalid"
    assert alice.post("/api/sessions/", {"lab": "hello", "image": "shell"}, format="json").status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        plain = alice.post("/api/sessions/", {}, format="json").json()
    answer = alice.post(f"/api/sessions/{plain['id']}/check/", {"step": 1}, format="json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid")
    assert alice.post(f"/api/sessions/{plain['id']}/check/", {"step": "one"}, format="json").status_code == 400
    assert bob.post(f"/api/sessions/{plain['id']}/check/", {"step": 1}, format="json").status_code == 404
    assert APIClient().get("/api/labs/").status_code == 401


def test_a_lab_may_start_from_a_template_and_an_unknown_one_is_refused(tmp_path, alice):
    on_template = MINIMAL.replace("  instances:\n    - name: node1\n      image: shell\n", "  template: swarm-1m1w\n")
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path, on_template)))
    session = actions.start_lab(user=alice, slug="hello")  # on-commit provisioning left out
    assert list(session.instances.values_list("hostname", flat=True)) == ["manager1", "worker1"]
    assert session.lab_run.lab.slug == "hello"
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path, on_template.replace("swarm-1m1w", "nope"), name="other")))
    with pytest.raises(Invalid, match="template 'nope'"):
        actions.start_lab(user=alice, slug="other")


def test_a_set_up_for_all_instances_runs_on_each(tmp_path, alice, touched, django_capture_on_commit_callbacks):
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path, TWO_NODES + "setup:\n  instance: all\n  script: echo ready\n")))
    session = start_lab(alice, Lab.objects.get(slug="hello"), django_capture_on_commit_callbacks)
    run = LabRun.objects.get(session=session)
    assert run.setup_state == "done", run.setup_output
    assert {host for host, command in touched if "echo ready" in command} == {"node1", "web"}
    assert "[node1]" in run.setup_output and "[web]" in run.setup_output
