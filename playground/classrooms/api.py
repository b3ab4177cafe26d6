"""The classes' HTTP API (docs/api.md): thin views over ``actions``."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from playground.sessions.actions import session_of
from playground.sessions.api import ERRORS, StrictSerializer, _body

from . import actions
from .models import Classroom


class ClassroomSerializer(serializers.ModelSerializer):
    lab = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    invite_url = serializers.SerializerMethodField()
    learners = serializers.SerializerMethodField()

    class Meta:
        model = Classroom
        fields = ["id", "title", "lab", "seats", "starts_at", "ends_at", "join_code", "invite_url", "learners",
                  "ended_at", "max_instances", "session_lifetime"]

    def get_invite_url(self, classroom: Classroom) -> str:
        request = self.context.get("request")
        path = f"/join/{classroom.invite_token}/"
        return request.build_absolute_uri(path) if request is not None else path

    def get_learners(self, classroom: Classroom) -> int:
        return actions.learner_count(classroom)


class ClassroomCreateSerializer(StrictSerializer):
    title = serializers.CharField(max_length=120)
    lab = serializers.SlugField(max_length=64)
    seats = serializers.IntegerField(min_value=1, max_value=actions.CLASS_MAX_SEATS)
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    max_instances = serializers.IntegerField(required=False, min_value=1, max_value=actions.CLASS_MAX_INSTANCES)
    session_lifetime = serializers.IntegerField(required=False, min_value=actions.CLASS_MIN_LIFETIME,
                                                max_value=actions.CLASS_MAX_LIFETIME)


RosterEntry = inline_serializer("RosterEntry", {
    "learner": serializers.CharField(), "session": serializers.CharField(allow_null=True),
    "step": serializers.IntegerField(allow_null=True), "checks_passed": serializers.IntegerField(),
    "checks_failed": serializers.IntegerField(), "last_activity": serializers.DateTimeField(allow_null=True),
    "stuck": serializers.BooleanField(), "hand_raised": serializers.BooleanField(),
    "skipped": serializers.ListField(child=serializers.IntegerField(), help_text="steps skipped, not passed"),
    "skip": serializers.DictField(allow_null=True, help_text="the session's skip job, as GET .../lab/ shows it"),
}, many=True)


def _json(classroom: Classroom, request: Request) -> dict:
    return ClassroomSerializer(classroom, context={"request": request}).data


@extend_schema(methods=["GET"], responses={200: ClassroomSerializer(many=True), **ERRORS})
@extend_schema(methods=["POST"], request=ClassroomCreateSerializer, responses={201: ClassroomSerializer, **ERRORS})
@api_view(["GET", "POST"])
def classrooms(request: Request) -> Response:
    if request.method == "GET":
        return Response([_json(c, request) for c in actions.classrooms_of(user=request.user)])
    body = _body(ClassroomCreateSerializer, request)
    classroom = actions.create_classroom(user=request.user, **body)
    return Response(_json(classroom, request), status=status.HTTP_201_CREATED)


@extend_schema(methods=["GET"], responses={200: ClassroomSerializer, **ERRORS})
@extend_schema(methods=["DELETE"], responses={204: None, **ERRORS})
@api_view(["GET", "DELETE"])
def classroom_detail(request: Request, cid: str) -> Response:
    classroom = actions.classroom_of(user=request.user, classroom_id=cid)
    if request.method == "DELETE":
        actions.end_classroom(classroom=classroom, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(_json(classroom, request))


@extend_schema(responses={200: RosterEntry, **ERRORS})
@api_view(["GET"])
def roster(request: Request, cid: str) -> Response:
    classroom = actions.classroom_of(user=request.user, classroom_id=cid)
    return Response([{k: v for k, v in e.items() if k != "key"}
                     for e in actions.roster_json(actions.roster(classroom=classroom))])


class HandSerializer(StrictSerializer):
    raised = serializers.BooleanField()


@extend_schema(request=HandSerializer, responses={200: inline_serializer("HandState", {"raised": serializers.BooleanField()}), **ERRORS})
@api_view(["POST"])
def hand(request: Request, sid: str) -> Response:
    """Raise or lower the learner's hand in their class (an extension of docs/api.md)."""
    session = session_of(user=request.user, session_id=sid)
    learner = actions.raise_hand(user=request.user, session=session, raised=_body(HandSerializer, request)["raised"])
    return Response({"raised": learner.hand_raised})


class MessageSerializer(StrictSerializer):
    text = serializers.CharField(max_length=2000)


@extend_schema(request=MessageSerializer, responses={200: inline_serializer("Sent", {"sent": serializers.IntegerField()}), **ERRORS})
@api_view(["POST"])
def message(request: Request, cid: str) -> Response:
    """A message on every learner's page (an extension of docs/api.md)."""
    classroom = actions.classroom_of(user=request.user, classroom_id=cid)
    sent = actions.broadcast(classroom=classroom, text=_body(MessageSerializer, request)["text"], user=request.user)
    return Response({"sent": sent})


class TimeSerializer(StrictSerializer):
    minutes = serializers.IntegerField(min_value=1, max_value=24 * 60)
    session = serializers.CharField(required=False, max_length=64, help_text="One learner's session; none: everyone's.")


@extend_schema(request=TimeSerializer, responses={200: inline_serializer("TimeGiven", {"extended": serializers.IntegerField()}), **ERRORS})
@api_view(["POST"])
def extra_time(request: Request, cid: str) -> Response:
    """More time for one learner or for all (an extension of docs/api.md)."""
    classroom = actions.classroom_of(user=request.user, classroom_id=cid)
    body = _body(TimeSerializer, request)
    extended = actions.give_time(classroom=classroom, minutes=body["minutes"], user=request.user,
                                 session_id=body.get("session"))
    return Response({"extended": extended})


class FastForwardSerializer(StrictSerializer):
    step = serializers.IntegerField(min_value=1)
    session = serializers.CharField(required=False, max_length=64, help_text="One learner's session; none: everyone's.")


@extend_schema(request=FastForwardSerializer, responses={200: inline_serializer("FastForwarded", {
    "learners": serializers.ListField(child=serializers.DictField()),
}), **ERRORS})
@api_view(["POST"])
def fast_forward(request: Request, cid: str) -> Response:
    """Skip one learner or every learner to a step, as far as the lab allows (an extension of docs/api.md)."""
    classroom = actions.classroom_of(user=request.user, classroom_id=cid)
    body = _body(FastForwardSerializer, request)
    learners = actions.fast_forward(classroom=classroom, step=body["step"], user=request.user,
                                    session_id=body.get("session"))
    return Response({"learners": learners})
