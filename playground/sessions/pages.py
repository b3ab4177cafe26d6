"""Server-rendered pages: the landing page and a session's page. Each loads
one small script from the front-end bundle (frontend/, built into static/build/)."""
from __future__ import annotations

import json

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from playground.accounts.actions import create_guest, is_guest
from playground.errors import NotFoundError

from . import actions
from .api import SessionSerializer
from .models import Session

# The session page warns this long before a session's hard end.
EXPIRY_WARNING_SECONDS = 5 * 60


@ensure_csrf_cookie
def landing(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated and settings.PLAYGROUND_ALLOW_GUESTS:
        create_guest(request=request)
    live = []
    if request.user.is_authenticated:
        live = Session.objects.filter(owner=request.user, state__in=Session.LIVE_STATES).prefetch_related("instances")
    return render(request, "play_sessions/landing.html", {
        "sessions": live,
        "is_guest": is_guest(request.user),
        "lifetime_hours": round(settings.PLAYGROUND_SESSION_LIFETIME / 3600, 1),
        "idle_minutes": settings.PLAYGROUND_IDLE_TIMEOUT // 60,
        "max_instances": settings.PLAYGROUND_MAX_INSTANCES,
        "max_extensions": settings.PLAYGROUND_MAX_EXTENSIONS,
        "start_choices": _start_choices(),
    })


def _start_choices() -> list[dict]:
    """Images besides the default one, then templates, as landing-page buttons."""
    choices = [
        {"label": f"{image['name']} image", "description": image["description"],
         "body": json.dumps({"image": image["name"]})}
        for image in actions.images() if image["name"] != settings.PLAYGROUND_DEFAULT_IMAGE
    ]
    choices += [
        {"label": template["name"], "description": template["description"],
         "body": json.dumps({"template": template["name"]})}
        for template in actions.templates()
    ]
    return choices


@ensure_csrf_cookie
def session_page(request: HttpRequest, sid: str) -> HttpResponse:
    """The owner's page of one session; anyone else gets the same 404 as for a missing id."""
    if not request.user.is_authenticated:
        raise Http404("No such session.")
    try:
        session = actions.session_of(user=request.user, session_id=sid)
    except NotFoundError:
        raise Http404("No such session.") from None
    return render(request, "play_sessions/session.html", {
        "session": session,
        "session_data": SessionSerializer(session).data,
        "seat": getattr(session, "seat", None),  # the classes app's link, when joined through a class
        "max_instances": actions.instance_cap(session),
        "max_extensions": settings.PLAYGROUND_MAX_EXTENSIONS,
        "extension_seconds": settings.PLAYGROUND_EXTENSION,
        "extension_minutes": settings.PLAYGROUND_EXTENSION // 60,
        "warn_seconds": EXPIRY_WARNING_SECONDS,
        "max_file_bytes": settings.PLAYGROUND_MAX_FILE_BYTES,
    })
