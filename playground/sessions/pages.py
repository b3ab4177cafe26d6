"""Server-rendered pages. The browser terminal arrives with the next slice."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from playground.accounts.actions import create_guest

from .models import Session


@ensure_csrf_cookie
def landing(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated and settings.PLAYGROUND_ALLOW_GUESTS:
        create_guest(request=request)
    live = []
    if request.user.is_authenticated:
        live = Session.objects.filter(owner=request.user, state__in=Session.LIVE_STATES).prefetch_related("instances")
    return render(request, "play_sessions/landing.html", {"sessions": live})
