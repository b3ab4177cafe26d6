"""The lab pages: the catalogue (search, filter by tag and difficulty) and one
lab's page with its intro and a Start button. The lab itself is followed on
its session's page (templates/labs/_panel.html, frontend/src/lab.ts)."""
from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import ensure_csrf_cookie

from playground.accounts.actions import create_guest
from playground.errors import NotFoundError

from . import actions
from .markdown import render as render_markdown
from .models import Lab


def _visitor(request: HttpRequest) -> None:
    if not request.user.is_authenticated and settings.PLAYGROUND_ALLOW_GUESTS:
        create_guest(request=request)


@ensure_csrf_cookie
def catalogue(request: HttpRequest) -> HttpResponse:
    _visitor(request)
    query = request.GET.get("q", "").strip()
    tag = request.GET.get("tag", "").strip()
    difficulty = request.GET.get("difficulty", "").strip()
    labs = actions.catalogue(query=query, tag=tag, difficulty=difficulty)
    every_tag = sorted({t for lab in actions.catalogue() for t in lab.tags})
    done = {}
    if request.user.is_authenticated:
        done = {lab.slug: actions.progress_of(user=request.user, lab=lab) for lab in labs}
    return render(request, "labs/catalogue.html", {
        "labs": [(lab, done.get(lab.slug)) for lab in labs],
        "query": query, "tag": tag, "difficulty": difficulty,
        "tags": every_tag, "difficulties": Lab.Difficulty.choices,
    })


@ensure_csrf_cookie
def lab_page(request: HttpRequest, slug: str) -> HttpResponse:
    _visitor(request)
    try:
        lab = actions.lab_by_slug(slug=slug)
    except NotFoundError:
        raise Http404("No such lab.") from None
    progress = actions.progress_of(user=request.user, lab=lab) if request.user.is_authenticated else None
    return render(request, "labs/lab.html", {
        "lab": lab,
        "steps": lab.steps.all(),
        # Rendered by markdown.render, which escapes raw HTML: safe to show.
        "intro": mark_safe(render_markdown(lab.intro, instance=lab.default_instance)),
        "progress": progress,
    })
