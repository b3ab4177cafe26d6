"""The suite's own rules (tests/conftest.py): under CI a skip fails the run
unless its reason is a fact of the kernel; a contract suite's fake-driver
class does not collect the tests only a real engine can answer. One pytest
run of a small suite, with CI set and without."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SUITE = '''
import pytest

def test_that_passes():
    pass

def test_skipped_for_a_fact_of_the_kernel():
    pytest.skip("this kernel has no /proc/sysrq-trigger (built without MAGIC_SYSRQ)")

@pytest.mark.skipif(True, reason="the docker image is not built on the engine")
def test_skipped_for_what_the_set_up_should_provide():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_to_fail():
    assert False

class Contract:
    @pytest.mark.engine
    def test_only_a_real_engine_answers(self):
        pass

@pytest.mark.fake_lab_host
class TestFake(Contract):
    pass
'''

SKIPPED_MODULE = '''
import pytest

pytest.skip("schemathesis is not installed", allow_module_level=True)

def test_never_collected():
    pass
'''


def outcomes(folder: Path, *, ci: str | None) -> tuple[dict[str, int], str]:
    """The counts of the run's summary line, and its output."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:django", "-p", "no:cacheprovider",
         "-W", "ignore::pytest.PytestUnknownMarkWarning", "--continue-on-collection-errors", "-q", "--no-header", "-rfE", str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    summary = done.stdout.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}, done.stdout


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "test_skipped_module.py").write_text(SKIPPED_MODULE)
    return tmp_path


def test_under_ci_only_a_skip_for_a_fact_of_the_kernel_is_a_skip(suite):
    counts, output = outcomes(suite, ci="true")
    # The skipif skips at set-up (an error), the module at collection (an error too).
    assert counts == {"errors": 2, "passed": 1, "skipped": 1, "xfailed": 1, "deselected": 1}, output
    assert "skipped under CI: 'the docker image is not built on the engine'" in output
    assert "skipped under CI: 'schemathesis is not installed'" in output


def test_outside_ci_a_skip_stays_a_skip_and_the_fake_class_still_leaves_out_engine_tests(suite):
    counts, output = outcomes(suite, ci=None)
    assert counts == {"passed": 1, "skipped": 3, "xfailed": 1, "deselected": 1}, output


@pytest.mark.parametrize(("value", "ci"), [("true", True), ("1", True), ("", False), ("false", False), ("0", False)])
def test_ci_is_the_environments_ci_set_to_anything_but_false(monkeypatch, value, ci):
    from tests.conftest import on_ci

    monkeypatch.setenv("CI", value)
    assert on_ci() is ci
