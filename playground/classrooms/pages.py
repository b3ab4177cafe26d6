"""Joining a class from a browser: type the code, or open the invite link."""
from __future__ import annotations

import csv

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie

from playground.accounts.actions import create_guest
from playground.errors import PlaygroundError

from . import actions


def _as_someone(request: HttpRequest) -> bool:
    if not request.user.is_authenticated and settings.PLAYGROUND_ALLOW_GUESTS:
        create_guest(request=request)
    return request.user.is_authenticated


def _join(request: HttpRequest, *, code: str | None, token: str | None, classroom=None) -> HttpResponse:
    context = {"code": code or "", "token": token, "classroom": classroom,
               "display_name": request.POST.get("display_name", "")}
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
        "invite_url": request.build_absolute_uri(f"/join/{classroom.invite_token}/"),
    })


def progress_csv(request: HttpRequest, cid: str) -> HttpResponse:
    """Every learner's progress, for the records at the end of a class."""
    classroom = _taught(request, cid)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="class-{classroom.id}-progress.csv"'
    writer = csv.writer(response)
    columns = ["learner", "step", "checks_passed", "checks_failed", "last_activity", "stuck", "hand_raised"]
    writer.writerow(columns)
    for entry in actions.roster_json(actions.roster(classroom=classroom)):
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
