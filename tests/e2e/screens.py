"""What a person sees and does on the playground's pages, for the end-to-end tests.

The terminal's text is read from xterm.js's buffer through the page's test hook
(`window.playgroundTerminals[iid].text()`), not from pixels. Every wait has a
generous deadline; nothing asserts how fast anything is."""
from __future__ import annotations

import re
import time

from playwright.sync_api import Page

# Deadlines: long enough for a loaded CI machine, never a measure of speed.
READY = 60.0
OUTPUT = 60.0


class TerminalView:
    def __init__(self, page: Page, iid: str) -> None:
        self.page = page
        self.iid = iid

    def text(self) -> str:
        return self.page.evaluate("iid => window.playgroundTerminals?.[iid]?.text() ?? ''", self.iid)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.text().splitlines()]

    def size(self) -> tuple[int, int]:
        """(rows, cols) of the xterm.js terminal on this page."""
        rows, cols = self.page.evaluate(
            "iid => { const t = window.playgroundTerminals[iid].term; return [t.rows, t.cols]; }", self.iid
        )
        return rows, cols

    def wait_until(self, check, *, timeout: float, what: str):
        """Poll ``check(lines)`` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            lines = self.lines()
            found = check(lines)
            if found:
                return found
            self.page.wait_for_timeout(150)
        tail = "\n".join(line for line in lines if line.strip())[-1500:]
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; the terminal shows:\n{tail}")

    def wait_for_line(self, pattern: str, *, timeout: float = OUTPUT) -> re.Match:
        """The last line that matches ``pattern`` as a whole."""
        regex = re.compile(pattern)

        def last_match(lines):
            for line in reversed(lines):
                match = regex.fullmatch(line)
                if match:
                    return match
            return None

        return self.wait_until(last_match, timeout=timeout, what=f"a line matching {pattern!r}")

    def wait_for_prompt(self, *, timeout: float = READY) -> None:
        """A shell prompt (`# ` or `$ `) on the last line with text."""

        def prompt(lines):
            shown = [line for line in lines if line.strip()]
            return bool(shown) and re.search(r"[#$]$", shown[-1]) is not None

        self.page.wait_for_function(
            "iid => window.playgroundTerminals?.[iid]?.state === 'live'", arg=self.iid, timeout=timeout * 1000
        )
        self.wait_until(prompt, timeout=timeout, what="a shell prompt")

    def focus(self) -> None:
        self.page.locator(f'.pane[data-iid="{self.iid}"] .xterm-screen').click()

    def run(self, command: str) -> None:
        """Type a command line as a person would, and press Enter."""
        self.focus()
        self.page.keyboard.type(command)
        self.page.keyboard.press("Enter")


class SessionPage:
    """The page of one session (`/sessions/<sid>/`)."""

    def __init__(self, page: Page) -> None:
        self.page = page

    @classmethod
    def start_from_landing(cls, page: Page) -> SessionPage:
        page.goto("/")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(re.compile(r"/sessions/[0-9a-f]+/"), timeout=READY * 1000)
        return cls(page)

    @property
    def sid(self) -> str:
        return re.search(r"/sessions/([0-9a-f]+)/", self.page.url).group(1)

    def selected_iid(self) -> str:
        pane = self.page.locator(".pane.active")
        pane.wait_for(timeout=READY * 1000)
        return pane.get_attribute("data-iid")

    def terminal(self, iid: str | None = None) -> TerminalView:
        return TerminalView(self.page, iid or self.selected_iid())

    def instance_names(self) -> list[str]:
        return self.page.locator(".instance .instance-name").all_inner_texts()

    def add_instance(self) -> str:
        """Click "Add instance"; the id of the new instance, which the page selects."""
        before = self.selected_iid()
        self.page.get_by_role("button", name="+ Add instance").click()
        self.page.wait_for_function(
            "before => { const p = document.querySelector('.pane.active'); return p && p.dataset.iid !== before; }",
            arg=before,
            timeout=READY * 1000,
        )
        return self.selected_iid()


PASSWORD = "correct horse battery staple"


def make_instructor(stack, username: str) -> None:
    """An instructor with an API token (``stack.client(username)``) and a
    password, to sign in on the pages."""
    stack.tokens[username] = stack.manage("create_api_token", "--instructor", username).strip()
    stack.manage("shell", "-c", "from django.contrib.auth import get_user_model\n"
                 f"user = get_user_model().objects.get(username={username!r})\n"
                 f"user.set_password({PASSWORD!r})\nuser.save()\n")


def open_dashboard(page: Page, username: str, classroom_id: str) -> None:
    """Sign ``username`` in and open the class's dashboard, live."""
    page.goto(f"/accounts/login/?next=/classrooms/{classroom_id}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("sign in|log in", re.IGNORECASE)).click()
    page.wait_for_url(re.compile(r"/classrooms/"))
    page.locator("#live-status.live").wait_for()
