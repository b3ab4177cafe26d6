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
  Copy only. ``onopen`` (Run by itself, once per session, when the page opens: what a
  KillerCoda scenario's ``foreground`` script becomes) marks it
  ``data-onopen="1"``.
* Inline code followed by ``{{run}}`` (or ``{{run NAME}}``, ``{{run
  interrupt}}``) becomes ``<code data-run="INSTANCE">``: a click types it into
  the terminal; followed by ``{{copy}}``, ``<code class="lab-copy">``: a click
  copies it.
* ``{{url NAME PORT}}`` anywhere in the text (or as a link target, where a
  path may follow it) turns into the URL of that instance's port once the page
  knows it (``data-port="NAME:PORT"``, ``data-port-path="/path"``).
* ``<details>``, ``<summary>...</summary>`` and ``</details>``, each on a line of
  their own (or the first two on one line), become a collapsed section (the
  summary is Markdown too, never HTML); any other HTML stays text. Unpaired
  ones stay text.
"""
from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass
from html import escape

from markdown_it import MarkdownIt

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console", "zsh"})
_PORT_TEXT = re.compile(r"\{\{\s*url\s+([a-z][a-z0-9-]{0,62})\s+(\d{1,5})\s*\}\}")
# Placeholders become a space-free token before parsing, so they work as link
# targets too, then markup after rendering.
_PORT_TOKEN = re.compile(r"pg-port://([a-z][a-z0-9-]{0,62})/(\d{1,5})")
# A path may follow the port in a link target: markdown-it has already
# normalised (percent-encoded) it, so it holds no quote.
_PORT_HREF = re.compile(r'href="pg-port://([a-z][a-z0-9-]{0,62})/(\d{1,5})([^"]*)"')
# After inline code: {{run}}, {{run node2}}, {{run interrupt}}, {{copy}}.
_INLINE_ACTION = re.compile(r"^\{\{\s*(run|copy)((?:\s+[a-z][a-z0-9-]{0,62})*)\s*\}\}")
_DETAILS_OPEN = re.compile(r"^\s{0,3}<details>\s*(?:<summary>(.*?)</summary>\s*)?$", re.IGNORECASE)
_SUMMARY = re.compile(r"^\s{0,3}<summary>(.*?)</summary>\s*$", re.IGNORECASE)
_DETAILS_CLOSE = re.compile(r"^\s{0,3}</details>\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class CodeBlock:
    line: int
    """1-based line of the opening fence."""
    language: str
    run: str | None
    """The instance Run types into ("" for the step's default), None for Copy only."""
    interrupt: bool
    onopen: bool = False
    """Typed by itself when the page opens (a ``onopen`` fence)."""
    inline: bool = False
    """Inline code with ``{{run}}``, not a fenced block."""


_FLAGS = {"run", "interrupt", "norun", "onopen"}


def parse_info(info: str) -> tuple[str, str | None, bool]:
    """(language, run target or None, interrupt) of a fence's info string."""
    language, run, interrupt, _ = _parse_info(info)
    return language, run, interrupt


def _parse_info(info: str) -> tuple[str, str | None, bool, bool]:
    words = info.split()
    language = words[0].lower() if words and "=" not in words[0] and words[0] not in _FLAGS else ""
    flags = words[1:] if language else words
    run: str | None = "" if language in SHELL_LANGUAGES else None
    interrupt = onopen = False
    for word in flags:
        if word == "run":
            run = run or ""
        elif word.startswith("run="):
            run = word[4:]
        elif word == "interrupt":
            interrupt = True
            run = run or ""
        elif word == "onopen":
            onopen = True
            run = run or ""
        elif word == "norun":
            run = None
    if run is None:
        interrupt = onopen = False
    return language, run, interrupt, onopen


def _inline_action(text: str) -> tuple[re.Match, str, str | None, bool] | None:
    """(match, kind, run target, interrupt) of ``{{run ...}}`` / ``{{copy}}``
    at the start of ``text``, else None."""
    found = _INLINE_ACTION.match(text)
    if not found:
        return None
    target, interrupt = "", False
    for word in found.group(2).split():
        if word == "interrupt":
            interrupt = True
        else:
            target = word
    return found, found.group(1), target, interrupt


def _inline_actions(state) -> None:
    """Core rule: inline code followed by ``{{run}}`` or ``{{copy}}`` carries
    the action as attributes, and the marker leaves the text."""
    for token in state.tokens:
        if token.type != "inline" or not token.children:
            continue
        children = token.children
        for code, after in itertools.pairwise(children):
            if code.type != "code_inline" or after.type != "text":
                continue
            action = _inline_action(after.content)
            if action is None:
                continue
            found, kind, target, interrupt = action
            after.content = after.content[found.end():]
            if kind == "copy":
                code.attrSet("class", "lab-copy")
                continue
            code.attrSet("class", "lab-run-inline")
            code.attrSet("data-run", target or state.env.get("instance", ""))
            if interrupt:
                code.attrSet("data-interrupt", "1")


def _fence(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    language, run, interrupt, onopen = _parse_info(token.info)
    attrs = ['class="lab-code"']
    if run is not None:
        attrs.append(f'data-run="{escape(run or env.get("instance", ""))}"')
        if interrupt:
            attrs.append('data-interrupt="1"')
        if onopen:
            attrs.append('data-onopen="1"')
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
    md.core.ruler.after("inline", "lab_inline_actions", _inline_actions)
    return md


_md = _parser()


def code_blocks(source: str) -> list[CodeBlock]:
    """The fenced code blocks of ``source`` (for validation of ``run=``)."""
    found = []
    for token in _md.parse(source):
        line = token.map[0] + 1 if token.map else 0
        if token.type == "fence":
            language, run, interrupt, onopen = _parse_info(token.info)
            found.append(CodeBlock(line=line, language=language, run=run, interrupt=interrupt, onopen=onopen))
        elif token.type == "inline" and token.children:
            # The paragraph's line: close enough to find it.
            for code in token.children:
                run = code.attrGet("data-run") if code.type == "code_inline" else None
                if run is not None:
                    found.append(CodeBlock(line=line, language="", run=str(run), inline=True,
                                           interrupt=code.attrGet("data-interrupt") == "1"))
    return found


def _details(source: str, nonce: str) -> tuple[str, dict[str, str]]:
    """``source`` with each paired <details>/<summary>/</details> line (outside
    code blocks) replaced by a paragraph of its own holding a marker, and the
    HTML each marker becomes."""
    lines = source.split("\n")
    code_lines: set[int] = set()
    for token in _md.parse(source):
        if token.type in ("fence", "code_block") and token.map:
            code_lines.update(range(*token.map))
    opened: list[tuple[int, int | None, str]] = []  # (line, its summary line, summary)
    pairs: list[tuple[int, int | None, str, int]] = []
    index = 0
    while index < len(lines):
        if index not in code_lines:
            opening = _DETAILS_OPEN.match(lines[index])
            if opening:
                summary, summary_line = opening.group(1), None
                following = index + 1
                if summary is None and following < len(lines) and following not in code_lines:
                    alone = _SUMMARY.match(lines[following])
                    if alone:
                        summary, summary_line = alone.group(1), following
                opened.append((index, summary_line, (summary or "Details").strip() or "Details"))
                index = summary_line + 1 if summary_line is not None else index + 1
                continue
            if _DETAILS_CLOSE.match(lines[index]) and opened:
                start, summary_line, summary = opened.pop()
                pairs.append((start, summary_line, summary, index))
        index += 1
    markup: dict[str, str] = {}
    for number, (start, summary_line, summary, end) in enumerate(pairs):
        open_marker, close_marker = f"pgdetails{nonce}o{number}", f"pgdetails{nonce}c{number}"
        lines[start] = f"\n{open_marker}\n"
        if summary_line is not None:
            lines[summary_line] = ""
        lines[end] = f"\n{close_marker}\n"
        markup[open_marker] = f'<details class="lab-details"><summary>{_md.renderInline(summary)}</summary>'
        markup[close_marker] = "</details>"
    return "\n".join(lines), markup


def render(source: str, *, instance: str = "") -> str:
    """Safe HTML of lab Markdown; Run buttons default to ``instance``."""
    nonce = secrets.token_hex(4)
    source, details = _details(source, nonce)
    html = _md.render(_PORT_TEXT.sub(r"pg-port://\1/\2", source), {"instance": instance})
    if details:
        html = re.sub(rf"<p>(pgdetails{nonce}[oc]\d+)</p>\n?", lambda m: details[m.group(1)] + "\n", html)
    html = _PORT_HREF.sub(_port_href, html)
    return _PORT_TOKEN.sub(r'<span class="lab-port" data-port="\1:\2">port \2 of \1</span>', html)


def _port_href(found: re.Match) -> str:
    path = f' data-port-path="{found.group(3)}"' if found.group(3) else ""
    return f'href="#" data-port="{found.group(1)}:{found.group(2)}"{path}'

