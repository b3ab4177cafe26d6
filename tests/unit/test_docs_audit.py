"""docs/security.md's audit table lists exactly the events the code records
(``playground.audit.record``), read from the source: an event added, renamed
or dropped without its row fails here."""
from __future__ import annotations

import ast
import re

from tests.stack import ROOT
from tests.unit.docs_tables import first_cells

SECURITY = ROOT / "docs" / "security.md"


def _names(node: ast.AST, module: ast.AST, where: str) -> set[str]:
    """The event names an argument of ``record`` can take."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _names(node.body, module, where) | _names(node.orelse, module, where)
    if isinstance(node, ast.JoinedStr):
        # f"admin.{action}" with action = {...}.get(...) in the same module
        [*constants, value] = node.values
        prefix = "".join(part.value for part in constants if isinstance(part, ast.Constant))
        if isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name):
            for assign in ast.walk(module):
                if (isinstance(assign, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == value.value.id for t in assign.targets)
                        and isinstance(assign.value, ast.Call) and isinstance(assign.value.func, ast.Attribute)
                        and isinstance(assign.value.func.value, ast.Dict)):
                    return {prefix + v.value for v in assign.value.func.value.values if isinstance(v, ast.Constant)}
    raise AssertionError(f"{where}: cannot tell which audit event this records; name it with a string literal")


def recorded_events() -> dict[str, str]:
    """Each event name the code records, with where."""
    events: dict[str, str] = {}
    for path in sorted((ROOT / "playground").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call) or not call.args:
                continue
            func = call.func
            audit_call = (isinstance(func, ast.Attribute) and func.attr == "record"
                          and isinstance(func.value, ast.Name) and func.value.id == "audit")
            own_call = path.name == "audit.py" and isinstance(func, ast.Name) and func.id == "record"
            if audit_call or own_call:
                where = f"{path.relative_to(ROOT)}:{call.lineno}"
                for name in _names(call.args[0], tree, where):
                    events.setdefault(name, where)
    return events


def documented_events() -> set[str]:
    """The first column of the table headed "event" in docs/security.md."""
    return {name for cell in first_cells(SECURITY, "event") for name in re.findall(r"`([a-z_]+\.[a-z_]+)`", cell)}


def test_the_audit_table_lists_every_event_the_code_records_and_no_other():
    recorded = recorded_events()
    documented = documented_events()
    assert "session.started" in recorded and "admin.deleted" in recorded  # the scan found the calls
    missing = {name: where for name, where in sorted(recorded.items()) if name not in documented}
    extra = sorted(documented - set(recorded))
    assert not missing and not extra, (
        f"docs/security.md's audit table is out of step with the code:\n"
        f"  recorded but not listed: {missing or 'none'}\n"
        f"  listed but never recorded: {extra or 'none'}"
    )
