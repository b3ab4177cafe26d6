"""Use cases of labs: import a lab folder, start a session for a lab, set it up
in the background, check a step, and each learner's progress.

Sessions, instances and the lab hosts are the sessions app's: everything that
touches an instance goes through ``playground.sessions.actions``.
"""
from __future__ import annotations

import base64
import logging
import posixpath
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from playground import audit, jobs
from playground.errors import (
    Invalid,
    LimitReached,
    NotFoundError,
    NotReady,
    PlaygroundError,
    SessionOver,
)
from playground.sessions import actions as session_actions
from playground.sessions import hosts
from playground.sessions.models import Instance, Session
from sandboxes.base import DriverError, ExecResult

from .loader import LabDef
from .models import Lab, LabRun, Progress, Step
from .signals import skip_changed

log = logging.getLogger(__name__)

# What a learner sees of a check's or set-up's output (the rest is cut).
MAX_SHOWN_OUTPUT = 64 * 1024


# -- import ----------------------------------------------------------------------------

@dataclass
class ImportResult:
    slug: str
    status: str
    """``created``, ``updated`` or ``unchanged``."""
    changes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        detail = f": {', '.join(self.changes)}" if self.changes else ""
        return f"{self.slug}: {self.status}{detail}"


def _lab_fields(lab_def: LabDef) -> dict:
    return {
        "title": lab_def.title,
        "summary": lab_def.summary,
        "duration": lab_def.duration,
        "difficulty": lab_def.difficulty,
        "tags": lab_def.tags,
        "intro": lab_def.intro,
        "finish": lab_def.finish,
        "environment": {
            "instances": [{"name": i.name, "image": i.image, "assets": i.assets} for i in lab_def.instances],
            "template": lab_def.template,
            "assets_path": lab_def.assets_path,
            "egress": lab_def.egress,
        },
        "assets": lab_def.assets,
        "setup": lab_def.setup,
        "setup_instance": lab_def.setup_instance,
        "setup_timeout": lab_def.setup_timeout,
        "auto_check": lab_def.auto_check,
        "skippable": lab_def.skippable,
        "source": lab_def.source,
    }


def _step_fields(step) -> dict:
    return {
        "title": step.title,
        "text": step.text,
        "instance": step.instance,
        "check_script": step.check,
        "solution": step.solution,
        "hint": step.hint,
        "timeout": step.timeout,
        "skippable": step.skippable,
    }


def import_lab(*, lab_def: LabDef, slug: str | None = None, draft: bool = False) -> ImportResult:
    """Create or update the lab in place (its id, and learners' progress on
    steps that remain, are kept). Running it twice changes nothing."""
    slug = slug or lab_def.slug
    digest = lab_def.digest()
    fields = _lab_fields(lab_def)
    with transaction.atomic():
        lab = Lab.objects.filter(slug=slug).first()
        if lab is None:
            lab = Lab.objects.create(slug=slug, draft=draft, digest=digest, **fields)
            Step.objects.bulk_create(Step(lab=lab, number=s.number, **_step_fields(s)) for s in lab_def.steps)
            return ImportResult(slug, "created", [f"{len(lab_def.steps)} steps"])
        if lab.digest == digest and lab.draft == draft and lab.source == lab_def.source:
            return ImportResult(slug, "unchanged")
        changes = [name for name, value in fields.items() if name != "source" and getattr(lab, name) != value]
        if lab.draft != draft:
            changes.append("draft" if draft else "published")
        for name, value in fields.items():
            setattr(lab, name, value)
        lab.draft, lab.digest = draft, digest
        lab.save()
        existing = {step.number: step for step in lab.steps.all()}
        for step_def in lab_def.steps:
            wanted = _step_fields(step_def)
            step = existing.pop(step_def.number, None)
            if step is None:
                Step.objects.create(lab=lab, number=step_def.number, **wanted)
                changes.append(f"step {step_def.number} added")
                continue
            differing = [name for name, value in wanted.items() if getattr(step, name) != value]
            if differing:
                for name in differing:
                    setattr(step, name, wanted[name])
                step.save()
                changes.append(f"step {step_def.number} {'/'.join(differing)}")
        if existing:
            Step.objects.filter(id__in=[s.id for s in existing.values()]).delete()
            changes.append(f"step(s) {', '.join(map(str, sorted(existing)))} removed")
            count = len(lab_def.steps)
            for progress in Progress.objects.filter(lab=lab):
                kept = [n for n in progress.completed if n <= count]
                kept_skipped = [n for n in progress.skipped if n <= count]
                if kept != progress.completed or kept_skipped != progress.skipped:
                    progress.completed, progress.skipped = kept, kept_skipped
                    progress.save(update_fields=["completed", "skipped"])
        return ImportResult(slug, "updated", changes or ["source"])


# -- the catalogue ----------------------------------------------------------------------------

def catalogue(*, query: str = "", tag: str = "", difficulty: str = ""):
    """Published labs, with their step counts, matching the filters."""
    # Ordered here: a query with an aggregate drops the model's own ordering
    # (PostgreSQL then returns any order).
    labs = Lab.objects.filter(draft=False).annotate(step_count=Count("steps")).order_by("title")
    if query:
        labs = labs.filter(Q(title__icontains=query) | Q(summary__icontains=query) | Q(tags__icontains=query))
    if difficulty:
        labs = labs.filter(difficulty=difficulty)
    if tag:
        # JSON containment is not on SQLite: filter the (small) catalogue here.
        return [lab for lab in labs if tag in lab.tags]
    return list(labs)


def lab_by_slug(*, slug: str) -> Lab:
    lab = Lab.objects.filter(slug=slug, draft=False).first()
    if lab is None:
        raise NotFoundError("No such lab.")
    return lab


# -- progress -----------------------------------------------------------------------------------

def progress_of(*, user, lab: Lab) -> dict:
    """A learner's progress in a lab: done steps (passed, or skipped: a
    skipped step counts as done for unlocking the next, but is not passed),
    the current one, checks."""
    progress = Progress.objects.filter(user=user, lab=lab).first()
    steps = lab.steps.count()
    completed = sorted(progress.completed) if progress else []
    skipped = sorted(n for n in progress.skipped if n not in completed) if progress else []
    current = next((n for n in range(1, steps + 1) if n not in completed and n not in skipped), None)
    return {
        "completed": completed,
        "skipped": skipped,
        "current": current,
        "finished": current is None and steps > 0,
        "checks_passed": progress.checks_passed if progress else 0,
        "checks_failed": progress.checks_failed if progress else 0,
        "last_check_at": progress.last_check_at if progress else None,
    }


def reset_progress(*, user, lab: Lab) -> None:
    Progress.objects.filter(user=user, lab=lab).delete()


# -- sessions for labs -----------------------------------------------------------------------------

def start_lab(*, user, slug: str, address: str | None = None) -> Session:
    """``POST /api/sessions/`` with ``"lab"``: a session with the lab's instances."""
    lab = Lab.objects.filter(slug=slug, draft=False).first()
    if lab is None:
        raise Invalid(f"Unknown lab {slug!r}.")
    return start_lab_session(user=user, lab=lab, address=address)


def start_lab_session(*, user, lab: Lab, address: str | None = None) -> Session:
    """Start the lab's environment; copying assets and the set-up script run
    in the background once the instances run. ``address``: the client's, when
    a guest starts it itself (sessions.actions.check_guest_address_cap)."""
    template = lab.environment.get("template")
    instances = lab.environment.get("instances") or []
    if template:
        offered = {item["name"] for item in session_actions.templates()}
        if template not in offered:
            raise Invalid(f"This lab needs the template {template!r}, which this playground does not offer.")
    elif len(instances) > settings.PLAYGROUND_MAX_INSTANCES:
        raise LimitReached(
            f"This lab needs {len(instances)} instances; a session may have {settings.PLAYGROUND_MAX_INSTANCES}."
        )
    needs_setup = bool(lab.setup or lab.assets)
    egress = lab.environment.get("egress") or None  # None: the image's or the installation's
    with transaction.atomic():
        if template:
            session = session_actions.start_template_session(user=user, template=template, egress=egress,
                                                             address=address)
        else:
            first, rest = instances[0], instances[1:]
            session = session_actions.start_session(
                user=user, image=first.get("image"), hostname=first["name"], egress=egress, address=address
            )
            for item in rest:
                session_actions.add_instance(session=session, image=item.get("image"), hostname=item["name"],
                                             address=address)
        LabRun.objects.create(
            session=session, lab=lab, setup_state=LabRun.Setup.PENDING if needs_setup else LabRun.Setup.NONE
        )
        Progress.objects.get_or_create(user=user, lab=lab)
        if needs_setup:
            transaction.on_commit(lambda: _queue_setup(session.id))
    log.info("lab %s started in session %s for %s", lab.slug, session.id, user)
    return session


def _queue_setup(session_id: str) -> None:
    from .tasks import set_up_lab

    jobs.enqueue(set_up_lab, session_id)


def lab_run_of(*, session: Session) -> LabRun:
    run = LabRun.objects.select_related("lab").filter(session=session).first()
    if run is None:
        raise Invalid("This session was not started for a lab.")
    return run


def script_command(script: str, *, workdir: str = "/root") -> str:
    """The ``sh -c`` text that runs a lab script with bash in ``workdir``."""
    return f"cd {shlex.quote(workdir)} 2>/dev/null; exec bash -c {shlex.quote(script)}"


def _setup_timeout(lab: Lab) -> float:
    return lab.setup_timeout or settings.PLAYGROUND_LAB_SETUP_TIMEOUT


def _shown(output: bytes) -> str:
    text = output.decode("utf-8", "replace")
    return text if len(text) <= MAX_SHOWN_OUTPUT else "[...]\n" + text[-MAX_SHOWN_OUTPUT:]


def set_up(*, session_id: str) -> None:
    """Copy the lab's assets into its instances, then run its set-up script
    (worker side). Claims the run first, so running it twice is harmless."""
    with jobs.lease(f"lab-setup:{session_id}") as mine:
        if mine:
            _set_up(session_id)


def recover_lost_setups() -> dict[str, int]:
    """Set-ups a dead worker left: one never started (its message lost) is
    queued again; one that was running fails with the reason, since its
    script may have run in part and a second run could do its work twice."""
    counts = {"requeued": 0, "failed": 0}
    for run in LabRun.objects.select_related("session").filter(
        setup_state__in=[LabRun.Setup.PENDING, LabRun.Setup.RUNNING], session__state__in=Session.LIVE_STATES
    ):
        job = f"lab-setup:{run.session_id}"
        verdict = jobs.should_requeue(job, queued_at=run.session.created_at)
        if not verdict and verdict is not None:
            continue
        if verdict and run.setup_state == LabRun.Setup.PENDING:
            _queue_setup(run.session_id)
            counts["requeued"] += 1
            continue
        failed = LabRun.objects.filter(session_id=run.session_id, setup_state=run.setup_state).update(
            setup_state=LabRun.Setup.FAILED,
            setup_output=(run.setup_output + "\n[the set-up was interrupted: the worker running it stopped. "
                          "Start the lab again for a fresh environment.]\n").lstrip("\n"),
            setup_finished_at=timezone.now(),
        )
        counts["failed"] += failed
        if failed:
            log.warning("lab set-up of session %s was interrupted; marked failed", run.session_id)
    return counts


def _set_up(session_id: str) -> None:
    claimed = LabRun.objects.filter(session_id=session_id, setup_state=LabRun.Setup.PENDING).update(
        setup_state=LabRun.Setup.RUNNING
    )
    if not claimed:
        return
    run = LabRun.objects.select_related("lab", "session").get(session_id=session_id)
    lab, session = run.lab, run.session
    timeout = _setup_timeout(lab)
    output = b""
    ok = True
    try:
        if lab.assets:
            output += _copy_assets(lab, session, timeout=timeout)
        if lab.setup:
            if lab.setup_instance == "all":
                targets = list(session.instances.filter(state__in=session_actions.LIVE_INSTANCE_STATES))
            else:
                targets = [_instance_named(session, lab.setup_instance)]
            for instance, result in _run_everywhere(targets, lab.setup, timeout=timeout):
                if len(targets) > 1:
                    output += f"[{instance.hostname}]\n".encode()
                if isinstance(result, (PlaygroundError, DriverError)):
                    ok = False
                    output += f"[set-up failed on {instance.hostname}: {result.message}]\n".encode()
                    continue
                output += result.output
                if result.exit_code != 0:
                    ok = False
                    output += f"\n[set-up script exited with {result.exit_code} on {instance.hostname}]\n".encode()
    except (PlaygroundError, DriverError) as exc:
        ok = False
        output += f"\n[set-up failed: {exc.message}]\n".encode()
    LabRun.objects.filter(session_id=session_id).update(
        setup_state=LabRun.Setup.DONE if ok else LabRun.Setup.FAILED,
        setup_output=_shown(output),
        setup_finished_at=timezone.now(),
    )
    log.info("lab %s set up in session %s: %s", lab.slug, session_id, "done" if ok else "failed")


def _run_everywhere(instances: list[Instance], script: str, *, timeout: float):
    """Run ``script`` on every instance at once; (instance, result or error) in order.

    The database work (waiting for each instance to run) stays in this
    thread; only the lab-host calls go to threads of their own."""
    ready: list[tuple[Instance, object]] = []
    for instance in instances:
        try:
            session_actions.exec_command(instance=instance, command="true", timeout=timeout)
            instance.refresh_from_db(fields=["driver_state", "state"])
            ready.append((instance, None))
        except (PlaygroundError, DriverError) as exc:
            ready.append((instance, exc))

    def run(item):
        instance, error = item
        if error is not None:
            return error
        try:
            return hosts.driver_for(instance.host).exec(instance.driver_state, script_command(script), timeout=timeout)
        except DriverError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(ready)) as pool:
        return list(zip(instances, pool.map(run, ready)))


def _copy_assets(lab: Lab, session: Session, *, timeout: float) -> bytes:
    base = lab.environment.get("assets_path") or "/root"
    wanted = {item["name"] for item in lab.environment.get("instances", []) if item.get("assets", True)}
    executables = []
    copied = 0
    for instance in session.instances.filter(state__in=session_actions.LIVE_INSTANCE_STATES):
        if wanted and instance.hostname not in wanted:
            continue
        for relative, item in sorted(lab.assets.items()):
            path = posixpath.join(base, relative)
            session_actions.put_file(instance=instance, path=path, data=base64.b64decode(item["data"]), timeout=timeout)
            if item.get("executable"):
                executables.append(path)
        if executables:
            session_actions.exec_command(
                instance=instance, command="chmod +x " + " ".join(shlex.quote(p) for p in executables), timeout=30
            )
        copied += 1
    return f"[copied {len(lab.assets)} asset file(s) into {copied} instance(s) at {base}]\n".encode()


def _instance_named(session: Session, name: str) -> Instance:
    instances = session.instances.filter(state__in=session_actions.LIVE_INSTANCE_STATES)
    instance = instances.filter(hostname=name).first() if name else instances.order_by("number").first()
    if instance is None:
        raise NotReady(f"{name or 'The instance'} is not running in this session.")
    return instance


# -- steps ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    passed: bool
    output: str
    hint: str
    """The step's hint (Markdown) when the check failed, else ""."""
    progress: dict


def _step_of(lab: Lab, number: int) -> Step:
    step = lab.steps.filter(number=number).first()
    if step is None:
        raise Invalid(f"This lab has no step {number} (it has {lab.steps.count()}).")
    return step


def run_on_step_instance(*, session: Session, step: Step, script: str, activity: bool = True) -> ExecResult:
    instance = _instance_named(session, step.instance)
    timeout = step.timeout or settings.PLAYGROUND_LAB_CHECK_TIMEOUT
    return session_actions.exec_command(
        instance=instance, command=script_command(script), timeout=timeout, activity=activity
    )


def run_solution(*, session: Session, number: int) -> ExecResult | None:
    """Run a step's solution (check_lab does, to prove the lab can be done)."""
    run = lab_run_of(session=session)
    step = _step_of(run.lab, number)
    if not step.solution:
        return None
    instance = _instance_named(session, step.instance)
    timeout = step.timeout or _setup_timeout(run.lab)
    return session_actions.exec_command(instance=instance, command=script_command(step.solution), timeout=timeout)


def check_step(*, user, session: Session, number: int, auto: bool = False) -> CheckResult:
    """Run a step's check in the session and record the outcome in the
    learner's progress. Steps are done in order: a later step stays locked
    until the ones before it passed.

    ``auto``: the player's automatic check (a lab with ``auto_check`` asks
    every few seconds whether the step is done yet). It runs the same way,
    and a pass is recorded as any pass is, but a failure records nothing: it
    is not the learner trying and failing, so it must not count in
    ``checks_failed`` nor in the failures in a row that flag a learner as
    stuck on a class's dashboard (no progress change, so no dashboard event).
    Nor is it the learner's activity (a page left open must not keep an idle
    session alive), and a step without a check is never done automatically:
    its "Done" is the learner's to press.
    """
    if not session.is_live:
        raise SessionOver(f"This session is over ({session.state}).")
    run = lab_run_of(session=session)
    lab = run.lab
    step = _step_of(lab, number)
    progress = progress_of(user=user, lab=lab)
    current = progress["current"]
    if current is not None and number > current:
        raise Invalid(f"Step {number} is locked: finish step {current} first.")
    if run.setup_state in (LabRun.Setup.PENDING, LabRun.Setup.RUNNING):
        raise NotReady("The lab is still being set up; check again in a moment.")
    if run.skip_state in SKIP_BUSY:
        raise NotReady("Steps are being skipped in this session; check again when it is done.")
    if step.check_script:
        result = run_on_step_instance(session=session, step=step, script=step.check_script, activity=not auto)
        passed, output = result.exit_code == 0, _shown(result.output)
    elif auto:
        passed, output = False, ""
    else:
        passed, output = True, ""
    if passed or not auto:
        _record(user=user, lab=lab, number=number, passed=passed)
    return CheckResult(
        passed=passed,
        output=output,
        hint="" if passed else step.hint,
        progress=progress_of(user=user, lab=lab),
    )


def _record(*, user, lab: Lab, number: int, passed: bool) -> None:
    now = timezone.now()
    with transaction.atomic():
        progress, _ = Progress.objects.select_for_update().get_or_create(user=user, lab=lab)
        progress.last_check_at = now
        if passed:
            progress.checks_passed += 1
            progress.failed_in_a_row = 0
            if number not in progress.completed:
                progress.completed = sorted([*progress.completed, number])
            # Passed for real now: no longer only skipped.
            progress.skipped = [n for n in progress.skipped if n != number]
            if progress.finished_at is None and len({*progress.completed, *progress.skipped}) >= lab.steps.count():
                progress.finished_at = now
        else:
            progress.checks_failed += 1
            progress.failed_in_a_row += 1
        progress.save()


# -- skipping to a step --------------------------------------------------------------------------
# "Skip to step N" (the learner) and a fast-forward (a class's instructor):
# the solutions of the steps before N that are not done yet run, in order, in
# the learner's session, each followed by its check; a step that passes that
# way is recorded as skipped, not passed. One job per session at a time,
# claimed on its LabRun row, run by a worker under a lease.

SKIP_BUSY = (LabRun.Skip.QUEUED, LabRun.Skip.RUNNING)


def skip_blocker(step: Step) -> str:
    """Why ``step`` cannot be skipped ("" when it can)."""
    allowed = step.lab.skippable if step.skippable is None else step.skippable
    if not allowed:
        return f"step {step.number} may not be skipped"
    if not step.solution:
        return f"step {step.number} has no solution"
    return ""


def _steps_to_skip(*, lab: Lab, progress: dict, to: int) -> list[Step]:
    """The steps before ``to`` not done yet, each allowed to be skipped;
    Invalid naming the first that is not."""
    count = lab.steps.count()
    if not 2 <= to <= count:
        raise Invalid(f"There is no step {to} to skip to (this lab has steps 1 to {count}).")
    done = {*progress["completed"], *progress["skipped"]}
    todo = [step for step in lab.steps.select_related("lab").filter(number__lt=to) if step.number not in done]
    if not todo:
        raise Invalid(f"Nothing to skip: every step before step {to} is done.")
    for step in todo:
        reason = skip_blocker(step)
        if reason:
            raise Invalid(f"Cannot skip to step {to}: {reason}.")
    return todo


def skip_state_of(run: LabRun) -> dict | None:
    """A session's skip job as the API shows it; None when there never was one."""
    if run.skip_state == LabRun.Skip.NONE:
        return None
    return {"state": run.skip_state, "to": run.skip_to, "by": run.skip_by,
            "message": run.skip_message, "output": run.skip_output}


def skip_to(*, session: Session, to: int, user, by: str = "learner") -> dict:
    """Queue the job that skips the session owner's progress to step ``to``.

    ``user`` is who asked (the learner, or an instructor whose right to has
    been checked by the caller), ``by`` which of the two. Refused (Invalid,
    naming the step) when a step before ``to`` that is not done may not be
    skipped or has no solution; NotReady (409) while the set-up or another
    skip runs in the session."""
    if not session.is_live:
        raise SessionOver(f"This session is over ({session.state}).")
    run = lab_run_of(session=session)
    if run.setup_state in (LabRun.Setup.PENDING, LabRun.Setup.RUNNING):
        raise NotReady("The lab is still being set up; skip when it is done.")
    _steps_to_skip(lab=run.lab, progress=progress_of(user=session.owner, lab=run.lab), to=to)
    claimed = LabRun.objects.filter(session=session).exclude(skip_state__in=SKIP_BUSY).update(
        skip_state=LabRun.Skip.QUEUED, skip_to=to, skip_by=by, skip_output="",
        skip_message=f"Waiting to skip to step {to}...", skip_queued_at=timezone.now(),
    )
    if not claimed:
        raise NotReady("Steps are being skipped in this session already; wait for it to finish.")
    run.refresh_from_db()
    _skip_changed(run)
    audit.record("lab.skip", user=user, session=session.id, lab=run.lab.slug, to=to, by=by)
    transaction.on_commit(lambda: _queue_skip(session.id))
    return skip_state_of(run)


def _queue_skip(session_id: str) -> None:
    from .tasks import skip_steps

    jobs.enqueue(skip_steps, session_id)


def _skip_changed(run: LabRun) -> None:
    skip_changed.send(sender=LabRun, user_id=run.session.owner_id, lab_id=run.lab_id, session_id=run.session_id)


def run_skip(*, session_id: str) -> None:
    """The skip job (worker side): claims the row, so running it twice is harmless."""
    with jobs.lease(f"lab-skip:{session_id}") as mine:
        if mine:
            _run_skip(session_id)


def _skip_says(run: LabRun, state: str, message: str, output: str = "") -> None:
    LabRun.objects.filter(session_id=run.session_id).update(
        skip_state=state, skip_message=message[:200], skip_output=output
    )
    run.skip_state, run.skip_message, run.skip_output = state, message[:200], output
    _skip_changed(run)


def _run_skip(session_id: str) -> None:
    claimed = LabRun.objects.filter(session_id=session_id, skip_state=LabRun.Skip.QUEUED).update(
        skip_state=LabRun.Skip.RUNNING
    )
    if not claimed:
        return
    run = LabRun.objects.select_related("lab", "session__owner").get(session_id=session_id)
    lab, session, to = run.lab, run.session, run.skip_to
    try:
        if not session.is_live:
            raise SessionOver(f"This session is over ({session.state}).")
        todo = _steps_to_skip(lab=lab, progress=progress_of(user=session.owner, lab=lab), to=to)
        for index, step in enumerate(todo, start=1):
            label = f"Skipping step {step.number} ({index} of {len(todo)})"
            _skip_says(run, LabRun.Skip.RUNNING, f"{label}: running its solution...")
            instance = _instance_named(session, step.instance)
            result = session_actions.exec_command(
                instance=instance, command=script_command(step.solution), timeout=step.timeout or _setup_timeout(lab)
            )
            if result.exit_code != 0:
                _skip_says(run, LabRun.Skip.FAILED, f"Step {step.number}'s solution failed (exit code "
                           f"{result.exit_code}); it was not skipped.", _shown(result.output))
                return
            if step.check_script:
                _skip_says(run, LabRun.Skip.RUNNING, f"{label}: checking it...")
                result = run_on_step_instance(session=session, step=step, script=step.check_script)
                if result.exit_code != 0:
                    _skip_says(run, LabRun.Skip.FAILED, f"Step {step.number}'s check did not pass after its "
                               "solution ran; it was not skipped.", _shown(result.output))
                    return
            _record_skipped(user=session.owner, lab=lab, number=step.number)
    except (PlaygroundError, DriverError) as exc:
        _skip_says(run, LabRun.Skip.FAILED, f"Could not skip to step {to}: {exc.message}")
        return
    _skip_says(run, LabRun.Skip.DONE, f"Skipped to step {to}.")
    log.info("session %s skipped to step %s of lab %s", session_id, to, lab.slug)


def _record_skipped(*, user, lab: Lab, number: int) -> None:
    with transaction.atomic():
        progress, _ = Progress.objects.select_for_update().get_or_create(user=user, lab=lab)
        if number not in progress.completed and number not in progress.skipped:
            progress.skipped = sorted([*progress.skipped, number])
        progress.failed_in_a_row = 0
        if progress.finished_at is None and len({*progress.completed, *progress.skipped}) >= lab.steps.count():
            progress.finished_at = timezone.now()
        progress.save()


def recover_lost_skips() -> dict[str, int]:
    """Skip jobs a dead worker left: one never started is queued again; one
    that was running fails with the reason (its solutions ran in part)."""
    counts = {"skips_requeued": 0, "skips_failed": 0}
    for run in LabRun.objects.select_related("session", "lab").filter(
        skip_state__in=SKIP_BUSY, session__state__in=Session.LIVE_STATES
    ):
        verdict = jobs.should_requeue(f"lab-skip:{run.session_id}", queued_at=run.skip_queued_at or timezone.now())
        if verdict is False:
            continue
        if verdict and run.skip_state == LabRun.Skip.QUEUED:
            _queue_skip(run.session_id)
            counts["skips_requeued"] += 1
            continue
        if LabRun.objects.filter(session_id=run.session_id, skip_state=run.skip_state).update(
            skip_state=LabRun.Skip.FAILED,
            skip_message="Skipping was interrupted (the worker running it stopped); try again.",
        ):
            counts["skips_failed"] += 1
            _skip_changed(run)
    return counts
