"""A file dropped on a terminal in Chromium lands in the shell's current
directory (with the notice naming where), and the "Download a file" form
brings it back."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import page_on, running_stack
from tests.e2e.screens import READY, SessionPage

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


@pytest.fixture(scope="module")
def files_stack(tmp_path_factory, engine, bundle_built):
    """A stack of this module's own (Redis database 46), with a small size limit."""
    yield from running_stack(engine, tmp_path_factory.mktemp("e2e-files"), redis_db=46,
                             env={"PLAYGROUND_MAX_FILE_BYTES": "4096"})


@pytest.fixture
def files_page(browser, files_stack):
    yield from page_on(browser, files_stack, accept_downloads=True)


DROP = """([selector, name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, { type: "text/plain" }));
  const pane = document.querySelector(selector);
  for (const type of ["dragenter", "dragover", "drop"]) {
    pane.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
  }
}"""


def test_a_dropped_file_lands_in_the_shells_directory(files_page):
    page = files_page
    session = SessionPage.start_from_landing(page)
    node1 = session.terminal()
    node1.wait_for_prompt()
    node1.run("mkdir -p /tmp/drop && cd /tmp/drop")
    node1.wait_for_line(r".*:/tmp/drop[#$]\s*")

    pane = f'.pane[data-iid="{node1.iid}"]'
    page.evaluate(DROP, [pane, "hello drop.txt", "dropped in Chromium\n"])
    notice = page.locator("#notice-text")
    notice.filter(has_text="hello drop.txt → /tmp/drop/hello drop.txt").wait_for(timeout=READY * 1000)

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    seen = page.request.post(
        f"/api/sessions/{session.sid}/instances/{node1.iid}/exec/",
        data={"command": "cat '/tmp/drop/hello drop.txt'"}, headers={"X-CSRFToken": csrf},
    ).json()
    assert seen == {"exit_code": 0, "output": "dropped in Chromium\n"}

    # Over the limit (4096 bytes here): refused in the page, nothing sent.
    page.evaluate(DROP, [pane, "big.bin", "x" * 5000])
    notice.filter(has_text="big.bin is 4.9 KiB: files larger than 4.0 KiB cannot be uploaded.").wait_for()
    seen = page.request.post(
        f"/api/sessions/{session.sid}/instances/{node1.iid}/exec/",
        data={"command": "ls /tmp/drop"}, headers={"X-CSRFToken": csrf},
    ).json()
    assert seen["output"] == "hello drop.txt\n"

    # Download by path.
    page.get_by_label("Download a file").fill("/tmp/drop/hello drop.txt")
    with page.expect_download() as started:
        page.get_by_role("button", name="Download", exact=True).click()
    download = started.value
    assert download.suggested_filename == "hello drop.txt"
    with open(download.path(), "rb") as saved:
        assert saved.read() == b"dropped in Chromium\n"
    page.get_by_label("Download a file").fill("/tmp/drop/nothing")
    page.get_by_role("button", name="Download", exact=True).click()
    notice.filter(has_text="Could not download /tmp/drop/nothing: No file at /tmp/drop/nothing.").wait_for()
