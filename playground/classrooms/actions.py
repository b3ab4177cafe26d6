"""Use cases of classes: create and end one, join it, see who is where.

A class runs one lab. Learners join with its code or invite link and get a
session of that lab that belongs to the class (a ``Learner`` row links them).
An organisation's classes share a quota of concurrent instances.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from playground import audit, events, metrics
from playground.accounts.actions import is_guest
from playground.errors import (
    ClassClosed,
    Forbidden,
    Invalid,
    LimitReached,
    NotFoundError,
    PlaygroundError,
)
from playground.labs import actions as lab_actions
from playground.labs.models import Lab, Progress
from playground.sessions import actions as session_actions
from playground.sessions import hosts
from playground.sessions.models import Instance, Session

from .models import Classroom, Learner, Organisation, WarmSession

log = logging.getLogger(__name__)


# -- instructors -------------------------------------------------------------------------

def is_instructor(user) -> bool:
    profile = getattr(user, "profile", None)
    return bool(user.is_authenticated and (user.is_staff or (profile and profile.is_instructor)))


# Bounds of a class's own settings, the same for the API and the pages.
CLASS_MAX_SEATS = 10000
CLASS_MAX_INSTANCES = 50
CLASS_MIN_LIFETIME = 60
CLASS_MAX_LIFETIME = 7 * 24 * 3600

# What a class may set beside its title, lab, seats and times (all optional).
OPTIONAL_FIELDS = ("max_instances", "session_lifetime", "join_code_expires_at", "join_code_max_uses",
                   "invite_expires_at", "invite_max_uses")

# ``organisation`` left as it is when a class is changed.
UNCHANGED = object()


class ClassInvalid(Invalid):
    """A class's fields break its rules: ``errors`` says why, field by field
    (the pages show each beside its field; the API joins them)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


def may_create_classes(user) -> bool:
    return is_instructor(user)


def class_state(classroom: Classroom, now: datetime | None = None) -> str:
    """``upcoming``, ``open`` or ``ended``."""
    now = now or timezone.now()
    if classroom.ended_at or now >= classroom.ends_at:
        return "ended"
    return "upcoming" if now < classroom.starts_at else "open"


def _check_fields(*, user, title: str, lab: str, seats: int, starts_at: datetime, ends_at: datetime,
                  organisation: Organisation | None, optional: dict, classroom: Classroom | None = None) -> Lab:
    """The rules a class's fields follow, on creation and on every change;
    returns the lab. ``classroom`` is the class being changed, if any."""
    unknown = set(optional) - set(OPTIONAL_FIELDS)
    if unknown:
        raise TypeError(f"unknown class fields: {sorted(unknown)}")
    errors: dict[str, str] = {}
    now = timezone.now()
    if not title.strip():
        errors["title"] = "A class needs a title."
    found = Lab.objects.filter(slug=lab).first()
    if found is None or (found.draft and (classroom is None or found.pk != classroom.lab_id)):
        errors["lab"] = f"No lab {lab!r}."
        found = None
    elif classroom is not None and found.pk != classroom.lab_id and classroom.learners.exists():
        errors["lab"] = "Learners have joined this class already: its lab can no longer change."
    taken = classroom.learners.count() if classroom is not None else 0
    if seats < 1:
        errors["seats"] = "A class needs at least one seat."
    elif seats > CLASS_MAX_SEATS:
        errors["seats"] = f"A class has at most {CLASS_MAX_SEATS} seats."
    elif seats < taken:
        errors["seats"] = f"{taken} learners have joined already: keep at least {taken} seats."
    if ends_at <= starts_at:
        errors["ends_at"] = "A class must end after it starts."
    elif ends_at <= now:
        errors["ends_at"] = "This class would be over already: its end is in the past."
    instances = optional.get("max_instances")
    if instances is not None and not 1 <= instances <= CLASS_MAX_INSTANCES:
        errors["max_instances"] = f"Instances per learner: from 1 to {CLASS_MAX_INSTANCES}."
    lifetime = optional.get("session_lifetime")
    if lifetime is not None and not CLASS_MIN_LIFETIME <= lifetime <= CLASS_MAX_LIFETIME:
        errors["session_lifetime"] = "A session lives from 1 minute to 7 days."
    for prefix, what in (("join_code", "join code"), ("invite", "invite link")):
        uses = optional.get(f"{prefix}_max_uses")
        if uses is not None and uses < 1:
            errors[f"{prefix}_max_uses"] = f"The {what} needs at least one use (leave it blank for no maximum)."
        expires = optional.get(f"{prefix}_expires_at")
        if expires is not None and expires <= starts_at:
            errors[f"{prefix}_expires_at"] = (
                f"The {what} would expire before the class starts, so nobody could use it."
            )
    if organisation is not None and not (
        user.is_staff or organisation.instructors.filter(pk=user.pk).exists()
        or (classroom is not None and classroom.organisation_id == organisation.pk)
    ):
        errors["organisation"] = f"You are not an instructor of {organisation.name}."
    if errors:
        raise ClassInvalid(errors)
    return found


def create_classroom(*, user, title: str, lab: str, seats: int, starts_at: datetime, ends_at: datetime,
                     organisation: Organisation | None = None, **optional) -> Classroom:
    """A new class taught by ``user``; ``optional`` holds OPTIONAL_FIELDS."""
    if not may_create_classes(user):
        raise Forbidden("Only instructors may create classes.")
    found = _check_fields(user=user, title=title, lab=lab, seats=seats, starts_at=starts_at, ends_at=ends_at,
                          organisation=organisation, optional=optional)
    with transaction.atomic():
        classroom = Classroom.objects.create(
            title=title.strip(), lab=found, seats=seats, starts_at=starts_at, ends_at=ends_at,
            organisation=organisation, **optional,
        )
        classroom.instructors.add(user)
    audit.record("class.created", user=user, classroom=classroom.id, lab=lab, seats=seats)
    return classroom


def teaches(user, classroom: Classroom) -> bool:
    return bool(user.is_authenticated and classroom.instructors.filter(pk=user.pk).exists())


def check_editable(classroom: Classroom) -> None:
    if class_state(classroom) == "ended":
        raise ClassClosed(f"The class {classroom.title!r} has ended: it can no longer be changed.")


def update_classroom(*, user, classroom: Classroom, title: str, lab: str, seats: int, starts_at: datetime,
                     ends_at: datetime, organisation: Organisation | None | object = UNCHANGED,
                     **optional) -> Classroom:
    """Change a class that has not ended, as one of its instructors.
    ``optional`` holds OPTIONAL_FIELDS (one left out is left as it is)."""
    if not teaches(user, classroom):
        raise Forbidden("Only the class's instructors may change it.")
    check_editable(classroom)
    if organisation is UNCHANGED:
        organisation = classroom.organisation
    found = _check_fields(user=user, title=title, lab=lab, seats=seats, starts_at=starts_at, ends_at=ends_at,
                          organisation=organisation, optional=optional, classroom=classroom)
    new = {"title": title.strip(), "lab_id": found.pk, "seats": seats, "starts_at": starts_at,
           "ends_at": ends_at, "organisation_id": organisation.pk if organisation else None, **optional}
    with transaction.atomic():
        current = Classroom.objects.select_for_update().get(pk=classroom.pk)
        check_editable(current)  # ended meanwhile
        changed = [field for field, value in new.items() if getattr(current, field) != value]
        for field, value in new.items():
            setattr(current, field, value)
        current.save()
    _changed(user=user, classroom=current, fields=[f.removesuffix("_id") for f in changed])
    return current


def check_operator_fields(*, user, classroom: Classroom | None, title: str, lab: str, seats: int,
                          starts_at: datetime, ends_at: datetime, organisation: Organisation | None,
                          optional: dict) -> None:
    """The API's rules for a class an operator creates or changes in the
    admin (``classroom`` None: a new one): ClassInvalid, field by field, or
    ClassClosed for a class that has ended."""
    if classroom is not None:
        check_editable(classroom)
    _check_fields(user=user, title=title, lab=lab, seats=seats, starts_at=starts_at, ends_at=ends_at,
                  organisation=organisation, optional=optional, classroom=classroom)


def changed_by_operator(*, user, classroom: Classroom, fields: list[str]) -> None:
    """An operator changed the class in the admin (saved already): the same
    follows as after update_classroom."""
    _changed(user=user, classroom=classroom, fields=fields, via="admin")


def _changed(*, user, classroom: Classroom, fields: list[str], **audited) -> None:
    """A saved change of ``fields``: the warm pool, the dashboard and the audit log follow."""
    _reschedule_warm(classroom, lab_changed="lab" in fields)
    notify_class(classroom.id)
    audit.record("class.changed", user=user, classroom=classroom.id, fields=",".join(fields) or "none", **audited)


def classrooms_of(*, user):
    return Classroom.objects.filter(instructors=user).select_related("lab").distinct()


def classroom_of(*, user, classroom_id: str) -> Classroom:
    """A class the caller teaches; anyone else's is 404 (existence is not revealed)."""
    classroom = classrooms_of(user=user).filter(id=classroom_id).first()
    if classroom is None:
        raise NotFoundError("No such class.")
    return classroom


def end_classroom(*, classroom: Classroom, user=None) -> int:
    """End the class now: every session in it ends (nothing is left on a host)."""
    Classroom.objects.filter(id=classroom.id, ended_at__isnull=True).update(ended_at=timezone.now())
    ended = 0
    drain_warm(classroom=classroom, reason="the class ended")
    for session in Session.objects.filter(seat__classroom=classroom, state__in=Session.LIVE_STATES):
        try:
            session_actions.end_session(session=session, reason="the class ended")
            ended += 1
        except Exception:
            log.exception("could not end session %s of class %s", session.id, classroom.id)
    notify_class(classroom.id)
    audit.record("class.ended", user=user, classroom=classroom.id, sessions=ended)
    return ended


# -- learners ------------------------------------------------------------------------------

def _is_open(classroom: Classroom) -> None:
    now = timezone.now()
    if classroom.ended_at or now >= classroom.ends_at:
        raise ClassClosed(f"The class {classroom.title!r} is over.")
    if now < classroom.starts_at:
        local = timezone.localtime(classroom.starts_at)
        raise ClassClosed(f"The class {classroom.title!r} has not started yet: it starts at {local:%H:%M on %d %b %Y}.")


def find_classroom(*, code: str | None = None, invite: str | None = None) -> tuple[Classroom, str]:
    """The class a code or an invite token opens, and which one it was."""
    classroom = None
    if code:
        classroom = Classroom.objects.select_related("lab").filter(join_code=code.strip().upper()).first()
        via = "code"
    elif invite:
        classroom = Classroom.objects.select_related("lab").filter(invite_token=invite.strip()).first()
        via = "invite"
    if classroom is None:
        raise NotFoundError("No class has this join code. Check it with your instructor.")
    return classroom, via


def _take_a_use(classroom: Classroom, via: str) -> None:
    expires, max_uses, uses = (
        (classroom.join_code_expires_at, classroom.join_code_max_uses, "join_code_uses")
        if via == "code" else
        (classroom.invite_expires_at, classroom.invite_max_uses, "invite_uses")
    )
    what = "join code" if via == "code" else "invite link"
    if expires and timezone.now() >= expires:
        raise ClassClosed(f"This {what} has expired; ask your instructor for a new one.")
    bumped = Classroom.objects.filter(id=classroom.id)
    if max_uses is not None:
        bumped = bumped.filter(**{f"{uses}__lt": max_uses})
    if not bumped.update(**{uses: F(uses) + 1}):
        raise LimitReached(f"This {what} has been used the most times allowed; ask your instructor.")


def _instances_needed(lab: Lab) -> int:
    env = lab.environment or {}
    if env.get("template"):
        return next((t["instances"] for t in session_actions.templates() if t["name"] == env["template"]), 1)
    return max(1, len(env.get("instances") or []))


def _check_quota(classroom: Classroom) -> None:
    org = classroom.organisation
    if org is None:
        return
    running = Instance.objects.filter(
        Q(session__seat__classroom__organisation=org) | Q(session__warm__classroom__organisation=org),
        session__state__in=Session.LIVE_STATES,
        state__in=session_actions.LIVE_INSTANCE_STATES,
    ).count()
    if running + _instances_needed(classroom.lab) > org.quota:
        raise LimitReached(
            f"{org.name} has {running} of its {org.quota} sandboxes in use; try again when a session ends."
        )


def join(*, user, code: str | None = None, invite: str | None = None, display_name: str = "") -> tuple[Session, bool]:
    """Take a seat (or find the one taken before) and the class's lab session.

    Returns the session and whether it was created now (False: a learner who
    already has a live session in this class gets that one back)."""
    classroom, via = find_classroom(code=code, invite=invite)
    name = (display_name or "").strip()[:80]
    with transaction.atomic():
        learner = Learner.objects.select_related("session").filter(classroom=classroom, user=user).first()
        if learner and learner.session and learner.session.is_live:
            return learner.session, False
        _is_open(classroom)
        if learner is None:
            # Joins of one class take turns from here to the commit: two
            # learners counting the seats at once would both see the last one
            # free (SQLite's one writer hides this; PostgreSQL does not).
            seats = Classroom.objects.select_for_update().values_list("seats", flat=True).get(id=classroom.id)
            if Learner.objects.filter(classroom=classroom).count() >= seats:
                raise LimitReached(f"The class {classroom.title!r} is full: all {seats} seats are taken.")
            _take_a_use(classroom, via)
            if not name:
                name = _default_name(user)
            learner = Learner.objects.create(classroom=classroom, user=user, display_name=name)
        elif name:
            learner.display_name = name
        session_actions.check_session_cap(user)
        session = _claim_warm(classroom, user)
        if session is None:
            _check_quota(classroom)
            session = lab_actions.start_lab_session(user=user, lab=classroom.lab)
        lifetime = classroom.session_lifetime or settings.PLAYGROUND_SESSION_LIFETIME
        now = timezone.now()
        Session.objects.filter(id=session.id).update(
            expires_at=min(now + timedelta(seconds=lifetime), classroom.ends_at),
            last_activity_at=now,
            max_instances=classroom.max_instances,
        )
        learner.session = session
        learner.hand_raised = False
        learner.save()
        session.refresh_from_db()
    notify_class(classroom.id)
    audit.record("class.joined", user=user, classroom=classroom.id, session=session.id, via=via)
    metrics.class_joined(via=via)
    return session, True


def _default_name(user) -> str:
    profile = getattr(user, "profile", None)
    if profile and profile.display_name:
        return profile.display_name
    if is_guest(user):
        return f"Guest {user.pk}"
    return user.get_full_name() or user.get_username()


def raise_hand(*, user, session: Session, raised: bool) -> Learner:
    learner = Learner.objects.filter(session=session, user=user).first()
    if learner is None:
        raise NotFoundError("This session is not part of a class.")
    Learner.objects.filter(pk=learner.pk).update(hand_raised=raised)
    learner.hand_raised = raised
    notify_class(learner.classroom_id)
    return learner


def _live_learner_sessions(classroom: Classroom, session_id: str | None = None):
    sessions = Session.objects.filter(seat__classroom=classroom, state__in=Session.LIVE_STATES)
    if session_id is not None:
        sessions = sessions.filter(id=session_id)
        if not sessions.exists():
            raise NotFoundError("No live session of this class has this id.")
    return list(sessions)


def broadcast(*, classroom: Classroom, text: str, user) -> int:
    """Show ``text`` on every learner's page; returns how many sessions got it."""
    text = text.strip()
    if not text:
        raise Invalid("The message is empty.")
    sender = _default_name(user)
    sessions = _live_learner_sessions(classroom)
    for session in sessions:
        session_actions.tell_session(session_id=session.id, text=text[:2000], sender=sender)
    audit.record("class.message", user=user, classroom=classroom.id, sessions=len(sessions))
    return len(sessions)


def give_time(*, classroom: Classroom, minutes: int, user, session_id: str | None = None) -> int:
    """Extra time for one learner's session, or for every learner's."""
    sessions = _live_learner_sessions(classroom, session_id)
    for session in sessions:
        session_actions.give_time(session=session, seconds=minutes * 60, user=user)
    notify_class(classroom.id)
    return len(sessions)


def fast_forward(*, classroom: Classroom, step: int, user, session_id: str | None = None) -> list[dict]:
    """Skip one learner (``session_id``) or every learner with a live
    session to ``step``, as far as the lab allows (labs.actions.skip_to):
    each session gets its own skip job. One learner's refusal is the
    answer's error; for the whole class it is that learner's result."""
    sessions = _live_learner_sessions(classroom, session_id)
    names = dict(Learner.objects.filter(session__in=sessions).values_list("session_id", "display_name"))
    results = []
    for session in sessions:
        try:
            skip = lab_actions.skip_to(session=session, to=step, user=user, by="instructor")
            results.append({"session": session.id, "learner": names.get(session.id, ""), "queued": True,
                            "message": skip["message"]})
        except PlaygroundError as exc:
            if session_id is not None:
                raise
            results.append({"session": session.id, "learner": names.get(session.id, ""), "queued": False,
                            "message": exc.message})
    audit.record("class.fast_forward", user=user, classroom=classroom.id, step=step,
                 learners=",".join(r["session"] for r in results) or "none",
                 queued=sum(r["queued"] for r in results))
    notify_class(classroom.id)
    return results


# -- hot start ------------------------------------------------------------------------------
# Ahead of a class, a session of its lab is made for every seat (set-up
# included), owned by the pool's system user. A joining learner is handed one:
# its owner changes, no container is made on that path.

def pool_user():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username=settings.PLAYGROUND_POOL_USERNAME, defaults={"is_active": False}
    )
    return user


def _claim_warm(classroom: Classroom, user) -> Session | None:
    """A ready warm session of the class, handed to ``user``; None if there is none."""
    candidates = WarmSession.objects.filter(
        classroom=classroom, session__state__in=Session.LIVE_STATES
    ).select_related("session").order_by("created_at")
    for warm in candidates[:10]:
        run = getattr(warm.session, "lab_run", None)
        if run is not None and run.setup_state in ("pending", "running"):
            continue  # not set up yet: a learner would see it half-made
        if not WarmSession.objects.filter(pk=warm.pk).delete()[0]:
            continue  # another learner was quicker
        Session.objects.filter(id=warm.session_id).update(owner=user)
        Progress.objects.get_or_create(user=user, lab=classroom.lab)
        log.info("class %s: %s claimed warm session %s", classroom.id, user, warm.session_id)
        return Session.objects.get(id=warm.session_id)
    return None


def _warm_window(classroom: Classroom, now: datetime) -> bool:
    lead = timedelta(seconds=settings.PLAYGROUND_CLASS_WARM_LEAD)
    window = timedelta(seconds=settings.PLAYGROUND_CLASS_WARM_WINDOW)
    return (classroom.ended_at is None and classroom.starts_at - lead <= now < classroom.starts_at + window
            and now < classroom.ends_at)


def warm_classes() -> dict[str, int]:
    """Fill the warm pools of classes about to start; drain those whose start
    window closed. Returns sessions made per class. (Worker side.)"""
    now = timezone.now()
    made: dict[str, int] = {}
    _move_warm_off(hosts.draining_hosts())
    for classroom in Classroom.objects.filter(ended_at__isnull=True, warm_sessions__isnull=False).distinct():
        if not _warm_window(classroom, now):
            drain_warm(classroom=classroom, reason="the class's start window closed")
    # Sessions are made before the start only: once the class runs, a
    # learner who joins is served on demand, and what is warm already waits
    # until the start window closes.
    lead = timedelta(seconds=settings.PLAYGROUND_CLASS_WARM_LEAD)
    due = Classroom.objects.filter(
        ended_at__isnull=True, starts_at__lte=now + lead, starts_at__gt=now, ends_at__gt=now,
    ).select_related("lab", "organisation")
    for classroom in due:
        made[classroom.id] = _fill_warm(classroom, now)
    return made


def _move_warm_off(draining: list[str]) -> int:
    """End the warm sessions waiting on lab hosts being drained; the classes
    about to start fill up again on the others (below)."""
    moved = 0
    for warm in WarmSession.objects.filter(session__host__in=draining).select_related("session"):
        if WarmSession.objects.filter(pk=warm.pk).delete()[0] and warm.session.is_live:
            session_actions.end_session(session=warm.session, reason="its lab host is being drained")
            moved += 1
    return moved


def _fill_warm(classroom: Classroom, now: datetime) -> int:
    # Dead warm sessions (an instance failed) go; the rest count.
    for warm in WarmSession.objects.filter(classroom=classroom).exclude(session__state__in=Session.LIVE_STATES):
        warm.delete()
    wanted = classroom.seats - classroom.learners.count()
    have = WarmSession.objects.filter(classroom=classroom).count()
    made = 0
    window_end = classroom.starts_at + timedelta(seconds=settings.PLAYGROUND_CLASS_WARM_WINDOW)
    for _ in range(max(0, wanted - have)):
        try:
            _check_quota(classroom)
            with transaction.atomic():
                session = lab_actions.start_lab_session(user=pool_user(), lab=classroom.lab)
                # Not idle while it waits: it is nobody's yet.
                Session.objects.filter(id=session.id).update(
                    last_activity_at=max(window_end, now), expires_at=min(classroom.ends_at, session.expires_at),
                )
                WarmSession.objects.create(classroom=classroom, session=session)
        except (LimitReached, PlaygroundError) as exc:
            log.info("class %s: warm pool stops at %d more (%s)", classroom.id, made, exc.message)
            break
        made += 1
    if made:
        notify_class(classroom.id)
    return made


def drain_warm(*, classroom: Classroom, reason: str) -> int:
    drained = 0
    for warm in list(WarmSession.objects.filter(classroom=classroom).select_related("session")):
        session = warm.session
        warm.delete()
        if session.is_live:
            session_actions.end_session(session=session, reason=reason)
        drained += 1
    return drained


def _reschedule_warm(classroom: Classroom, *, lab_changed: bool) -> None:
    """The class was changed: its warm pool follows. What warm_classes would
    remove at its next run goes now (the lab changed, or the new start puts
    the pool out of its window); what stays waits until the new window closes
    and ends with the class; sessions beyond the free seats go. Filling up
    stays warm_classes' work, from the new start and seats."""
    warm = list(WarmSession.objects.filter(classroom=classroom).select_related("session").order_by("created_at"))
    if not warm:
        return
    now = timezone.now()
    if lab_changed or not _warm_window(classroom, now):
        drain_warm(classroom=classroom, reason="the class was changed")
        return
    wanted = max(0, classroom.seats - classroom.learners.count())
    window_end = classroom.starts_at + timedelta(seconds=settings.PLAYGROUND_CLASS_WARM_WINDOW)
    lifetime = timedelta(seconds=settings.PLAYGROUND_SESSION_LIFETIME)
    for n, entry in enumerate(warm):
        session = entry.session
        if n >= wanted:
            if WarmSession.objects.filter(pk=entry.pk).delete()[0] and session.is_live:
                session_actions.end_session(session=session, reason="the class has fewer free seats")
            continue
        Session.objects.filter(id=session.id, warm__isnull=False).update(
            last_activity_at=max(window_end, now),
            expires_at=min(classroom.ends_at, session.created_at + lifetime),
        )


def warm_counts(classroom: Classroom) -> dict[str, int]:
    """Warm sessions ready (set up, running) and wanted, for the dashboard."""
    warm = WarmSession.objects.filter(classroom=classroom, session__state__in=Session.LIVE_STATES)
    ready = sum(
        1 for w in warm.select_related("session__lab_run")
        if w.session.state == Session.State.RUNNING
        and getattr(getattr(w.session, "lab_run", None), "setup_state", "none") in ("none", "done")
    )
    return {"ready": ready, "warming": warm.count(), "wanted": max(0, classroom.seats - classroom.learners.count())}


# -- the roster ----------------------------------------------------------------------------

def roster(*, classroom: Classroom) -> list[dict]:
    """Every learner's state, for the instructors."""
    steps = classroom.lab.steps.count()
    progress = {p.user_id: p for p in Progress.objects.filter(lab=classroom.lab)}
    now = timezone.now()
    entries = []
    for learner in classroom.learners.select_related("session", "session__lab_run").all():
        session = learner.session
        live = session is not None and session.is_live
        done = progress.get(learner.user_id)
        completed = set(done.completed if done else [])
        skipped = sorted(set(done.skipped if done else []) - completed)
        todo = [n for n in range(1, steps + 1) if n not in completed and n not in skipped]
        run = getattr(session, "lab_run", None) if session is not None else None
        idle = live and (now - session.last_activity_at).total_seconds() > settings.PLAYGROUND_CLASS_STUCK_IDLE
        failing = bool(done and done.failed_in_a_row >= settings.PLAYGROUND_CLASS_STUCK_FAILURES)
        entries.append({
            "key": str(learner.pk),
            "learner": learner.display_name,
            "session": session.id if live else None,
            "step": (todo[0] if todo else steps) if steps else None,
            "checks_passed": done.checks_passed if done else 0,
            "checks_failed": done.checks_failed if done else 0,
            "last_activity": session.last_activity_at if session else None,
            "stuck": bool(learner.hand_raised or idle or failing),
            "hand_raised": learner.hand_raised,
            "skipped": skipped,
            # The job's state and message; its output is the learner's page's to show.
            "skip": ({k: v for k, v in (lab_actions.skip_state_of(run) or {}).items() if k != "output"} or None)
            if run is not None and live else None,
        })
    return entries


def roster_json(entries: list[dict]) -> list[dict]:
    """Roster entries as JSON values (times in ISO 8601)."""
    return [{**e, "last_activity": e["last_activity"].isoformat() if e["last_activity"] else None} for e in entries]


def class_group(classroom_id: str) -> str:
    return f"class.{classroom_id}"


def notify_class(classroom_id: str) -> None:
    """Tell the class's dashboards that something changed, once the
    transaction commits. Best effort: dashboards also look again now and then."""
    events.broadcast(class_group(classroom_id), {"type": "class.changed"})


def notify_classes_of(*, user, lab_id: int) -> None:
    """A learner's lab progress changed: the dashboards of their live classes on that lab."""
    for classroom_id in Learner.objects.filter(
        user=user, classroom__lab_id=lab_id, classroom__ended_at__isnull=True
    ).values_list("classroom_id", flat=True):
        notify_class(classroom_id)


def learner_count(classroom: Classroom) -> int:
    return classroom.learners.count()


def live_classrooms_query() -> Q:
    now = timezone.now()
    return Q(ended_at__isnull=True, starts_at__lte=now, ends_at__gt=now)
