"""``manage.py export_lab``: a lab of the catalogue (imported, edited in the
admin, or converted from a KillerCoda scenario) written out as a lab folder
that imports back unchanged."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from playground.labs.loader import load_lab
from playground.labs.models import Lab
from tests.unit.labs_helpers import MINIMAL, write_lab

pytestmark = pytest.mark.django_db

HELLO_SCENARIO = Path(__file__).resolve().parents[1] / "fixtures" / "killercoda" / "hello-scenario"
RICH = MINIMAL.replace("    solution: touch /root/hello\n", (
    "    solution: touch /root/hello\n    timeout: 60\n"
)).replace("hint: Use `touch /root/hello`.", "hint: \"Use `touch`: 'quotes', #hash, trailing space \"") + (
    "setup:\n  script: {file: setup.sh}\n  timeout: 90\nauto_check: true\n"
)


def imported(tmp_path: Path, capsys) -> Path:
    folder = write_lab(tmp_path / "src", RICH, {"setup.sh": "echo ready\r\n", "assets/bin/run.sh": "echo run\n",
                                               "assets/notes.txt": "notes\n"})
    (folder / "assets/bin/run.sh").chmod(0o755)
    call_command("import_labs", str(folder))
    capsys.readouterr()
    return folder


def test_an_exported_lab_imports_back_unchanged_and_the_folder_becomes_its_source(tmp_path, capsys):
    imported(tmp_path, capsys)
    out = tmp_path / "git" / "hello"
    call_command("export_lab", "hello", str(out))
    assert capsys.readouterr().out.startswith(f"hello: exported to {out}")
    assert Lab.objects.get(slug="hello").source == str(out.resolve())
    call_command("import_labs", str(out))
    assert capsys.readouterr().out.splitlines() == ["hello: unchanged"]
    document = yaml.safe_load((out / "lab.yaml").read_text())
    assert document["steps"][0]["timeout"] == 60 and document["setup"]["timeout"] == 90
    assert os.access(out / "assets/bin/run.sh", os.X_OK) and not os.access(out / "assets/notes.txt", os.X_OK)
    assert (out / "setup.sh").read_bytes() == b"echo ready\r\n"


def test_what_the_admin_edited_is_exported(tmp_path, capsys):
    imported(tmp_path, capsys)
    lab = Lab.objects.get(slug="hello")
    lab.title = "Hello, edited"
    lab.save()
    step = lab.steps.get(number=2)
    step.text, step.hint = "Edited in the admin.\r\n", "A hint added\nin the admin"
    step.save()
    out = tmp_path / "out"
    call_command("export_lab", "hello", str(out))
    lab_def = load_lab(out)
    assert lab_def.title == "Hello, edited"
    assert (lab_def.steps[1].text, lab_def.steps[1].hint) == ("Edited in the admin.\r\n", "A hint added\nin the admin")
    capsys.readouterr()
    call_command("import_labs", str(out))
    assert capsys.readouterr().out.splitlines() == ["hello: unchanged"]


def test_an_imported_killercoda_scenario_exports_to_the_labs_own_format(tmp_path, capsys):
    call_command("import_labs", str(HELLO_SCENARIO), verbosity=0)
    out = tmp_path / "hello-lab"
    call_command("export_lab", "hello-scenario", str(out))
    assert sorted(p.relative_to(out).as_posix() for p in (out / "assets").rglob("*") if p.is_file()) == [
        "assets/etc/hello/conf/app.json", "assets/root/solution.sh",
    ]
    assert yaml.safe_load((out / "lab.yaml").read_text())["environment"]["assets"] == "/"
    capsys.readouterr()
    call_command("import_labs", str(out))
    assert capsys.readouterr().out.splitlines() == ["hello-scenario: unchanged"]


def test_a_folder_in_use_is_refused_unless_it_is_an_export_to_replace(tmp_path, capsys):
    imported(tmp_path, capsys)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(CommandError, match="is not empty"):
        call_command("export_lab", "hello", str(busy))
    with pytest.raises(CommandError, match="has no lab.yaml"):
        call_command("export_lab", "hello", str(busy), "--replace")
    out = tmp_path / "out"
    call_command("export_lab", "hello", str(out))
    (out / "steps" / "99-stale.md").write_text("stale")
    (out / "README.md").write_text("kept")
    call_command("export_lab", "hello", str(out), "--replace")
    assert not (out / "steps" / "99-stale.md").exists() and (out / "README.md").read_text() == "kept"
    with pytest.raises(CommandError, match="no lab with the slug 'nope'"):
        call_command("export_lab", "nope", str(tmp_path / "x"))
