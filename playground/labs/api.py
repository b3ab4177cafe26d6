"""The JSON API of labs (docs/api.md): the catalogue, one lab with the caller's
progress, a session's lab, and step checks. Views validate and call actions."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from playground.sessions import actions as session_actions
from playground.sessions.api import ERRORS, ExecThrottle, StrictSerializer, _body, _throttle

from . import actions
from .markdown import render
from .models import Lab

# -- shapes --------------------------------------------------------------------------------


def lab_summary(lab: Lab) -> dict:
    steps = getattr(lab, "step_count", None)
    return {
        "slug": lab.slug,
        "title": lab.title,
        "summary": lab.summary,
        "duration": lab.duration,
        "difficulty": lab.difficulty,
        "tags": lab.tags,
        "steps": steps if steps is not None else lab.steps.count(),
    }


def lab_detail(lab: Lab, *, user) -> dict:
    """The lab with its steps (title and rendered text) and the caller's progress."""
    default = lab.default_instance
    return {
        **lab_summary(lab),
        "intro": render(lab.intro, instance=default),
        "finish": render(lab.finish, instance=default),
        "auto_check": lab.auto_check,
        "skippable": lab.skippable,
        "instances": [
            {"name": item["name"], "image": item.get("image")} for item in lab.environment.get("instances", [])
        ],
        "template": lab.environment.get("template") or None,
        "steps": [
            {
                "number": step.number,
                "title": step.title,
                "text": render(step.text, instance=step.instance or default),
                "instance": step.instance or default or None,
                "has_check": bool(step.check_script),
                "hint": render(step.hint, instance=step.instance or default) if step.hint else None,
                "has_solution": bool(step.solution),
                # Why it cannot be skipped past, or null (the player's Skip button says it).
                "skip_blocker": actions.skip_blocker(step) or None,
            }
            for step in lab.steps.select_related("lab")
        ],
        "progress": actions.progress_of(user=user, lab=lab),
    }


PROGRESS = inline_serializer("LabProgress", {
    "completed": serializers.ListField(child=serializers.IntegerField()),
    "skipped": serializers.ListField(child=serializers.IntegerField(),
                                     help_text="Steps skipped (solution run, check passed): done, not passed."),
    "current": serializers.IntegerField(allow_null=True),
    "finished": serializers.BooleanField(),
    "checks_passed": serializers.IntegerField(),
    "checks_failed": serializers.IntegerField(),
    "last_check_at": serializers.DateTimeField(allow_null=True),
})
LAB_SUMMARY_FIELDS = {
    "slug": serializers.CharField(), "title": serializers.CharField(), "summary": serializers.CharField(),
    "duration": serializers.IntegerField(help_text="minutes"), "difficulty": serializers.CharField(),
    "tags": serializers.ListField(child=serializers.CharField()), "steps": serializers.IntegerField(),
}


class JSONBooleanField(serializers.BooleanField):
    """true or false only: DRF's BooleanField would also take "yes", 1 or "off"."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class CheckSerializer(StrictSerializer):
    step = serializers.IntegerField(min_value=1)
    auto = JSONBooleanField(
        required=False, default=False,
        help_text="The player's automatic check (auto_check labs): a failure is not recorded in the progress.",
    )


# -- views -------------------------------------------------------------------------------------


@extend_schema(
    parameters=[
        OpenApiParameter("q", str, description="words in the title, summary or tags"),
        OpenApiParameter("tag", str), OpenApiParameter("difficulty", str),
    ],
    responses={200: inline_serializer("LabSummary", LAB_SUMMARY_FIELDS, many=True), **ERRORS},
)
@api_view(["GET"])
def labs(request: Request) -> Response:
    params = request.query_params
    found = actions.catalogue(
        query=params.get("q", "").strip(), tag=params.get("tag", "").strip(),
        difficulty=params.get("difficulty", "").strip(),
    )
    return Response([lab_summary(lab) for lab in found])


@extend_schema(methods=["GET"], responses={200: inline_serializer("Lab", {
    **LAB_SUMMARY_FIELDS, "intro": serializers.CharField(help_text="HTML"), "finish": serializers.CharField(help_text="HTML"),
    "steps": serializers.ListField(child=serializers.DictField()), "progress": PROGRESS,
}), **ERRORS})
@api_view(["GET"])
def lab(request: Request, slug: str) -> Response:
    return Response(lab_detail(actions.lab_by_slug(slug=slug), user=request.user))


@extend_schema(request=None, responses={204: None, **ERRORS})
@api_view(["DELETE"])
def lab_progress(request: Request, slug: str) -> Response:
    """Start the lab over: forget the caller's progress in it."""
    actions.reset_progress(user=request.user, lab=actions.lab_by_slug(slug=slug))
    return Response(status=204)


SKIP = inline_serializer("SkipState", {
    "state": serializers.ChoiceField(["queued", "running", "done", "failed"]),
    "to": serializers.IntegerField(), "by": serializers.ChoiceField(["learner", "instructor"]),
    "message": serializers.CharField(), "output": serializers.CharField(help_text="of the script that failed"),
}, allow_null=True)


@extend_schema(responses={200: inline_serializer("SessionLab", {
    "lab": serializers.CharField(), "setup": serializers.DictField(), "progress": PROGRESS, "skip": SKIP,
}), **ERRORS})
@api_view(["GET"])
def session_lab(request: Request, sid: str) -> Response:
    """The lab of a session, how its set-up goes, and the caller's progress."""
    session = session_actions.session_of(user=request.user, session_id=sid)
    run = actions.lab_run_of(session=session)
    return Response({
        "lab": run.lab.slug,
        "setup": {"state": run.setup_state, "output": run.setup_output},
        "progress": actions.progress_of(user=request.user, lab=run.lab),
        "skip": actions.skip_state_of(run),
    })


class SkipSerializer(StrictSerializer):
    step = serializers.IntegerField(min_value=1, help_text="The step to skip to.")


@extend_schema(request=SkipSerializer, responses={202: inline_serializer("SkipQueued", {"skip": SKIP}), **ERRORS})
@api_view(["POST"])
def session_skip(request: Request, sid: str) -> Response:
    """Skip to a step: the solutions of the steps before it not done yet run,
    in order, in the session, then their checks (an extension of docs/api.md)."""
    session = session_actions.session_of(user=request.user, session_id=sid)
    _throttle(ExecThrottle, request)
    body = _body(SkipSerializer, request)
    skip = actions.skip_to(session=session, to=body["step"], user=request.user)
    return Response({"skip": skip}, status=202)


@extend_schema(request=CheckSerializer, responses={200: inline_serializer("CheckResult", {
    "passed": serializers.BooleanField(), "output": serializers.CharField(),
    "hint": serializers.CharField(allow_null=True, help_text="HTML, when the check failed"), "progress": PROGRESS,
}), **ERRORS})
@api_view(["POST"])
def session_check(request: Request, sid: str) -> Response:
    session = session_actions.session_of(user=request.user, session_id=sid)
    # A check is a command run on a lab host, like exec: automatic ones too.
    _throttle(ExecThrottle, request)
    body = _body(CheckSerializer, request)
    result = actions.check_step(user=request.user, session=session, number=body["step"], auto=body["auto"])
    return Response({
        "passed": result.passed,
        "output": result.output,
        "hint": render(result.hint) if result.hint else None,
        "progress": result.progress,
    })
