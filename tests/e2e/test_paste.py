"""A long paste reaches the shell whole (the client sends it in frames of at most 64 KiB)."""
from __future__ import annotations

import pytest

from tests.e2e.screens import SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def test_a_long_paste_arrives_whole(context, page):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    session = SessionPage.start_from_landing(page)
    terminal = session.terminal()
    terminal.wait_for_prompt()
    text = "".join(f"{i:06d} pasted into the playground\n" for i in range(6000))  # 204 kB
    page.evaluate("text => navigator.clipboard.writeText(text)", text)

    terminal.run("stty -echo; echo ready-for-the-paste; cat > pasted.txt; stty echo")
    # Paste once the shell runs the command, as a person would: input that
    # arrives while the shell still edits its line goes to the shell (and
    # bash's bracketed-paste markers would keep Ctrl-D off the line start).
    terminal.wait_for_line(r"ready-for-the-paste")
    page.keyboard.press("Control+Shift+V")
    terminal.focus()
    page.keyboard.press("Control+d")
    terminal.wait_for_prompt(timeout=120)
    terminal.run("echo pasted=$(wc -c < pasted.txt)")
    found = terminal.wait_for_line(r"pasted=(\d+)", timeout=120)
    assert int(found.group(1)) == len(text)
