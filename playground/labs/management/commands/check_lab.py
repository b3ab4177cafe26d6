"""manage.py check_lab PATH: try a lab folder (or a KillerCoda scenario folder)
for real before importing it.

Validates the folder, imports it as a draft under a slug of its own, starts a
real session of it through the same actions a learner's session goes through
(on the configured lab hosts), waits for its set-up, then for each step runs
the check (which should fail: the step is not done yet), the solution, and the
check again (which must pass). Prints one line per step, ends the session,
removes the draft, and exits non-zero when any step did not pass.

The Celery tasks run in this process, so no worker is needed; the lab hosts
and Redis of the settings are.
"""
from __future__ import annotations

import secrets
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from playground.celery import app as celery_app
from playground.errors import PlaygroundError
from playground.labs import actions, killercoda
from playground.labs.loader import LabInvalid
from playground.labs.models import Lab, LabRun
from playground.sessions import actions as session_actions
from sandboxes.base import DriverError


class Command(BaseCommand):
    help = "Validate a lab folder, then run its set-up, and each step's solution and check, in a real session."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", metavar="PATH")
        parser.add_argument("--user", default="lab-checker", help="who owns the session (created if missing)")
        parser.add_argument("--keep", action="store_true", help="leave the session running, to look around")

    def handle(self, *args, path: str, user: str, keep: bool, **options) -> None:
        try:
            # A lab folder, or a KillerCoda scenario folder (its warnings first).
            loaded = killercoda.load_folder(path)
        except LabInvalid as exc:
            for problem in [*getattr(exc, "warnings", []), *exc.problems]:
                self.stderr.write(str(problem))
            raise CommandError(f"{path}: {len(exc.problems)} problem(s)") from None
        for warning in loaded.warnings:
            self.stderr.write(str(warning))
        lab_def = loaded.lab
        self.stdout.write(f"{lab_def.slug}: valid, {len(lab_def.steps)} step(s)")
        celery_app.conf.task_always_eager = True
        owner, _ = get_user_model().objects.get_or_create(username=user)
        slug = f"check-{secrets.token_hex(4)}-{lab_def.slug}"[:64]
        actions.import_lab(lab_def=lab_def, slug=slug, draft=True)
        lab = Lab.objects.get(slug=slug)
        session = None
        failed = 0
        try:
            started = time.monotonic()
            try:
                session = actions.start_lab_session(user=owner, lab=lab)
            except (PlaygroundError, DriverError) as exc:
                raise CommandError(f"could not start a session of the lab: {exc.message}") from None
            failed += self._setup(session, started)
            for step in lab.steps.order_by("number"):
                if failed:
                    self.stdout.write(f"  step {step.number} {step.title!r}: skipped (steps are done in order)")
                    continue
                failed += self._step(owner, session, step)
        finally:
            if session is not None and not keep:
                session.refresh_from_db()
                if session.is_live:
                    session_actions.end_session(session=session, reason="check_lab is done")
            if keep and session is not None:
                self.stdout.write(f"session {session.id} kept running (owner {user}); the draft lab {slug} too")
            else:
                lab.delete()
        if failed:
            raise CommandError(f"{lab_def.slug}: {failed} problem(s)")
        self.stdout.write(self.style.SUCCESS(f"{lab_def.slug}: every step passed"))

    def _setup(self, session, started: float) -> int:
        # Eager tasks ran the set-up already; a worker elsewhere may still be at it.
        while True:
            run = LabRun.objects.get(session=session)
            if run.setup_state not in (LabRun.Setup.PENDING, LabRun.Setup.RUNNING):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        if run.setup_state == LabRun.Setup.FAILED:
            self.stdout.write(self.style.ERROR(f"  set-up FAILED ({elapsed:.1f} s)"))
            self.stdout.write(_indent(run.setup_output))
            return 1
        state = "done" if run.setup_state == LabRun.Setup.DONE else "none"
        self.stdout.write(f"  set-up {state}, instances running ({elapsed:.1f} s)")
        return 0

    def _step(self, owner, session, step) -> int:
        started = time.monotonic()
        label = f"  step {step.number} {step.title!r}"
        try:
            if not step.check_script:
                actions.run_solution(session=session, number=step.number)
                actions.check_step(user=owner, session=session, number=step.number)
                self.stdout.write(f"{label}: no check ({time.monotonic() - started:.1f} s)")
                return 0
            before = actions.run_on_step_instance(session=session, step=step, script=step.check_script)
            solution = actions.run_solution(session=session, number=step.number)
            result = actions.check_step(user=owner, session=session, number=step.number)
        except (PlaygroundError, DriverError) as exc:
            self.stdout.write(self.style.ERROR(f"{label}: FAIL ({exc.message})"))
            return 1
        elapsed = time.monotonic() - started
        if not result.passed:
            self.stdout.write(self.style.ERROR(f"{label}: FAIL ({elapsed:.1f} s)"))
            if solution is not None:
                self.stdout.write(f"    solution exited with {solution.exit_code}:")
                self.stdout.write(_indent(solution.output.decode("utf-8", "replace"), "      "))
            self.stdout.write("    check said:")
            self.stdout.write(_indent(result.output, "      "))
            return 1
        note = ""
        if before.exit_code == 0:
            note = " (warning: the check passed before the solution ran; is it too weak?)"
        self.stdout.write(self.style.SUCCESS(f"{label}: PASS ({elapsed:.1f} s){note}"))
        return 0


def _indent(text: str, prefix: str = "    ") -> str:
    lines = (text or "(no output)").rstrip("\n").splitlines() or ["(no output)"]
    return "\n".join(prefix + line for line in lines[-40:])
