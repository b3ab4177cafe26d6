"""What the lab Markdown gained for imported scenarios, available to every lab:
inline code that runs or copies on a click, blocks typed when their page
opens, collapsed details sections, and port links with a path. Still
sanitised: nothing of the source becomes HTML but these."""
from __future__ import annotations

import pytest

from playground.labs import markdown
from playground.labs.loader import LabInvalid, load_lab
from tests.unit.labs_helpers import write_lab


def test_inline_code_marked_run_or_copy_carries_its_action():
    html = markdown.render("Try `ls -l`{{run}}, `top`{{run node2 interrupt}} and `name`{{copy}}; `plain` too.",
                           instance="node1")
    assert '<code class="lab-run-inline" data-run="node1">ls -l</code>,' in html
    assert '<code class="lab-run-inline" data-run="node2" data-interrupt="1">top</code>' in html
    assert '<code class="lab-copy">name</code>;' in html
    assert "<code>plain</code> too." in html and "{{" not in html


def test_a_block_marked_onopen_is_a_run_block_the_page_types_by_itself():
    html = markdown.render("```bash onopen\nwatch date\n```\n", instance="node1")
    assert '<pre class="lab-code" data-run="node1" data-onopen="1"><code class="language-bash">watch date' in html
    [block] = markdown.code_blocks("```bash onopen\nwatch date\n```\n")
    assert (block.run, block.onopen) == ("", True)
    assert 'data-onopen' not in markdown.render("```bash onopen norun\nx\n```\n")


def test_details_sections_become_collapsed_and_everything_else_stays_text():
    source = (
        "<details><summary>Solution <img src=x onerror=alert(1)></summary>\n\n```bash\nls\n```\n\n</details>\n\n"
        "<details>\n<summary>Tip</summary>\nUse <b>ls</b>.\n</details>\n\n"
        "```\n<details>\n```\n\n</details>\n"
    )
    html = markdown.render(source, instance="node1")
    assert html.count('<details class="lab-details">') == 2 and html.count("</details>") == 2
    assert "<summary>Solution &lt;img src=x onerror=alert(1)&gt;</summary>" in html
    assert "<img" not in html and "<b>" not in html and "Use &lt;b&gt;ls&lt;/b&gt;." in html
    assert "<code>&lt;details&gt;\n</code>" in html  # in a code block: code
    assert "<p>&lt;/details&gt;</p>" in html  # unpaired: text


def test_a_port_link_may_have_a_path_after_the_port():
    html = markdown.render("[the API]({{url node1 8080}}/api?q=1) and {{url node1 80}}/x")
    assert '<a href="#" data-port="node1:8080" data-port-path="/api?q=1"' in html
    assert '<span class="lab-port" data-port="node1:80">port 80 of node1</span>/x' in html


def test_an_inline_run_for_an_unknown_instance_is_reported_at_its_line(tmp_path):
    folder = write_lab(tmp_path, files={"step2.md": "Look.\n\nThen `ls`{{run node9}}.\n"})
    with pytest.raises(LabInvalid) as caught:
        load_lab(folder)
    assert [str(p) for p in caught.value.problems] == [
        f"{folder / 'step2.md'}:3: run=node9: no instance of that name (the lab has: node1)"
    ]
