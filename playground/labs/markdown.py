"""Lab Markdown to safe HTML.

Sanitised by construction: raw HTML in the source is escaped, never passed
through (markdown-it's ``html`` option off), and links to ``javascript:``,
``vbscript:``, ``file:`` and non-image ``data:`` URLs are refused by
markdown-it's link validation. What the lab player needs is marked up with
data attributes only:

* a shell code block (language ``bash``, ``sh``, ``shell``, ``console`` or a
  ``run`` flag) becomes ``<pre class="lab-code" data-run="INSTANCE">``: the page
  adds Copy and Run buttons; Run types the block into that instance's terminal.
  Words after the language set it: ``run=node2`` (another instance),
  ``interrupt`` (send Ctrl-C first), ``norun`` (Copy only). Other blocks get
  Copy only.
* ``{{url NAME PORT}}`` anywhere in the text (or as a link target) turns into
  the URL of that instance's port once the page knows it
  (``data-port="NAME:PORT"``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

from markdown_it import MarkdownIt

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console", "zsh"})
_PORT_TEXT = re.compile(r"\{\{\s*url\s+([a-z][a-z0-9-]{0,62})\s+(\d{1,5})\s*\}\}")
# Placeholders become a space-free token before parsing, so they work as link
# targets too, then markup after rendering.
_PORT_TOKEN = re.compile(r"pg-port://([a-z][a-z0-9-]{0,62})/(\d{1,5})")
_PORT_HREF = re.compile(r'href="pg-port://([a-z][a-z0-9-]{0,62})/(\d{1,5})"')


@dataclass(frozen=True)
class CodeBlock:
    line: int
    """1-based line of the opening fence."""
    language: str
    run: str | None
    """The instance Run types into ("" for the step's default), None for Copy only."""
    interrupt: bool


def parse_info(info: str) -> tuple[str, str | None, bool]:
    """(language, run target or None, interrupt) of a fence's info string."""
    words = info.split()
    language = words[0].lower() if words and "=" not in words[0] and words[0] not in {"run", "interrupt", "norun"} else ""
    flags = words[1:] if language else words
    run: str | None = "" if language in SHELL_LANGUAGES else None
    interrupt = False
    for word in flags:
        if word == "run":
            run = run or ""
        elif word.startswith("run="):
            run = word[4:]
        elif word == "interrupt":
            interrupt = True
            run = run or ""
        elif word == "norun":
            run = None
    if run is None:
        interrupt = False
    return language, run, interrupt


def _fence(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    language, run, interrupt = parse_info(token.info)
    attrs = ['class="lab-code"']
    if run is not None:
        attrs.append(f'data-run="{escape(run or env.get("instance", ""))}"')
        if interrupt:
            attrs.append('data-interrupt="1"')
    code_class = f' class="language-{escape(language)}"' if language else ""
    return f"<pre {' '.join(attrs)}><code{code_class}>{escape(token.content)}</code></pre>\n"


def _link_open(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    if not (token.attrGet("href") or "").startswith("#"):
        token.attrSet("target", "_blank")
        token.attrSet("rel", "noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("fence", _fence)
    md.add_render_rule("link_open", _link_open)
    return md


_md = _parser()


def code_blocks(source: str) -> list[CodeBlock]:
    """The fenced code blocks of ``source`` (for validation of ``run=``)."""
    found = []
    for token in _md.parse(source):
        if token.type == "fence":
            language, run, interrupt = parse_info(token.info)
            line = token.map[0] + 1 if token.map else 0
            found.append(CodeBlock(line=line, language=language, run=run, interrupt=interrupt))
    return found


def render(source: str, *, instance: str = "") -> str:
    """Safe HTML of lab Markdown; Run buttons default to ``instance``."""
    html = _md.render(_PORT_TEXT.sub(r"pg-port://\1/\2", source), {"instance": instance})
    html = _PORT_HREF.sub(r'href="#" data-port="\1:\2"', html)
    return _PORT_TOKEN.sub(r'<span class="lab-port" data-port="\1:\2">port \2 of \1</span>', html)
