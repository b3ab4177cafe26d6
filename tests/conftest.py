"""Shared fixtures. Unit tests (tests/unit) run the web layer against the
in-memory fake driver; integration tests (tests/integration) run the real
processes against the real engine and Redis (tests/stack.py).

Two rules of the whole suite live here:

- A test is collected only for the cases it applies to, never skipped for
  the others: in a class marked ``fake_lab_host`` (a contract suite run
  against the in-memory driver) the tests marked ``engine`` are deselected;
  a test marked ``engine_storage(only=...)`` or ``engine_storage(unless=...)``
  is deselected where the lab-host engine's storage driver (its ``/info``
  ``Driver``, asked once at collection) does not fit. The concurrency tier
  is deselected from `make test`'s main run by ``-m "not concurrency"``.
- Under CI (the environment's ``CI`` set, as CI machines do), a skipped test
  fails the run unless its reason starts with one of ``KERNEL_FACTS``: facts
  of the kernel the suite runs on, which no set-up can change. Anything else
  a skip could stand for (an image not built, a tool not installed, a
  service not started) is the set-up's to provide, and CI must say so.
"""
from __future__ import annotations

import os
from functools import cache

import pytest

# The one list of skips CI accepts (each the start of a skip's reason).
KERNEL_FACTS: tuple[str, ...] = (
    "this kernel has no /proc/sysrq-trigger",  # tests/security/test_confinement.py
)


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def accepted_under_ci(reason: str) -> bool:
    return any(reason.startswith(fact) for fact in KERNEL_FACTS)


def _skip_reason(longrepr: object) -> str:
    # A skip's longrepr is (path, line, "Skipped: <reason>").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
    else:
        text = str(longrepr)
    return text.removeprefix("Skipped: ")


def _refused(reason: str) -> str:
    return (
        f"skipped under CI: {reason!r}\n"
        "Under CI a skip fails the run unless its reason is a fact of the kernel "
        "(tests/conftest.py, KERNEL_FACTS). Make the set-up provide what the test "
        "needs, or collect the test only where it applies."
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and on_ci():
        reason = _skip_reason(report.longrepr)
        if not accepted_under_ci(reason):
            report.outcome = "failed"
            report.longrepr = _refused(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and on_ci():
        reason = _skip_reason(report.longrepr)
        if not accepted_under_ci(reason):
            report.outcome = "failed"
            report.longrepr = _refused(reason)


@cache
def engine_storage_driver() -> str | None:
    """The lab-host engine's storage driver, or None when it does not answer
    (the tests needing it then run, and fail on the engine as the others do)."""
    import docker

    from tests.stack import ENGINE

    try:
        return str(docker.APIClient(base_url=ENGINE, version="1.41", timeout=10).info().get("Driver"))
    except Exception:  # noqa: BLE001 - whatever the reason, the answer is "unknown"
        return None


def applies(item: pytest.Item) -> bool:
    """Whether ``item`` is a case its test applies to (see the docstring)."""
    needs_engine = item.get_closest_marker("engine") is not None
    if needs_engine and item.get_closest_marker("fake_lab_host") is not None:
        return False
    storage = item.get_closest_marker("engine_storage")
    if storage is None or not needs_engine:
        return True
    found = engine_storage_driver()
    if found is None:
        return True
    only, unless = storage.kwargs.get("only"), storage.kwargs.get("unless")
    return (only is None or found == only) and (unless is None or found != unless)


@pytest.hookimpl(trylast=True)  # after -m and -k: the engine is asked only if a kept test needs it
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [item for item in items if not applies(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(map(id, dropped))
        items[:] = [item for item in items if id(item) not in gone]
