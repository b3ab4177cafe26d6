"""Lab folders made on the fly for tests."""
from __future__ import annotations

import textwrap
from pathlib import Path

MINIMAL = """\
title: Hello
summary: Say hello.
duration: 5
difficulty: beginner
tags: [basics]
environment:
  instances:
    - name: node1
      image: shell
steps:
  - title: Write a file
    text: step1.md
    check: test -f /root/hello
    hint: Use `touch /root/hello`.
    solution: touch /root/hello
  - title: Look around
    text: step2.md
"""


def write_lab(root: Path, lab_yaml: str = MINIMAL, files: dict[str, str] | None = None, *, name: str = "hello") -> Path:
    """A lab folder ``root/name`` with ``lab.yaml`` and the usual Markdown files."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    defaults = {"intro.md": "# Hello\n", "finish.md": "Done.\n", "step1.md": "Run:\n\n```bash\ntouch /root/hello\n```\n",
                "step2.md": "Look.\n"}
    for relative, text in {**defaults, **(files or {})}.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (folder / "lab.yaml").write_text(textwrap.dedent(lab_yaml))
    return folder
