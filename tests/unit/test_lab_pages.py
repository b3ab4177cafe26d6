"""The lab pages: the catalogue with its filters, a lab's page, and the lab
panel on a lab session's page (fake driver, eager tasks)."""
from __future__ import annotations

import pytest

from playground.labs import actions
from playground.labs.loader import load_lab
from tests.unit.labs_helpers import MINIMAL, write_lab

pytestmark = pytest.mark.django_db


@pytest.fixture
def labs(tmp_path):
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path)))
    other = MINIMAL.replace("title: Hello", "title: Swarms").replace("[basics]", "[docker, swarm]").replace(
        "difficulty: beginner", "difficulty: advanced")
    actions.import_lab(lab_def=load_lab(write_lab(tmp_path, other, name="swarms")))


def test_the_catalogue_lists_labs_for_a_new_guest_and_filters_them(client, labs):
    page = client.get("/labs/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-start-lab="hello"' in text and 'data-start-lab="swarms"' in text
    assert "build/catalogue.js" in text
    assert client.get("/api/labs/").status_code == 200  # the visitor became a guest
    only_swarms = client.get("/labs/?tag=swarm").content.decode()
    assert 'data-start-lab="swarms"' in only_swarms and 'data-start-lab="hello"' not in only_swarms
    beginners = client.get("/labs/?difficulty=beginner&q=hel").content.decode()
    assert 'data-start-lab="hello"' in beginners and 'data-start-lab="swarms"' not in beginners
    assert "No lab matches" in client.get("/labs/?q=nothing-like-this").content.decode()


def test_a_lab_page_shows_its_intro_and_steps_and_an_unknown_one_is_404(client, labs):
    page = client.get("/labs/hello/").content.decode()
    assert "<h1>Hello</h1>" in page and "Write a file" in page and "Look around" in page
    assert client.get("/labs/nope/").status_code == 404


def test_a_lab_session_page_has_the_lab_panel_and_a_plain_one_does_not(client, alice, labs,
                                                                      django_capture_on_commit_callbacks):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        lab_session = actions.start_lab(user=alice, slug="hello")
    page = client.get(f"/sessions/{lab_session.id}/").content.decode()
    assert 'id="lab"' in page and 'data-lab="hello"' in page and "build/lab.js" in page
    from playground.sessions.actions import start_session

    with django_capture_on_commit_callbacks(execute=True):
        plain = start_session(user=alice)
    page = client.get(f"/sessions/{plain.id}/").content.decode()
    assert 'id="lab"' not in page and "build/lab.js" not in page


def test_the_admin_shows_a_lab_with_a_preview_of_its_markdown(client, labs, django_user_model):
    from playground.labs.models import Lab

    client.force_login(django_user_model.objects.create_superuser("ada", password="x" * 12))
    lab = Lab.objects.get(slug="hello")
    page = client.get(f"/admin/labs/lab/{lab.pk}/change/").content.decode()
    assert "Intro (preview)" in page and "<h1>Hello</h1>" in page
    assert '<pre class="lab-code" data-run="node1"><code class="language-bash">touch /root/hello' in page
