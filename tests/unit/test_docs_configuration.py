"""The configuration tables of docs/operations.md ("Configuration") list
exactly the environment variables the playground reads: every one that
playground/ and sandboxes/ read (settings.py's ``env*()`` helpers,
``os.environ``), the ``PLAYGROUND_*`` ones scripts/*.sh read, and what the
Makefile takes from the environment (``NAME ?=``). A setting added without its
row, or a row left behind by a removed one, fails here by name.

A row's first cell names its variables in backticks; a name that starts with
``_`` replaces as many trailing parts of the full name before it
(`PLAYGROUND_MAX_SESSIONS_USER` / `_GUEST`); ``_FILE`` (the secret-file form
any setting takes) is not a variable of its own."""
from __future__ import annotations

import os
import re

from tests.stack import ROOT
from tests.unit.docs_tables import first_cells

OPERATIONS = ROOT / "docs" / "operations.md"
PYTHON_READ = re.compile(
    r'\b(?:env\w*|os\.environ\.get|os\.getenv)\(\s*"([A-Z][A-Z0-9_]*)"|os\.environ\[\s*"([A-Z][A-Z0-9_]*)"\s*\]'
)
SHELL_READ = re.compile(r"\$\{?(PLAYGROUND_[A-Z0-9_]+)")
MAKE_READ = re.compile(r"^([A-Z][A-Z0-9_]*)\s*\?=", re.MULTILINE)
OURS = re.compile(r"^(PLAYGROUND|DJANGO|CELERY)_|^(REDIS_URL|DATABASE_URL)$")


def _without_file_forms(names) -> set[str]:
    names = set(names)
    return {name.removesuffix("_FILE") if name.removesuffix("_FILE") in names else name for name in names}


def read_by_the_code() -> dict[str, str]:
    """Each variable the code reads, with the first file that does."""
    found: dict[str, str] = {}
    for base in ("playground", "sandboxes"):
        for path in sorted((ROOT / base).rglob("*.py")):
            for match in PYTHON_READ.finditer(path.read_text()):
                found.setdefault(match.group(1) or match.group(2), str(path.relative_to(ROOT)))
    for path in sorted((ROOT / "scripts").glob("*.sh")):
        for line in path.read_text().splitlines():
            if not line.lstrip().startswith("#"):
                for match in SHELL_READ.finditer(line):
                    found.setdefault(match.group(1), str(path.relative_to(ROOT)))
    for match in MAKE_READ.finditer((ROOT / "Makefile").read_text()):
        found.setdefault(match.group(1), "Makefile")
    return found


def documented() -> set[str]:
    """The variables of every table headed "variable" in docs/operations.md."""
    names: set[str] = set()
    for cell in first_cells(OPERATIONS, "variable"):
        full = None
        for token in re.findall(r"`([A-Z_][A-Z0-9_]*)`", cell):
            if not token.startswith("_"):
                full = token
                names.add(token)
            elif token != "_FILE" and full is not None:
                names.add("_".join(full.split("_")[: -token.count("_")]) + token)
    return names


def test_the_configuration_tables_list_every_variable_read_and_no_other():
    read = read_by_the_code()
    names = _without_file_forms(read)
    listed = _without_file_forms(documented())
    assert {"PLAYGROUND_DEPLOYMENT", "PLAYGROUND_RUN_DIR", "PYTEST_ARGS"} <= names and listed  # both were read
    missing = {name: read.get(name) or read.get(f"{name}_FILE") for name in sorted(names - listed)}
    extra = sorted(listed - names)
    assert not missing and not extra, (
        'docs/operations.md, "Configuration", is out of step with the code:\n'
        f"  read but not listed (and where): {missing or 'none'}\n"
        f"  listed but read nowhere: {extra or 'none'}"
    )


class _Recording(dict):
    """An environment that notes every name asked of it."""

    def __init__(self, base) -> None:
        super().__init__(base)
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        self.asked.add(key)
        return super().__contains__(key)


def test_the_source_scan_finds_every_variable_settings_asks_for_when_it_runs(monkeypatch):
    """settings.py run once with an environment that takes notes: a name made
    at run time (which the scan above cannot see) would show here."""
    path = ROOT / "playground" / "settings.py"
    environment = _Recording(os.environ)
    monkeypatch.setattr(os, "environ", environment)
    exec(compile(path.read_text(), str(path), "exec"), {"__name__": "settings_probe", "__file__": str(path)})  # noqa: S102 - runs the project's own settings.py
    asked = {name for name in _without_file_forms(environment.asked) if OURS.search(name)}
    assert "PLAYGROUND_TERMINAL_DIRECT" in asked
    unseen = sorted(asked - _without_file_forms(read_by_the_code()))
    assert not unseen, f"settings.py asks for variables the source scan does not see: {unseen}"
