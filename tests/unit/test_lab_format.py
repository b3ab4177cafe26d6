"""The lab folder format: what loads, and errors that name the file, the line
and what is wrong."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from playground.labs import markdown
from playground.labs.loader import SCHEMA_PATH, LabInvalid, find_labs, load_lab
from tests.unit.labs_helpers import MINIMAL, write_lab

SHIPPED = Path(__file__).resolve().parents[2] / "labs"


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(LabInvalid) as caught:
        load_lab(folder)
    return [str(p) for p in caught.value.problems]


def test_a_minimal_lab_loads_with_its_texts_scripts_and_defaults(tmp_path):
    lab = load_lab(write_lab(tmp_path))
    assert (lab.slug, lab.title, lab.duration, lab.difficulty, lab.tags) == ("hello", "Hello", 5, "beginner", ["basics"])
    assert lab.intro == "# Hello\n" and lab.finish == "Done.\n"
    assert [s.number for s in lab.steps] == [1, 2]
    first = lab.steps[0]
    assert (first.instance, first.check, first.solution) == ("node1", "test -f /root/hello", "touch /root/hello")
    assert lab.steps[1].check == "" and lab.steps[1].instance == "node1"
    assert lab.assets_path == "/root" and lab.assets == {} and lab.setup == ""


def test_scripts_may_be_files_and_assets_are_read_with_their_mode(tmp_path):
    folder = write_lab(tmp_path, MINIMAL.replace("check: test -f /root/hello", "check: {file: checks/one.sh}") + (
        "setup:\n  script: {file: setup.sh}\n  timeout: 60\n"
    ), {"checks/one.sh": "#!/bin/bash\ntest -f /root/hello\n", "setup.sh": "echo setting up\n",
        "assets/app/run.sh": "echo run\n", "assets/notes.txt": "notes\n"})
    (folder / "assets/app/run.sh").chmod(0o755)
    lab = load_lab(folder)
    assert lab.steps[0].check == "#!/bin/bash\ntest -f /root/hello\n"
    assert (lab.setup, lab.setup_instance, lab.setup_timeout) == ("echo setting up\n", "node1", 60)
    assert lab.assets["app/run.sh"] == {"data": base64.b64encode(b"echo run\n").decode(), "executable": True}
    assert lab.assets["notes.txt"]["executable"] is False


def test_an_unknown_key_names_the_file_the_line_and_the_keys_allowed(tmp_path):
    folder = write_lab(tmp_path, MINIMAL.replace("    hint: Use", "    hnit: oops\n    hint: Use"))
    [problem] = problems_of(folder)
    assert problem.startswith(f"{folder / 'lab.yaml'}:14: steps[1].hnit: unknown key")
    assert "hint" in problem


def test_a_missing_field_and_a_wrong_value_are_both_reported_at_their_lines(tmp_path):
    text = MINIMAL.replace("duration: 5\n", "").replace("difficulty: beginner", "difficulty: easy")
    found = problems_of(write_lab(tmp_path, text))
    assert any(p.endswith(":1: (top level): 'duration' is missing") for p in found), found
    assert any(":3: difficulty: 'easy' is not one of beginner, intermediate, advanced" in p for p in found), found


def test_a_missing_markdown_file_is_named_at_the_line_that_refers_to_it(tmp_path):
    folder = write_lab(tmp_path, MINIMAL.replace("text: step2.md", "text: steps/two.md"))
    assert problems_of(folder) == [f"{folder / 'lab.yaml'}:17: steps[2].text: no file steps/two.md in the lab folder"]


def test_a_file_outside_the_lab_folder_is_refused(tmp_path):
    (tmp_path / "secret.md").write_text("no")
    folder = write_lab(tmp_path, MINIMAL.replace("text: step2.md", "text: ../secret.md"))
    assert problems_of(folder) == [f"{folder / 'lab.yaml'}:17: steps[2].text: ../secret.md is outside the lab folder"]


def test_steps_must_run_on_instances_the_lab_declares(tmp_path):
    folder = write_lab(tmp_path, MINIMAL.replace("    hint: Use", "    instance: node7\n    hint: Use"))
    [problem] = problems_of(folder)
    assert problem == f"{folder / 'lab.yaml'}:14: steps[1].instance: no instance named 'node7' (the lab has: node1)"


def test_a_run_button_for_an_unknown_instance_is_reported_at_its_line_in_the_markdown(tmp_path):
    folder = write_lab(tmp_path, files={"step2.md": "Look.\n\n```bash run=node2\nls\n```\n"})
    assert problems_of(folder) == [f"{folder / 'step2.md'}:3: run=node2: no instance of that name (the lab has: node1)"]


def test_yaml_syntax_errors_and_duplicate_keys_have_lines(tmp_path):
    broken = write_lab(tmp_path, MINIMAL.replace("tags: [basics]", "tags: [basics"), name="broken")
    [problem] = problems_of(broken)
    assert problem.startswith(f"{broken / 'lab.yaml'}:") and "not valid YAML" in problem
    twice = write_lab(tmp_path, MINIMAL.replace("duration: 5", "duration: 5\nduration: 6"), name="twice")
    assert problems_of(twice) == [f"{twice / 'lab.yaml'}:4: duration: duplicate key"]


def test_instances_or_a_template_exactly_and_names_once(tmp_path):
    text = MINIMAL.replace("      image: shell", "      image: shell\n    - name: node1\n  template: swarm")
    found = problems_of(write_lab(tmp_path, text))
    assert any(":6: environment: give either instances or template" in p for p in found), found
    assert any(":10: environment.instances[2].name: 'node1' is used twice" in p for p in found), found


def test_a_folder_name_that_is_no_slug_needs_a_slug(tmp_path):
    folder = write_lab(tmp_path, name="My Lab")
    assert problems_of(folder) == [f"{folder / 'lab.yaml'}:1: slug: the folder name 'My Lab' is not a slug; rename it or set slug:"]
    assert load_lab(write_lab(tmp_path, "slug: my-lab\n" + MINIMAL, name="My Lab")).slug == "my-lab"


def test_a_folder_without_lab_yaml_says_so(tmp_path):
    assert problems_of(tmp_path) == [f"{tmp_path / 'lab.yaml'}: no lab.yaml here (a lab is a folder with a lab.yaml)"]


def test_find_labs_takes_lab_folders_and_folders_of_labs(tmp_path):
    one = write_lab(tmp_path / "many", name="one")
    two = write_lab(tmp_path / "many", name="two")
    single = write_lab(tmp_path, name="single")
    assert find_labs([tmp_path / "many", single]) == [one, two, single]


def test_the_schema_in_the_repo_is_a_valid_json_schema():
    Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))


def test_every_shipped_lab_is_valid_and_slugs_are_unique():
    folders = find_labs([SHIPPED])
    assert len(folders) >= 6
    labs = [load_lab(folder) for folder in folders]
    assert len({lab.slug for lab in labs}) == len(labs)
    for lab in labs:
        assert all(step.check for step in lab.steps), f"{lab.slug}: every shipped step has a check"
        assert all(step.solution for step in lab.steps), f"{lab.slug}: every shipped step has a solution"


# -- Markdown ------------------------------------------------------------------------------------

def test_markdown_is_sanitised():
    html = markdown.render('<script>alert(1)</script>\n\n<img src=x onerror="alert(1)">\n\n[x](javascript:alert(1))')
    assert "<script" not in html and "<img" not in html
    assert 'href="javascript' not in html


def test_shell_blocks_get_a_run_target_and_others_copy_only():
    html = markdown.render("```bash\nls\n```\n\n```sh run=node2 interrupt\ntop\n```\n\n```text\nout\n```\n",
                           instance="node1")
    assert '<pre class="lab-code" data-run="node1"><code class="language-bash">ls' in html
    assert '<pre class="lab-code" data-run="node2" data-interrupt="1"><code class="language-sh">top' in html
    assert '<pre class="lab-code"><code class="language-text">out' in html


def test_port_placeholders_become_markers_for_the_page():
    html = markdown.render("Open [the site]({{url node1 8080}}) or {{ url node2 80 }}.")
    assert '<a href="#" data-port="node1:8080"' in html
    assert '<span class="lab-port" data-port="node2:80">port 80 of node2</span>' in html
