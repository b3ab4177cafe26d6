"""Skipping to a step (issue 17): lab.yaml's ``skippable``, the rules of
"Skip to step N", the skip job (solutions, then checks, in order; skipped,
not passed), and an instructor's fast-forward of one learner or the class
(fake driver, eager tasks)."""
from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from playground.accounts.actions import create_api_token
from playground.classrooms import actions as class_actions
from playground.errors import Invalid, NotReady
from playground.labs import actions
from playground.labs.loader import LabInvalid, load_lab
from playground.labs.models import Lab, LabRun, Progress
from sandboxes.fake import FakeDriver
from tests.unit.labs_helpers import write_lab

pytestmark = pytest.mark.django_db

# Steps 1 and 2 can be skipped; step 3 has no solution; step 4 is where one lands.
SKIPPABLE = """\
title: Skips
summary: Steps one may skip.
duration: 5
difficulty: beginner
skippable: true
environment:
  instances:
    - name: node1
      image: shell
steps:
  - title: One
    text: step1.md
    check: test -f /root/one
    solution: touch /root/one
  - title: Two
    text: step2.md
    check: test -f /root/two
    solution: touch /root/two
  - title: Three
    text: step3.md
    check: test -f /root/three
  - title: Four
    text: step4.md
"""
FILES = {"step3.md": "Three.\n", "step4.md": "Four.\n"}


@pytest.fixture
def files(monkeypatch):
    """A fake lab host whose machines know ``touch /root/X`` and ``test -f
    /root/X``; ``broken`` names files whose touch seems to work but does not."""
    made: set[str] = set()
    broken: set[str] = set()
    ran: list[str] = []
    plain = FakeDriver.handle_exec

    def handle_exec(self, hostname: str, command: str):
        if touched := re.search(r"touch /root/(\w+)", command):
            ran.append(f"solution {touched[1]}")
            if touched[1] not in broken:
                made.add(touched[1])
            return 0, b""
        if tested := re.search(r"test -f /root/(\w+)", command):
            ran.append(f"check {tested[1]}")
            return (0, b"") if tested[1] in made else (1, f"no /root/{tested[1]} yet\n".encode())
        return plain(self, hostname, command)

    monkeypatch.setattr(FakeDriver, "handle_exec", handle_exec)
    return type("Files", (), {"made": made, "broken": broken, "ran": ran})


def import_skippable(tmp_path, lab_yaml: str = SKIPPABLE) -> Lab:
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path, lab_yaml, FILES, name="skips")))
    return Lab.objects.get(slug="skips")


@pytest.fixture
def skips(tmp_path) -> Lab:
    return import_skippable(tmp_path)


def start(user, lab: Lab, capture):
    with capture(execute=True):
        return actions.start_lab(user=user, slug=lab.slug)


def skip(capture, **kwargs) -> dict:
    """skip_to with its job run, as the worker would."""
    with capture(execute=True):
        return actions.skip_to(**kwargs)


# -- lab.yaml ---------------------------------------------------------------------------------

def test_skippable_is_off_by_default_set_per_lab_and_overridden_per_step(tmp_path):
    plain = load_lab(write_lab(tmp_path, SKIPPABLE.replace("skippable: true\n", ""), FILES, name="plain"))
    assert plain.skippable is False and [s.skippable for s in plain.steps] == [None] * 4
    overridden = load_lab(write_lab(tmp_path, SKIPPABLE.replace(
        "    solution: touch /root/two\n", "    solution: touch /root/two\n    skippable: false\n"), FILES))
    assert overridden.skippable is True and overridden.steps[1].skippable is False
    with pytest.raises(LabInvalid, match="skippable"):
        load_lab(write_lab(tmp_path, SKIPPABLE.replace("skippable: true", "skippable: sometimes"), FILES, name="bad"))


def test_export_writes_skippable_back_and_the_export_imports_unchanged(tmp_path, capsys):
    lab_yaml = SKIPPABLE.replace("    solution: touch /root/two\n", "    solution: touch /root/two\n    skippable: false\n")
    call_command("import_labs", str(write_lab(tmp_path / "src", lab_yaml, FILES, name="skips")))
    out = tmp_path / "git" / "skips"
    call_command("export_lab", "skips", str(out))
    document = yaml.safe_load((out / "lab.yaml").read_text())
    assert document["skippable"] is True
    assert [step.get("skippable") for step in document["steps"]] == [None, False, None, None]
    capsys.readouterr()
    call_command("import_labs", str(out))
    assert capsys.readouterr().out.splitlines() == ["skips: unchanged"]


# -- the rules ----------------------------------------------------------------------------------------

def test_a_step_that_may_not_be_skipped_or_has_no_solution_cannot_be_skipped_past(
        tmp_path, alice, files, django_capture_on_commit_callbacks):
    lab = import_skippable(tmp_path, SKIPPABLE.replace(
        "    solution: touch /root/two\n", "    solution: touch /root/two\n    skippable: false\n"))
    session = start(alice, lab, django_capture_on_commit_callbacks)
    with pytest.raises(Invalid, match="step 2 may not be skipped"):
        actions.skip_to(session=session, to=3, user=alice)
    files.made.add("two")
    Progress.objects.filter(user=alice, lab=lab).update(completed=[2])
    with pytest.raises(Invalid, match="step 3 has no solution"):
        actions.skip_to(session=session, to=4, user=alice)
    with pytest.raises(Invalid, match="no step 5"):
        actions.skip_to(session=session, to=5, user=alice)
    Progress.objects.filter(user=alice, lab=lab).update(completed=[1, 2])
    with pytest.raises(Invalid, match="Nothing to skip"):
        actions.skip_to(session=session, to=3, user=alice)
    assert files.ran == [] and LabRun.objects.get(session=session).skip_state == "none"


def test_a_lab_is_not_skippable_unless_it_says_so(tmp_path, alice, files, django_capture_on_commit_callbacks):
    lab = import_skippable(tmp_path, SKIPPABLE.replace("skippable: true\n", ""))
    session = start(alice, lab, django_capture_on_commit_callbacks)
    with pytest.raises(Invalid, match="step 1 may not be skipped"):
        actions.skip_to(session=session, to=2, user=alice)


def test_only_one_skip_runs_in_a_session_at_a_time(alice, skips, files, django_capture_on_commit_callbacks):
    from playground.labs.tasks import skip_steps

    session = start(alice, skips, django_capture_on_commit_callbacks)
    queued = actions.skip_to(session=session, to=2, user=alice)  # its on-commit queueing not run: it waits
    assert queued["state"] == "queued" and queued["to"] == 2
    with pytest.raises(NotReady, match="being skipped"):
        actions.skip_to(session=session, to=3, user=alice)
    with pytest.raises(NotReady, match="being skipped"):
        actions.check_step(user=alice, session=session, number=1)
    skip_steps.delay(session.id)
    skip_steps.delay(session.id)  # a second delivery of the same job finds nothing to claim
    assert files.ran == ["solution one", "check one"]
    assert actions.skip_state_of(LabRun.objects.get(session=session))["state"] == "done"


# -- the job ------------------------------------------------------------------------------------------

def test_skipping_runs_each_solution_then_its_check_and_marks_the_steps_skipped_not_passed(
        alice, skips, files, django_capture_on_commit_callbacks):
    session = start(alice, skips, django_capture_on_commit_callbacks)
    skip(django_capture_on_commit_callbacks, session=session, to=3, user=alice)
    assert files.ran == ["solution one", "check one", "solution two", "check two"]
    progress = actions.progress_of(user=alice, lab=skips)
    assert (progress["completed"], progress["skipped"], progress["current"]) == ([], [1, 2], 3)
    assert progress["checks_passed"] == 0
    state = actions.skip_state_of(LabRun.objects.get(session=session))
    assert state == {"state": "done", "to": 3, "by": "learner", "message": "Skipped to step 3.", "output": ""}
    # A skipped step counts as done for the next; passing it for real makes it passed.
    assert actions.check_step(user=alice, session=session, number=1).progress["completed"] == [1]
    assert actions.progress_of(user=alice, lab=skips)["skipped"] == [2]


def test_skipping_stops_at_the_first_step_whose_check_fails_with_its_output(
        alice, skips, files, django_capture_on_commit_callbacks):
    session = start(alice, skips, django_capture_on_commit_callbacks)
    files.broken.add("two")
    skip(django_capture_on_commit_callbacks, session=session, to=3, user=alice)
    state = actions.skip_state_of(LabRun.objects.get(session=session))
    assert state["state"] == "failed" and state["output"] == "no /root/two yet\n"
    assert state["message"] == "Step 2's check did not pass after its solution ran; it was not skipped."
    progress = actions.progress_of(user=alice, lab=skips)
    assert (progress["skipped"], progress["current"]) == ([1], 2)


# -- the API ------------------------------------------------------------------------------------------

def api(username: str, **kwargs) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(username=username, **kwargs)}")
    return client


def test_skip_through_the_api(skips, files, django_capture_on_commit_callbacks):
    alice, bob = api("alice"), api("bob")
    detail = alice.get("/api/labs/skips/").json()
    assert detail["skippable"] is True
    assert [s["skip_blocker"] for s in detail["steps"]] == [None, None, "step 3 has no solution",
                                                             "step 4 has no solution"]
    with django_capture_on_commit_callbacks(execute=True):
        sid = alice.post("/api/sessions/", {"lab": "skips"}, format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        answer = alice.post(f"/api/sessions/{sid}/skip/", {"step": 2}, format="json")
    assert answer.status_code == 202 and answer.json()["skip"]["state"] == "queued"
    lab = alice.get(f"/api/sessions/{sid}/lab/").json()
    assert lab["skip"]["state"] == "done" and lab["progress"]["skipped"] == [1]
    refused = alice.post(f"/api/sessions/{sid}/skip/", {"step": 4}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"] == {"code": "invalid",
                                       "message": "Cannot skip to step 4: step 3 has no solution."}
    assert bob.post(f"/api/sessions/{sid}/skip/", {"step": 3}, format="json").status_code == 404


# -- fast-forward from the class dashboard --------------------------------------------------------------

@pytest.fixture
def skip_class(skips):
    now = timezone.now()
    teacher = api("teacher", instructor=True)
    classroom = class_actions.create_classroom(
        user=get_user_model().objects.get(username="teacher"), title="Skips", lab="skips", seats=3,
        starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1))
    return classroom, teacher


def test_an_instructor_fast_forwards_one_learner_or_the_class_and_it_is_audited(
        skip_class, files, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.INFO, logger="playground.audit")
    classroom, teacher = skip_class
    learners = {}
    for name in ("grace", "linus"):
        with django_capture_on_commit_callbacks(execute=True):
            learners[name], _ = class_actions.join(user=get_user_model().objects.create_user(name),
                                                   code=classroom.join_code, display_name=name.title())
    url = f"/api/classrooms/{classroom.id}/fast-forward/"
    with django_capture_on_commit_callbacks(execute=True):
        one = teacher.post(url, {"step": 2, "session": learners["grace"].id}, format="json")
    assert one.status_code == 200 and [r["learner"] for r in one.json()["learners"]] == ["Grace"]
    roster = {e["learner"]: e for e in teacher.get(f"/api/classrooms/{classroom.id}/roster/").json()}
    assert (roster["Grace"]["skipped"], roster["Grace"]["step"]) == ([1], 2)
    assert roster["Grace"]["skip"] == {"state": "done", "to": 2, "by": "instructor", "message": "Skipped to step 2."}
    assert (roster["Linus"]["skipped"], roster["Linus"]["skip"]) == ([], None)

    # The whole class to step 4: step 3 has no solution, so each learner's result says why.
    everyone = teacher.post(url, {"step": 4}, format="json").json()["learners"]
    assert {r["learner"]: (r["queued"], r["message"]) for r in everyone} == {
        "Grace": (False, "Cannot skip to step 4: step 3 has no solution."),
        "Linus": (False, "Cannot skip to step 4: step 3 has no solution."),
    }
    with django_capture_on_commit_callbacks(execute=True):
        everyone = teacher.post(url, {"step": 3}, format="json").json()["learners"]
    assert sorted((r["learner"], r["queued"]) for r in everyone) == [("Grace", True), ("Linus", True)]
    roster = {e["learner"]: e for e in teacher.get(f"/api/classrooms/{classroom.id}/roster/").json()}
    assert roster["Grace"]["skipped"] == roster["Linus"]["skipped"] == [1, 2]
    audited = [r.getMessage() for r in caplog.records if r.getMessage().startswith("class.fast_forward")]
    assert len(audited) == 3
    assert audited[0] == f"class.fast_forward by=teacher#{get_user_model().objects.get(username='teacher').pk} " \
                         f"classroom={classroom.id} step=2 learners={learners['grace'].id} queued=1"

    # Only the class's instructors: anyone else is told there is no such class.
    outsider = api("mallory", instructor=True)
    answer = outsider.post(url, {"step": 2}, format="json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")


def test_a_skip_whose_worker_died_fails_with_the_reason(alice, skips, files, django_capture_on_commit_callbacks):
    session = start(alice, skips, django_capture_on_commit_callbacks)
    LabRun.objects.filter(session=session).update(
        skip_state="running", skip_to=2, skip_by="learner", skip_queued_at=timezone.now() - timedelta(hours=1))
    assert actions.recover_lost_skips() == {"skips_requeued": 0, "skips_failed": 1}
    state = actions.skip_state_of(LabRun.objects.get(session=session))
    assert state["state"] == "failed" and "interrupted" in state["message"]
    assert actions.recover_lost_skips() == {"skips_requeued": 0, "skips_failed": 0}
