"""The "open port" endpoint: a link to any port of an instance (an extension
of docs/api.md: ``POST /api/sessions/{sid}/instances/{iid}/ports/``)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from playground.sessions import actions as session_actions
from playground.sessions.api import ERRORS, PortSerializer, StrictSerializer, _body

from . import actions


class OpenPortSerializer(StrictSerializer):
    port = serializers.IntegerField(min_value=1, max_value=65535)


@extend_schema(request=OpenPortSerializer, responses={200: PortSerializer, **ERRORS})
@api_view(["POST"])
def open_port(request: Request, sid: str, iid: str) -> Response:
    instance = session_actions.instance_of(user=request.user, session_id=sid, instance_id=iid)
    body = _body(OpenPortSerializer, request)
    return Response(actions.open_port(instance=instance, port=body["port"]))
