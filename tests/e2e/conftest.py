"""End-to-end tests: Debian's Chromium, driven by Playwright, against the real
playground (Daphne, Celery, Redis, the lab-host engine; tests/stack.py).

The browser is Debian's (`apt-get install chromium`): Playwright's own browser
downloads are not reachable, so the driver launches /usr/bin/chromium."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.stack import ENGINE, ROOT, Stack, wait_for

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def bundle_built() -> None:
    """The page scripts come from static/build/; build them if they are stale."""
    subprocess.run([str(ROOT / "scripts" / "build-frontend.sh")], check=True, cwd=ROOT)


@pytest.fixture(scope="session")
def engine():
    import docker

    client = docker.APIClient(base_url=ENGINE, version="1.41", timeout=30)
    client.ping()
    return client


def _labelled(engine, deployment: str) -> tuple[list, list]:
    selector = {"label": f"playground.deployment={deployment}"}
    return engine.containers(all=True, filters=selector), engine.networks(filters=selector)


END_EVERY_SESSION = """
from playground.classrooms import actions as class_actions
from playground.classrooms.models import Classroom
for classroom in Classroom.objects.filter(ended_at__isnull=True):
    class_actions.end_classroom(classroom=classroom)
from playground.sessions import actions
from playground.sessions.models import Session
for session in Session.objects.filter(state__in=Session.LIVE_STATES):
    actions.end_session(session=session, reason="end of the end-to-end tests")
"""


def running_stack(engine, workdir, *, redis_db: int, env: dict[str, str] | None = None):
    """A Stack started in ``workdir``, for a fixture to ``yield from``; at the
    end every session and class is ended, and nothing labelled with the
    stack's deployment may remain on the engine (whatever does is removed,
    after the test failed).

    Each stack needs a Redis database of its own: stacks sharing one take each
    other's Celery tasks."""
    running = Stack(workdir, redis_db=redis_db, env=env)
    try:
        running.start()
    except BaseException:
        running.stop()  # a stack that failed to start must not live on
        raise
    yield running
    try:
        running.manage("shell", "-c", END_EVERY_SESSION)
        wait_for(lambda: not any(_labelled(engine, running.deployment)), timeout=30,
                 what="no labelled container or network to remain after every session ended")
    finally:
        running.stop()
        containers, networks = _labelled(engine, running.deployment)
        for container in containers:
            engine.remove_container(container["Id"], force=True, v=True)
        for network in networks:
            engine.remove_network(network["Id"])


# Package scope: the stack and the browser go when the last end-to-end test is
# done. (Playwright's sync API keeps an event loop running in the main thread
# while it is open, which tests after these, calling asyncio.run, cannot bear.)
@pytest.fixture(scope="package")
def stack(tmp_path_factory, engine, bundle_built):
    """The playground, running for real, shared by the end-to-end tests.

    Its own Redis database (15; the integration stacks use 11 to 13, the
    benchmarks 14), so it may run beside them."""
    yield from running_stack(engine, tmp_path_factory.mktemp("e2e-stack"), redis_db=15)


@pytest.fixture(scope="package")
def browser():
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def page_on(browser, stack, **options):
    """A page in a fresh browser profile on ``stack`` (a module's own), for a
    fixture to ``yield from``; uncaught errors in the page fail the test.
    ``options`` go to ``new_context`` (``accept_downloads=True``, say)."""
    ctx = browser.new_context(base_url=stack.url, viewport=VIEWPORT, **options)
    ctx.set_default_timeout(30_000)
    errors: list[str] = []
    ctx.on("weberror", lambda error: errors.append(str(error.error)))
    yield ctx.new_page()
    ctx.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def context(browser, stack, request):
    """A fresh browser profile: a new guest of the playground."""
    ctx = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    ctx.set_default_timeout(30_000)
    errors: list[str] = []
    ctx.on("weberror", lambda error: errors.append(str(error.error)))
    yield ctx
    try:
        _end_sessions_of(ctx)
    finally:
        ctx.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def _end_sessions_of(ctx) -> None:
    csrf = next((c["value"] for c in ctx.cookies() if c["name"] == "csrftoken"), "")
    answer = ctx.request.get("/api/sessions/")
    if not answer.ok:
        return
    for session in answer.json():
        if session["state"] in {"starting", "running"}:
            ctx.request.delete(f"/api/sessions/{session['id']}/", headers={"X-CSRFToken": csrf}, timeout=60_000)


@pytest.fixture
def page(context):
    return context.new_page()
