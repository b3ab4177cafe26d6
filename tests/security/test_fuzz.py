"""The API fuzzed with schemathesis against its own OpenAPI schema: no call
answers 5xx, and the valid calls reach real handlers (rates and caps raised,
the fuzzing user an instructor, real session and instance ids substituted:
fuzz_hooks.py). The run prints how many answered 2xx; it fails when fewer
than MIN_2XX_SHARE of the valid calls did. Valid calls that still fail are
ids of things the run did not make (classrooms, labs, DELETEs on purpose)
and values the schema cannot say are unknown (image names, lab slugs)."""
from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.conftest import _running, open_shell

pytestmark = [pytest.mark.engine, pytest.mark.stack]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MIN_2XX_SHARE = 0.3  # a typical run: about 40%; a bad token or random ids give far less


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory, engine):
    yield from _running(tmp_path_factory, engine, "security-fuzz", 26, {
        "PLAYGROUND_MAX_SESSIONS_USER": "1000",
        "PLAYGROUND_MAX_INSTANCES": "1000",
        "PLAYGROUND_EXEC_MAX_TIMEOUT": "30",
        "PLAYGROUND_MAX_FILE_BYTES": str(64 * 1024),
        "PLAYGROUND_MAX_EXTENSIONS": "1000",
    })


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed in the venv")
def test_the_fuzzed_api_never_answers_5xx_and_mostly_reaches_handlers(fuzz_stack, tmp_path):
    # An instructor, so that the classroom endpoints reach their handlers too.
    fuzz_stack.tokens["fuzzer"] = fuzz_stack.manage("create_api_token", "fuzzer", "--instructor").strip()
    fuzzer = fuzz_stack.client("fuzzer")
    shell = open_shell(fuzz_stack, fuzzer)
    log = tmp_path / "calls.log"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.security.fuzz_hooks",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "FUZZ_SID": shell.sid, "FUZZ_IID": shell.iid, "FUZZ_LOG": str(log),
    }
    done = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{fuzz_stack.url}/api/schema/",
         "--url", fuzz_stack.url,
         "-H", f"Authorization: Token {fuzz_stack.token('fuzzer')}",
         "--checks", "not_a_server_error",
         "--phases", "examples,coverage,fuzzing",
         "--max-examples", "8", "--workers", "1", "--seed", "6",
         "--request-timeout", "30", "--no-shrink", "--no-color",
         "--generation-database", "none",
         "--exclude-path-regex", "/files/",  # raw bodies: fuzzed below 64 KiB by the API tests
         "--report-dir", str(tmp_path / "report")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,  # its caches land there
        check=False,
    )
    every_call = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    statuses = collections.Counter(int(status) // 100 for _, _, status, _ in every_call)
    # Valid requests (by the schema) to methods the paths have: these should
    # mostly reach a handler and succeed. (Invalid ones must merely not 5xx.)
    valid = [call for call in every_call if call[3] == "positive" and call[2] != "405"]
    valid_2xx = sum(1 for call in valid if call[2].startswith("2"))
    summary = (f"{len(every_call)} calls, {statuses[2]} answered 2xx, by class {dict(statuses)}; "
               f"of the {len(valid)} valid ones, {valid_2xx} answered 2xx")
    print(summary)
    for key, count in sorted(collections.Counter(tuple(call) for call in every_call).items()):
        print(" ", *key, count)
    assert done.returncode == 0, f"{summary}\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert statuses[5] == 0, summary
    assert len(every_call) >= 100 and len(valid) >= 50, summary
    assert valid_2xx >= MIN_2XX_SHARE * len(valid), summary
