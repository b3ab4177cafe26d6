"""KillerCoda scenarios read as labs: what each construct of the format becomes,
and what the import reports, with file and line, for what it cannot carry
(a warning) or cannot run (a refusal). Over the fixtures in
tests/fixtures/killercoda/, one scenario per kind."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from playground.labs import killercoda, markdown
from playground.labs.killercoda import ScenarioInvalid, load_scenario

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "killercoda"
HELLO = FIXTURES / "hello-scenario"
WARNED = FIXTURES / "warned-scenario"
REFUSED = FIXTURES / "refused-scenario"
KATACODA = FIXTURES / "katacoda-scenario"
COURSE = FIXTURES / "course"


def line_of(file: Path, needle: str) -> int:
    """The 1-based line of ``file`` holding ``needle`` (the first one)."""
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} is not in {file}")


@pytest.fixture(scope="module")
def hello():
    return load_scenario(HELLO)


def test_a_scenario_becomes_a_lab_on_one_docker_instance_without_warnings(hello):
    lab = hello.lab
    assert (lab.slug, lab.title, lab.difficulty, lab.tags) == ("hello-scenario", "Hello, KillerCoda", "beginner",
                                                               ["killercoda"])
    assert lab.summary.startswith("A scenario in KillerCoda's format")
    assert [(i.name, i.image) for i in lab.instances] == [("node1", "docker")] and lab.template == ""
    assert [s.title for s in lab.steps] == ["Write a file", "Run the solution script", "Look around"]
    assert {s.instance for s in lab.steps} == {"node1"}
    assert lab.finish == "Well done.\n"
    assert lab.source == str(HELLO.resolve())
    assert hello.warnings == []


def test_verify_becomes_the_check_as_written_and_a_step_without_one_has_none(hello):
    steps = hello.lab.steps
    assert steps[0].check == (HELLO / "step1/verify.sh").read_text()
    # Its output says "all good?" whatever happens: only the exit code decides (the check's rule too).
    assert steps[1].check == (HELLO / "step2/verify.sh").read_text()
    assert steps[2].check == ""


def test_the_intro_background_is_the_set_up_on_node1_run_by_a_bash_of_its_own(hello):
    lab = hello.lab
    assert lab.setup_instance == "node1"
    assert "# intro/background.sh\nbash <<'BACKGROUND_EOF' || exit $?\n" in lab.setup
    assert (HELLO / "intro/background.sh").read_text().rstrip() in lab.setup


def test_foreground_scripts_become_blocks_typed_when_their_page_opens(hello):
    intro_blocks = markdown.code_blocks(hello.lab.intro)
    assert [(b.language, b.run, b.onopen) for b in intro_blocks] == [("bash", "", True)]
    assert "```bash onopen\necho \"Waiting for the set-up...\"\nwhile [ ! -f /tmp/finished ]" in hello.lab.intro
    assert "#!/bin/bash" not in hello.lab.intro
    assert "```bash onopen\ncat /etc/hello/conf/app.json\n```" in hello.lab.steps[1].text
    assert not any(b.onopen for b in markdown.code_blocks(hello.lab.steps[0].text))


def test_a_foreground_that_could_end_the_learners_shell_is_typed_to_a_bash_of_its_own():
    intro = load_scenario(KATACODA).lab.intro
    assert "```bash onopen\nbash <<'FOREGROUND_EOF'\nset -e\necho \"Preparing your terminal\"\nFOREGROUND_EOF\n```" in intro


def test_markdown_actions_become_the_labs_run_copy_and_port_markup(hello):
    text = hello.lab.steps[0].text
    assert "`cat ~/greeting.txt`{{run}}" in text
    assert "```run\necho hello > ~/hello.txt\n```" in text  # ```{{exec}} on the closing fence
    assert "`hello.txt`{{copy}}" in text
    assert "```run interrupt\nsleep 1000\n```" in text
    assert "```bash norun\nls -l ~\n```" in text  # a block without an action: Copy only, as in KillerCoda
    assert "{{url node1 80}}" in text and "TRAFFIC" not in text
    assert "<br>" not in text and "{{exec" not in text
    assert "`ls /etc/hello`{{run}}" in hello.lab.steps[2].text  # Katacoda's {{execute}}
    runs = [(b.run, b.interrupt, b.inline) for b in markdown.code_blocks(text) if b.run is not None]
    assert runs == [("", False, True), ("", False, False), ("", True, False), ("", False, True)]


def test_a_solution_section_stays_in_the_text_and_its_commands_are_the_steps_solution(hello):
    first, second = hello.lab.steps[:2]
    assert "<details>\n<summary>Solution</summary>" in first.text
    assert first.solution == "echo hello > ~/hello.txt"
    # "A, OR B": the first alternative only (running both could fail).
    assert second.solution == "~/solution.sh"
    html = markdown.render(first.text, instance="node1")
    assert '<details class="lab-details"><summary>Solution</summary>' in html
    assert "&lt;details" not in html


def test_a_tip_section_is_also_the_steps_hint(hello):
    assert hello.lab.steps[0].hint == "Use `echo` and a redirection."
    assert hello.lab.steps[1].hint == ""


def test_assets_are_expanded_from_globs_to_their_targets_with_the_executable_bit(hello):
    lab = hello.lab
    assert lab.assets_path == "/"
    assert sorted(lab.assets) == ["etc/hello/conf/app.json", "root/solution.sh"]  # ~/ is /root; **/ keeps folders
    assert lab.assets["root/solution.sh"]["executable"] is True
    assert lab.assets["etc/hello/conf/app.json"] == {
        "data": base64.b64encode((HELLO / "assets/conf/app.json").read_bytes()).decode(), "executable": False,
    }


def test_assets_of_one_target_keep_it_as_the_labs_assets_path():
    lab = load_scenario(WARNED).lab
    assert (lab.assets_path, sorted(lab.assets)) == ("/root", ["notes.txt"])


def test_every_construct_the_lab_runs_without_is_a_warning_with_its_file_and_line():
    scenario = load_scenario(WARNED)
    index, step1, step2 = WARNED / "index.json", WARNED / "step1/text.md", WARNED / "step2/text.md"
    expected = [
        (index, line_of(index, '"layout": "ide"'), "interface.layout: the 'ide' layout"),
        (index, line_of(index, '"background": "finish-background.sh"'),
         "details.finish.background: a background script of the finish page is not run"),
        (step1, line_of(step1, "{{execute T2}}"), "{{execute T2}}: a terminal of its own is not carried"),
        (step1, line_of(step1, "{{execute HOST2}}"), "{{execute HOST2}}: the lab has one host"),
        (step1, line_of(step1, "TRAFFIC_HOST2_8080"), "{{TRAFFIC_HOST2_8080}}: the lab has one host"),
        (step1, line_of(step1, "{{open}}"), "{{open}}: an unknown action"),
        (index, line_of(index, '"background": "step1/background.sh"'),
         "details.steps[1].background: runs at the lab's set-up"),
        (step2, line_of(step2, "<b>"), "<b>: HTML is shown as text"),
        (step2, line_of(step2, "diagram.png"), "the image ./assets/diagram.png of the scenario folder is not shown"),
        (step2, line_of(step2, "[[HOST_IP]]"), "[[HOST_IP]]: a Katacoda variable"),
        (step2, line_of(step2, "<details>"), "<details> (Never closed) is never closed"),
        (index, line_of(index, '"chmod": "u+w"'), "details.assets.host01[1].chmod: chmod u+w: only +x is carried"),
        (index, line_of(index, '"file": "k8s.sh"'),
         "details.assets.host01[2].file: no file in assets/ matches 'k8s.sh'"),
        (index, line_of(index, '"host02"'), "details.assets.host02: the lab has one host (node1)"),
    ]
    found = [str(w) for w in scenario.warnings]
    assert len(found) == len(expected), "\n".join(found)
    for file, line, message in expected:
        assert any(w.startswith(f"{file}:{line}: warning: {message}") for w in found), (file, line, message, found)
    # ... and the lab runs without them: the step's background joined the set-up.
    assert "mkdir -p /root/work" in scenario.lab.setup


def test_what_cannot_run_is_refused_with_its_file_and_line():
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(REFUSED)
    index = REFUSED / "index.json"
    assert [str(p) for p in caught.value.problems] == [
        (f"{index}:{line_of(index, 'kubernetes-kubeadm-2nodes')}: backend.imageid: 'kubernetes-kubeadm-2nodes': "
         "a Kubernetes backend cannot run here (the playground's instances are single Linux hosts with Docker)"),
        (f"{index}:{line_of(index, 'step1/verify.sh')}: details.steps[1].verify: "
         "no file step1/verify.sh in the scenario folder"),
    ]


def scenario_in(tmp_path: Path, index: dict | str, files: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "made"
    folder.mkdir()
    (folder / "index.json").write_text(index if isinstance(index, str) else json.dumps(index, indent=2))
    for relative, text in (files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder


def refusals(folder: Path) -> list[str]:
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(folder)
    return [str(p) for p in caught.value.problems]


def test_json_that_does_not_parse_is_refused_at_its_line(tmp_path):
    folder = scenario_in(tmp_path, '{\n  "title": "x",\n  "details": {,\n}\n')
    assert refusals(folder) == [(f"{folder / 'index.json'}:3: not valid JSON: Expecting property name enclosed in "
                                 "double quotes")]


def test_unknown_backends_challenges_and_stepless_scenarios_are_refused(tmp_path):
    folder = scenario_in(tmp_path, {"title": "x", "type": "challenge@0.9", "details": {"steps": []},
                                    "backend": {"imageid": "windows-server"}})
    found = refusals(folder)
    assert any("backend.imageid: 'windows-server': an unknown backend" in p for p in found), found
    assert any("type: KillerCoda challenges" in p for p in found), found
    assert any("details.steps: a scenario needs at least one step" in p for p in found), found
    assert all(p.startswith(f"{folder / 'index.json'}:") for p in found)


def test_a_file_outside_the_scenario_folder_is_refused(tmp_path):
    folder = scenario_in(tmp_path, {"title": "x", "details": {"steps": [{"title": "a", "text": "../secret.md"}]},
                                    "backend": {"imageid": "ubuntu"}})
    (tmp_path / "secret.md").write_text("secret")
    assert refusals(folder) == [(f"{folder / 'index.json'}:7: details.steps[1].text: ../secret.md is outside the "
                                 "scenario folder")]


def test_older_katacoda_fields_are_read():
    scenario = load_scenario(KATACODA)
    lab = scenario.lab
    assert (lab.difficulty, lab.duration) == ("intermediate", 15)
    assert "set up by courseData" in lab.setup  # courseData: the background
    assert "Preparing your terminal" in lab.intro  # code: the foreground
    step = lab.steps[0]
    assert "[the page]({{url node1 8080}}/index.html)" in step.text  # [[HOST_SUBDOMAIN]]-8080-... URLs
    assert "<summary>Solution</summary>" in step.text and step.solution == "touch /root/started"  # answer
    assert scenario.warnings == []


def test_a_course_lists_its_scenarios_in_order_under_slugs_of_the_course():
    problems: list = []
    found = killercoda.find_scenarios([COURSE], problems)
    assert [(folder.name, slug) for folder, slug in found] == [
        ("first", "course-first"), ("second", "course-second"), ("third", "more-third"),
    ]
    assert problems == []


def test_a_course_entry_without_a_scenario_is_named_at_its_line(tmp_path):
    (tmp_path / "structure.json").write_text('{\n  "items": [\n    {"path": "nowhere"}\n  ]\n}\n')
    problems: list = []
    assert killercoda.find_scenarios([tmp_path], problems) == []
    assert [str(p) for p in problems] == [(f"{tmp_path / 'structure.json'}:3: items[1].path: nowhere: no scenario "
                                           "(index.json) there")]


def test_a_folder_of_scenarios_and_labs_yields_only_the_scenarios():
    found = killercoda.find_scenarios([FIXTURES], [])
    assert {folder.name for folder, _ in found} >= {"hello-scenario", "warned-scenario", "first", "third"}


def test_json_lines_knows_the_line_of_every_key_and_item():
    lines = killercoda.json_lines('{\n  "a": [\n    1,\n    {"b": "x"}\n  ],\n  "c": null\n}')
    assert (lines[("a",)], lines[("a", 0)], lines[("a", 1, "b")], lines[("c",)]) == (2, 3, 4, 6)
