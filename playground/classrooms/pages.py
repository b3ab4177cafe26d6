"""Classes in the browser: joining (type the code, or open the invite link),
and the instructor's pages (their classes, a class's form, its dashboard)."""
from __future__ import annotations

import csv

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import ensure_csrf_cookie

from playground.accounts.actions import create_guest, is_guest
from playground.accounts.throttles import failures_wait, note_failure
from playground.errors import ClassClosed, NotFoundError, PlaygroundError

from . import actions
from .forms import ClassroomForm
from .models import Classroom


def _as_someone(request: HttpRequest) -> bool:
    if not request.user.is_authenticated and settings.PLAYGROUND_ALLOW_GUESTS:
        create_guest(request=request)
    return request.user.is_authenticated


def _join(request: HttpRequest, *, code: str | None, token: str | None, classroom=None) -> HttpResponse:
    context = {"code": code or "", "token": token, "classroom": classroom,
               "display_name": request.POST.get("display_name", "")}
    if request.method == "POST":
        # Join codes are short: wrong ones are counted per address, and past
        # PLAYGROUND_JOIN_RATE_ADDRESS no code is tried (nor a guest made for it).
        wait = failures_wait("join_address", request)
        if wait is not None:
            context["error"] = f"Too many attempts to join from your network; try again in {wait} s."
            response = render(request, "classrooms/join.html", context, status=429)
            response["Retry-After"] = str(wait)
            return response
    if not _as_someone(request):
        return redirect(f"{settings.LOGIN_URL}?next={request.path}")
    status = 200
    if request.method == "POST":
        try:
            session, _ = actions.join(user=request.user, code=code, invite=token,
                                      display_name=request.POST.get("display_name", ""))
            return redirect("session", sid=session.id)
        except PlaygroundError as exc:
            context["error"], status = exc.message, exc.status
            if isinstance(exc, NotFoundError):
                note_failure("join_address", request)
    return render(request, "classrooms/join.html", context, status=status)


@ensure_csrf_cookie
def join_by_code(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        _as_someone(request)
        return render(request, "classrooms/join.html", {"code": request.GET.get("code", "")})
    code = request.POST.get("code", "").strip()
    if not code:
        return render(request, "classrooms/join.html", {"error": "Type the join code your instructor gave you."},
                      status=400)
    return _join(request, code=code, token=None)


@ensure_csrf_cookie
def join_by_invite(request: HttpRequest, token: str) -> HttpResponse:
    try:
        classroom, _ = actions.find_classroom(invite=token)
    except PlaygroundError as exc:
        return render(request, "classrooms/join.html", {"error": exc.message, "token": token}, status=404)
    return _join(request, code=None, token=token, classroom=classroom)


def _taught(request: HttpRequest, cid: str):
    if not request.user.is_authenticated:
        raise Http404("No such class.")
    try:
        return actions.classroom_of(user=request.user, classroom_id=cid)
    except PlaygroundError:
        raise Http404("No such class.") from None


@ensure_csrf_cookie
def dashboard(request: HttpRequest, cid: str) -> HttpResponse:
    """The instructor's live view of a class."""
    classroom = _taught(request, cid)
    return render(request, "classrooms/dashboard.html", {
        "classroom": classroom,
        "steps": classroom.lab.steps.count(),
        "step_numbers": range(2, classroom.lab.steps.count() + 1),
        "invite_url": request.build_absolute_uri(f"/join/{classroom.invite_token}/"),
        "editable": actions.class_state(classroom) != "ended",
    })


def progress_csv(request: HttpRequest, cid: str) -> HttpResponse:
    """Every learner's progress, for the records at the end of a class."""
    classroom = _taught(request, cid)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="class-{classroom.id}-progress.csv"'
    writer = csv.writer(response)
    columns = ["learner", "step", "checks_passed", "checks_failed", "last_activity", "stuck", "hand_raised", "skipped"]
    writer.writerow(columns)
    for entry in actions.roster_json(actions.roster(classroom=classroom)):
        entry = {**entry, "skipped": " ".join(map(str, entry["skipped"]))}
        writer.writerow([entry[c] if entry[c] is not None else "" for c in columns])
    return response


@ensure_csrf_cookie
def watch(request: HttpRequest, cid: str, sid: str) -> HttpResponse:
    """An instructor's view of one learner's terminals (read-only until taking over)."""
    classroom = _taught(request, cid)
    learner = classroom.learners.select_related("session").filter(session_id=sid).first()
    if learner is None or not learner.session.is_live:
        raise Http404("This learner has no live session.")
    instances = [
        {"id": i.id, "hostname": i.hostname, "terminal": i.terminal_path}
        for i in learner.session.instances.filter(state__in=("provisioning", "running"))
    ]
    return render(request, "classrooms/watch.html", {
        "classroom": classroom, "learner": learner, "instances": instances,
    })


# -- the instructor's own pages ---------------------------------------------------------------

def _signed_in(request: HttpRequest) -> bool:
    """A real account (guests are cookie identities, not instructors)."""
    return request.user.is_authenticated and not is_guest(request.user)


def _forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "classrooms/forbidden.html", {"message": message}, status=403)


def _invite_url(request: HttpRequest, classroom: Classroom) -> str:
    return request.build_absolute_uri(reverse("join-invite", args=[classroom.invite_token]))


STATE_ORDER = {"open": 0, "upcoming": 1, "ended": 2}


def my_classes(request: HttpRequest) -> HttpResponse:
    """The classes the signed-in user teaches: running and coming first."""
    if not _signed_in(request):
        return redirect_to_login(request.get_full_path())
    now = timezone.now()
    rows = [
        {"classroom": c, "state": actions.class_state(c, now), "invite_url": _invite_url(request, c)}
        for c in actions.classrooms_of(user=request.user).annotate(taken=Count("learners", distinct=True))
    ]
    # Open and upcoming soonest first; ended most recent first.
    rows.sort(key=lambda r: (STATE_ORDER[r["state"]],
                             -r["classroom"].starts_at.timestamp() if r["state"] == "ended"
                             else r["classroom"].starts_at.timestamp()))
    return render(request, "classrooms/list.html", {
        "rows": rows, "may_create": actions.may_create_classes(request.user),
    })


def _form_page(request: HttpRequest, form: ClassroomForm, classroom: Classroom | None, status: int = 200,
               closed: str = "") -> HttpResponse:
    return render(request, "classrooms/form.html", {
        "form": form, "classroom": classroom, "closed": closed,
        "timezone_name": timezone.get_current_timezone_name(),
    }, status=status)


def new_class(request: HttpRequest) -> HttpResponse:
    if not _signed_in(request):
        return redirect_to_login(request.get_full_path())
    if not actions.may_create_classes(request.user):
        return _forbidden(request, "Only instructors may create classes; an operator can make you one.")
    form = ClassroomForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            classroom = actions.create_classroom(user=request.user, **form.action_kwargs())
            return redirect("classroom", cid=classroom.id)
        except actions.ClassInvalid as exc:
            form.add_rule_errors(exc)
        except PlaygroundError as exc:
            form.add_error(None, exc.message)
    return _form_page(request, form, None, status=400 if form.is_bound else 200)


def edit_class(request: HttpRequest, cid: str) -> HttpResponse:
    if not _signed_in(request):
        return redirect_to_login(request.get_full_path())
    classroom = Classroom.objects.select_related("lab", "organisation").filter(id=cid).first()
    # Someone else's class is as unknown as one that does not exist (docs/api.md:
    # another owner's id is a 404, never a 403).
    if classroom is None or not actions.teaches(request.user, classroom):
        raise Http404("No such class.")
    try:
        actions.check_editable(classroom)
    except ClassClosed as exc:
        return _form_page(request, None, classroom, status=exc.status, closed=exc.message)
    form = ClassroomForm(request.POST if request.method == "POST" else None, user=request.user,
                         classroom=classroom)
    if request.method == "POST" and form.is_valid():
        try:
            actions.update_classroom(user=request.user, classroom=classroom, **form.action_kwargs())
            return redirect("classroom", cid=classroom.id)
        except actions.ClassInvalid as exc:
            form.add_rule_errors(exc)
        except ClassClosed as exc:  # it ended while the form was open
            return _form_page(request, None, classroom, status=exc.status, closed=exc.message)
        except PlaygroundError as exc:
            form.add_error(None, exc.message)
    return _form_page(request, form, classroom, status=400 if form.is_bound else 200)
