"""An instructor signs in, creates a class with the form, finds it in "My
classes", opens its dashboard; a learner in another browser joins with the
code the list shows, and the dashboard and the list count them."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import VIEWPORT, running_stack
from tests.e2e.screens import READY, SessionPage
from tests.stack import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

PASSWORD = "correct horse battery staple"
SET_PASSWORD = f"""
from django.contrib.auth import get_user_model
user = get_user_model().objects.get(username="form-teacher")
user.set_password({PASSWORD!r})
user.save()
"""


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory, engine, bundle_built):
    """A stack of this file's own (Redis database 50), so that it runs beside
    the other end-to-end files without taking their Celery tasks."""
    yield from running_stack(engine, tmp_path_factory.mktemp("class-create-stack"), redis_db=50)


def test_an_instructor_creates_a_class_with_the_form_and_a_learner_joins_with_its_code(own_stack, browser):
    stack = own_stack
    stack.manage("import_labs", str(ROOT / "labs" / "what-is-a-container"))
    stack.manage("create_api_token", "--instructor", "form-teacher")
    stack.manage("shell", "-c", SET_PASSWORD)
    errors: list[str] = []
    instructor = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    learner = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    for ctx in (instructor, learner):
        ctx.set_default_timeout(30_000)
        ctx.on("weberror", lambda error: errors.append(str(error.error)))
    try:
        # "My classes" asks to sign in first, then comes back.
        teach = instructor.new_page()
        teach.goto("/classrooms/")
        teach.wait_for_url(re.compile(r"/accounts/login/\?next=/classrooms/"))
        teach.get_by_label("Username").fill("form-teacher")
        teach.get_by_label("Password").fill(PASSWORD)
        teach.get_by_role("button", name="Sign in").click()
        teach.wait_for_url(re.compile(r"/classrooms/$"))
        assert teach.locator("#no-classes").is_visible()

        # The form: a mistake is explained beside its field, then the class is made.
        teach.get_by_role("link", name="New class").click()
        teach.wait_for_url(re.compile(r"/classrooms/new/$"))
        now = datetime.now(UTC)  # the stack's server timezone is UTC
        teach.get_by_label("Title", exact=True).fill("Containers, afternoon")
        teach.get_by_label("Lab", exact=True).select_option("what-is-a-container")
        teach.get_by_label("Seats", exact=True).fill("0")
        teach.get_by_label("Starts", exact=True).fill((now - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M"))
        teach.get_by_label("Ends", exact=True).fill((now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
        teach.get_by_role("button", name="Create the class").click()
        assert teach.locator("#seats-error").inner_text() == "A class needs at least one seat."
        teach.get_by_label("Seats", exact=True).fill("5")
        teach.get_by_role("button", name="Create the class").click()
        teach.wait_for_url(re.compile(r"/classrooms/[0-9a-f]+/$"))
        cid = teach.url.rstrip("/").rsplit("/", 1)[1]
        assert teach.locator("h1").inner_text() == "Containers, afternoon"
        teach.locator("#live-status.live").wait_for()

        # It is listed, open, with its code and invite link to copy.
        teach.get_by_role("link", name="My classes").click()
        row = teach.locator(f".class-row[data-classroom-id='{cid}']")
        row.wait_for()
        assert row.locator(".class-state").inner_text() == "open"
        assert row.locator(".class-seats").inner_text() == "0 / 5"
        code = row.locator(".class-code").input_value()
        assert re.fullmatch(r"[A-Z2-9]{8}", code)
        assert re.fullmatch(rf"{re.escape(stack.url)}/join/\w+/", row.locator(".class-invite").input_value())
        row.get_by_role("link", name="Dashboard").click()
        teach.wait_for_url(re.compile(rf"/classrooms/{cid}/$"))
        teach.locator("#live-status.live").wait_for()
        assert teach.locator("#roster-empty").is_visible()

        # A learner, in a browser of their own, types the code from the list.
        join = learner.new_page()
        join.goto("/join/")
        join.get_by_label("Join code").fill(code)
        join.get_by_label("Your name in the class").fill("Lin")
        join.get_by_role("button", name="Join").click()
        join.wait_for_url(re.compile(r"/sessions/[0-9a-f]+/"), timeout=READY * 1000)
        SessionPage(join).terminal().wait_for_prompt()
        teach.locator(".learner-row[data-learner='Lin']").wait_for(timeout=READY * 1000)

        teach.goto("/classrooms/")
        assert teach.locator(f".class-row[data-classroom-id='{cid}'] .class-seats").inner_text() == "1 / 5"
    finally:
        learner.close()
        instructor.close()
    assert not errors, f"uncaught errors in the pages: {errors}"
