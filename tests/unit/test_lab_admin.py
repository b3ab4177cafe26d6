"""The labs in the admin: an instructor editing a lab sees its intro, steps
and finish rendered and sanitised by the player's renderer, each step's
preview beside its Markdown, and how to check the lab's folder for real."""
from __future__ import annotations

import json

import pytest

from playground.labs import actions
from playground.labs.loader import load_lab
from playground.labs.models import Lab
from tests.unit.labs_helpers import write_lab

pytestmark = pytest.mark.django_db

INJECTED = "<script>alert('lab')</script>"

LAB = """\
title: Hello
summary: Say hello.
duration: 5
difficulty: beginner
environment:
  instances:
    - name: node1
      image: shell
    - name: node2
      image: shell
steps:
  - title: Write a file
    text: step1.md
    check: test -f /root/hello
    hint: "Use `touch /root/hello`."
  - title: Serve it
    text: step2.md
    instance: node2
"""


@pytest.fixture
def instructor(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ada", password="x" * 12))
    return client


@pytest.fixture
def lab(tmp_path) -> Lab:
    folder = write_lab(tmp_path / "my labs", LAB, {
        "intro.md": f"# Hello\n\n{INJECTED}\n\n[a trap](javascript:alert(1))\n",
        "finish.md": "**Well done.**\n",
        "step1.md": "Run:\n\n```bash\ntouch /root/hello\n```\n",
        "step2.md": "Stop it first:\n\n```bash interrupt\npython3 -m http.server 8080\n```\n\nOpen {{url node2 8080}}.\n",
    })
    actions.import_lab(lab_def=load_lab(folder))
    return Lab.objects.get(slug="hello")


def change_page(client, lab: Lab) -> str:
    answer = client.get(f"/admin/labs/lab/{lab.pk}/change/")
    assert answer.status_code == 200
    return answer.content.decode()


def test_the_change_page_previews_intro_steps_and_finish_as_the_player_renders_them(instructor, lab):
    page = change_page(instructor, lab)
    assert "<h1>Hello</h1>" in page and "<strong>Well done.</strong>" in page
    assert '<pre class="lab-code" data-run="node1"><code class="language-bash">touch /root/hello' in page
    # Step 2 runs on its own instance, and its block stops what runs first.
    assert '<pre class="lab-code" data-run="node2" data-interrupt="1"><code class="language-bash">python3 -m' in page
    assert '<span class="lab-port" data-port="node2:8080">port 8080 of node2</span>' in page
    assert "<strong>Hint</strong> <p>Use <code>touch /root/hello</code>.</p>" in page
    # Beside each step's Markdown in the inline, and all together in "Texts".
    assert page.count('<pre class="lab-code" data-run="node2" data-interrupt="1">') == 2


def test_the_preview_escapes_raw_html_and_drops_javascript_links(instructor, lab):
    page = change_page(instructor, lab)
    assert INJECTED not in page
    assert '<div class="lab-preview"><h1>Hello</h1>\n<p>&lt;script&gt;alert(\'lab\')&lt;/script&gt;</p>' in page
    assert 'href="javascript:' not in page


def test_the_change_page_says_how_to_check_the_labs_folder(instructor, lab):
    page = change_page(instructor, lab)
    assert "Check this lab:" in page
    # The source path has a space: the command quotes it, ready to paste.
    assert f"<code>python manage.py check_lab &#x27;{lab.source}&#x27;</code>" in page


def test_a_lab_without_a_source_folder_has_no_check_hint(instructor, lab):
    Lab.objects.filter(pk=lab.pk).update(source="")
    page = change_page(instructor, lab)
    assert "Check this lab:" not in page and "check_lab" not in page
    assert "<h1>Hello</h1>" in page


def test_an_instructor_edits_a_steps_markdown_and_sees_the_new_preview(instructor, lab):
    steps = list(lab.steps.order_by("number"))
    form = {
        "slug": lab.slug, "title": lab.title, "summary": lab.summary, "duration": lab.duration,
        "difficulty": lab.difficulty, "tags": json.dumps(lab.tags), "intro": lab.intro, "finish": lab.finish,
        "environment": json.dumps(lab.environment), "setup": lab.setup, "setup_instance": lab.setup_instance,
        "setup_timeout": "", "assets": json.dumps(lab.assets),
        "steps-TOTAL_FORMS": len(steps), "steps-INITIAL_FORMS": len(steps),
        "steps-MIN_NUM_FORMS": 0, "steps-MAX_NUM_FORMS": 1000,
        "_continue": "Save and continue editing",
    }
    for index, step in enumerate(steps):
        form.update({
            f"steps-{index}-id": step.pk, f"steps-{index}-lab": lab.pk, f"steps-{index}-number": step.number,
            f"steps-{index}-title": step.title, f"steps-{index}-instance": step.instance,
            f"steps-{index}-text": step.text, f"steps-{index}-check_script": step.check_script,
            f"steps-{index}-solution": step.solution, f"steps-{index}-hint": step.hint,
            f"steps-{index}-timeout": "",
        })
    form["steps-0-text"] = f"Now *list* it:\n\n```sh norun\nls -l /root\n```\n\n{INJECTED}\n"

    saved = instructor.post(f"/admin/labs/lab/{lab.pk}/change/", form)
    assert saved.status_code == 302, saved.content.decode()[:3000]

    page = change_page(instructor, lab)
    assert "<p>Now <em>list</em> it:</p>" in page
    assert '<pre class="lab-code"><code class="language-sh">ls -l /root' in page  # norun: Copy only
    assert INJECTED not in page
    assert "touch /root/hello\n</code></pre>" not in page  # the old block's preview is gone


def test_the_add_page_renders_with_empty_previews(instructor):
    answer = instructor.get("/admin/labs/lab/add/")
    assert answer.status_code == 200
    assert "Check this lab:" not in answer.content.decode()
