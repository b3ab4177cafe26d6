"""The JSON API of sessions and instances (docs/api.md). Views validate and call actions."""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    parser_classes,
    permission_classes,
    throttle_classes,
)
from rest_framework.exceptions import Throttled
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from playground.accounts.actions import is_guest
from playground.accounts.addresses import client_address
from playground.accounts.throttles import AddressThrottle, failures_wait, note_failure
from playground.errors import Invalid, NotFoundError

from . import actions
from .models import Instance, Session

# -- serializers ------------------------------------------------------------------------


class PortSerializer(serializers.Serializer):
    port = serializers.IntegerField()
    url = serializers.CharField()


class StatsSerializer(serializers.Serializer):
    cpu_percent = serializers.FloatField(allow_null=True)
    memory_bytes = serializers.IntegerField()
    memory_limit_bytes = serializers.IntegerField()


class InstanceSerializer(serializers.ModelSerializer):
    terminal = serializers.CharField(source="terminal_path", read_only=True)
    ports = serializers.SerializerMethodField()
    stats = serializers.SerializerMethodField()

    class Meta:
        model = Instance
        fields = ["id", "hostname", "ip", "image", "state", "terminal", "ports", "stats", "reason"]

    @extend_schema_field(PortSerializer(many=True))
    def get_ports(self, instance: Instance) -> list[dict]:
        from playground.ports.actions import ports_of

        return ports_of(instance)

    @extend_schema_field(StatsSerializer(allow_null=True))
    def get_stats(self, instance: Instance) -> dict | None:
        from playground.stats.actions import stats_of

        return stats_of(instance)


class SessionSerializer(serializers.ModelSerializer):
    instances = serializers.SerializerMethodField()
    lab = serializers.SerializerMethodField()
    classroom = serializers.SerializerMethodField()
    template = serializers.SerializerMethodField()

    class Meta:
        model = Session
        fields = ["id", "state", "created_at", "expires_at", "lab", "classroom", "instances", "reason", "extensions",
                  "template", "setup"]

    @extend_schema(responses=InstanceSerializer(many=True))
    def get_instances(self, session: Session) -> list[dict]:
        return InstanceSerializer(session.instances.all(), many=True).data

    def get_lab(self, session: Session) -> str | None:
        run = getattr(session, "lab_run", None)  # the labs app's link, when started for a lab
        return run.lab.slug if run is not None else None

    def get_classroom(self, session: Session) -> str | None:
        seat = getattr(session, "seat", None)  # the classes app's link, when joined through a class
        return seat.classroom_id if seat is not None else None

    def get_template(self, session: Session) -> str | None:
        return session.template or None


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error, not a silent default."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["the body must be a JSON object"]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: "unknown field" for name in unknown})
        # DRF's CharField takes a number and makes it text: {"command": 123}
        # would run "123". A text field takes text only.
        not_text = sorted(
            name for name, field in self.fields.items()
            if isinstance(field, serializers.CharField) and name in data
            and data[name] is not None and not isinstance(data[name], str)
        )
        if not_text:
            raise serializers.ValidationError({name: "must be a string" for name in not_text})
        return super().to_internal_value(data)


class StrictSerializerSchema(OpenApiSerializerExtension):
    """Says so in the schema too (``additionalProperties: false``), so clients
    and fuzzers generated from it send only known fields."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        return schema


class SessionCreateSerializer(StrictSerializer):
    image = serializers.CharField(required=False, max_length=64)
    template = serializers.CharField(required=False, max_length=64)
    lab = serializers.CharField(required=False, max_length=100)
    join_code = serializers.CharField(required=False, max_length=64)
    display_name = serializers.CharField(required=False, max_length=80, help_text="With join_code: your name in the class.")


class InstanceCreateSerializer(StrictSerializer):
    image = serializers.CharField(required=False, max_length=64)


class ExecSerializer(StrictSerializer):
    command = serializers.CharField(max_length=64 * 1024, trim_whitespace=False)
    # The maximum is also in the schema (read at start-up); the check below
    # follows the setting as it is now.
    timeout = serializers.FloatField(required=False, min_value=0.1, default=30.0,
                                     max_value=settings.PLAYGROUND_EXEC_MAX_TIMEOUT)

    def validate_timeout(self, value: float) -> float:
        if value > settings.PLAYGROUND_EXEC_MAX_TIMEOUT:
            raise serializers.ValidationError(f"at most {settings.PLAYGROUND_EXEC_MAX_TIMEOUT} s")
        return value


def _body(serializer_class, request: Request) -> dict:
    # An empty body is an empty object: every field of these bodies is optional.
    data = request.data if request.data not in (None, "") else {}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# -- throttles -------------------------------------------------------------------------------


class SessionCreateThrottle(SimpleRateThrottle):
    """Session creation per user, harder for guests."""

    kind = "session_create"

    def get_rate(self):  # the scope depends on the caller, so the rate is looked up late
        return None

    def allow_request(self, request, view) -> bool:
        self.scope = f"{self.kind}_guest" if is_guest(request.user) else f"{self.kind}_user"
        self.rate = self.THROTTLE_RATES[self.scope]
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class ExecThrottle(SessionCreateThrottle):
    """Commands run through the API (exec), per user, harder for guests: each
    one is a process on a lab host."""

    kind = "exec"


class InstanceCreateThrottle(SessionCreateThrottle):
    """Instances added to a session, per user, harder for guests: each one is
    a container on a lab host, as a new session is."""

    kind = "instance_create"


class GuestAddressThrottle(AddressThrottle):
    """Session creation by guests, per client address: a new guest is one
    cookie-less request away, so the per-guest rate alone bounds nothing.
    Generous (a class of guests may share one NAT); the address comes from
    the connection, or from X-Forwarded-For only as far as
    PLAYGROUND_TRUSTED_PROXIES proxies vouch for it."""

    scope = "session_create_guest_address"

    def allow_request(self, request, view) -> bool:
        if not is_guest(request.user):
            return True
        return super().allow_request(request, view)


def _throttle(throttle_class, request: Request) -> None:
    throttle = throttle_class()
    if not throttle.allow_request(request, None):
        from rest_framework.exceptions import Throttled

        raise Throttled(wait=throttle.wait())


# -- views ------------------------------------------------------------------------------------

ERRORS = {code: OpenApiResponse(description=text) for code, text in {
    400: "invalid", 401: "unauthenticated", 404: "not_found", 409: "limit_reached / not_ready",
    410: "session_over", 429: "rate_limited", 503: "no_capacity",
}.items()}


def _session_json(session: Session) -> dict:
    return SessionSerializer(session).data


@extend_schema(methods=["GET"], responses={200: SessionSerializer(many=True), **ERRORS})
@extend_schema(methods=["POST"], request=SessionCreateSerializer, responses={201: SessionSerializer, **ERRORS})
@api_view(["GET", "POST"])
def sessions(request: Request) -> Response:
    if request.method == "GET":
        mine = list(Session.objects.filter(owner=request.user).prefetch_related("instances"))
        actions.note_watched(session_ids=[s.id for s in mine if s.is_live])
        return Response([_session_json(s) for s in mine])
    _throttle(SessionCreateThrottle, request)
    _throttle(GuestAddressThrottle, request)
    body = _body(SessionCreateSerializer, request)
    if body.get("join_code"):
        if body.get("template") or body.get("lab") or body.get("image"):
            raise Invalid("Give a join_code alone: the class decides the lab and its images.")
        from playground.classrooms import actions as class_actions

        wait = failures_wait("join_address", request)  # wrong codes per address, as on /join/
        if wait is not None:
            raise Throttled(wait=wait)
        try:
            session, created = class_actions.join(
                user=request.user, code=body["join_code"], display_name=body.get("display_name", "")
            )
        except NotFoundError:
            note_failure("join_address", request)
            raise
        return Response(_session_json(session), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
    if body.get("template") and (body.get("image") or body.get("lab")):
        raise Invalid("Give a template alone: it decides the images.")
    if body.get("lab"):
        from playground.labs import actions as lab_actions

        if body.get("image"):
            raise Invalid("Give either lab or image: a lab decides its images.")
        session = lab_actions.start_lab(user=request.user, slug=body["lab"], address=client_address(request))
    elif body.get("template"):
        session = actions.start_template_session(user=request.user, template=body["template"],
                                                 address=client_address(request))
    else:
        session = actions.start_session(user=request.user, image=body.get("image"), address=client_address(request))
    return Response(_session_json(session), status=status.HTTP_201_CREATED)


@extend_schema(methods=["GET"], responses={200: SessionSerializer, **ERRORS})
@extend_schema(methods=["DELETE"], responses={204: None, **ERRORS})
@api_view(["GET", "DELETE"])
def session_detail(request: Request, sid: str) -> Response:
    session = actions.session_of(user=request.user, session_id=sid)
    if request.method == "DELETE":
        actions.end_session(session=session)
        return Response(status=status.HTTP_204_NO_CONTENT)
    if session.is_live:
        actions.note_watched(session_ids=[session.id])
    return Response(_session_json(session))


@extend_schema(request=None, responses={200: SessionSerializer, **ERRORS})
@api_view(["POST"])
def session_extend(request: Request, sid: str) -> Response:
    session = actions.session_of(user=request.user, session_id=sid)
    return Response(_session_json(actions.extend_session(session=session)))


@extend_schema(request=InstanceCreateSerializer, responses={201: InstanceSerializer, **ERRORS})
@api_view(["POST"])
def instances(request: Request, sid: str) -> Response:
    _throttle(InstanceCreateThrottle, request)
    session = actions.session_of(user=request.user, session_id=sid)
    body = _body(InstanceCreateSerializer, request)
    instance = actions.add_instance(session=session, image=body.get("image"), address=client_address(request))
    return Response(InstanceSerializer(instance).data, status=status.HTTP_201_CREATED)


@extend_schema(responses={204: None, **ERRORS})
@api_view(["DELETE"])
def instance_detail(request: Request, sid: str, iid: str) -> Response:
    instance = actions.instance_of(user=request.user, session_id=sid, instance_id=iid)
    actions.remove_instance(instance=instance)
    return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    request=ExecSerializer,
    responses={200: inline_serializer("ExecResult", {"exit_code": serializers.IntegerField(), "output": serializers.CharField()}), **ERRORS},
)
@api_view(["POST"])
def instance_exec(request: Request, sid: str, iid: str) -> Response:
    _throttle(ExecThrottle, request)
    instance = actions.instance_of(user=request.user, session_id=sid, instance_id=iid)
    body = _body(ExecSerializer, request)
    result = actions.exec_command(instance=instance, command=body["command"], timeout=body["timeout"])
    return Response({"exit_code": result.exit_code, "output": result.output.decode("utf-8", "replace")})


class RawBodyParser(BaseParser):
    """Hands the view the request stream; the view reads it with a size cap."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream


def _read_capped(request: Request) -> bytes:
    limit = settings.PLAYGROUND_MAX_FILE_BYTES
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Invalid(f"The file is larger than the limit of {limit} bytes.")
    # Django's HttpRequest.read() streams the body without the form-data cap.
    raw = request._request
    chunks, size = [], 0
    while chunk := raw.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise Invalid(f"The file is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


PATH_PARAM = OpenApiParameter("path", str, required=True, description="absolute path in the instance")
PUT_PATH_PARAM = OpenApiParameter("path", str, required=False, description="absolute path in the instance; or give name")
NAME_PARAM = OpenApiParameter(
    "name", str, required=False,
    description="PUT only, instead of path: a plain file name, written into the current directory of the instance's shell",
)


@extend_schema(
    methods=["PUT"], parameters=[PUT_PATH_PARAM, NAME_PARAM],
    request={"application/octet-stream": bytes},
    responses={201: inline_serializer("FileWritten", {"path": serializers.CharField(), "size": serializers.IntegerField()}), **ERRORS},
)
@extend_schema(methods=["GET"], parameters=[PATH_PARAM], responses={(200, "application/octet-stream"): bytes, **ERRORS})
@api_view(["GET", "PUT"])
@parser_classes([RawBodyParser])
def instance_files(request: Request, sid: str, iid: str):
    from django.http import HttpResponse

    instance = actions.instance_of(user=request.user, session_id=sid, instance_id=iid)
    path = request.query_params.get("path")
    if request.method == "PUT":
        name = request.query_params.get("name")
        if path is None and name is not None:
            # ?name= writes into the current directory of the instance's shell.
            actions.check_file_name(name)
            data = _read_capped(request)
            path, size = actions.put_file_in_cwd(instance=instance, name=name, data=data)
            return Response({"path": path, "size": size}, status=status.HTTP_201_CREATED)
        data = _read_capped(request)
        size = actions.put_file(instance=instance, path=path, data=data)
        return Response({"path": path, "size": size}, status=status.HTTP_201_CREATED)
    data = actions.get_file(instance=instance, path=path)
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{path.rsplit("/", 1)[-1]}"'
    return response


@extend_schema(responses=inline_serializer("Image", {"name": serializers.CharField(), "description": serializers.CharField()}, many=True))
@api_view(["GET"])
def images(request: Request) -> Response:
    return Response(actions.images())


@extend_schema(responses=inline_serializer("Template", {"name": serializers.CharField(), "description": serializers.CharField(), "instances": serializers.IntegerField()}, many=True))
@api_view(["GET"])
def templates(request: Request) -> Response:
    return Response(actions.templates())


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
@authentication_classes([])
@throttle_classes([])
def healthz(request: Request) -> Response:
    from playground.health import report

    body, healthy = report()
    return Response(body, status=200 if healthy else 503)
