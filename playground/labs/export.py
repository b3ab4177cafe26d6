"""Write a lab of the catalogue back out as a lab folder (``manage.py
export_lab``): what was imported, what the admin edited since, and what a
KillerCoda scenario became, as a folder of the project's own format that can
live in git and be imported again.

The folder is exact: Markdown pages and scripts are written as files byte for
byte, everything else into lab.yaml. The export proves it by loading the
folder back with the loader and comparing every field with the lab's; only
then is the folder recorded as the lab's source (with the digest of its
content), so ``import_labs`` of it says ``unchanged`` and the admin's
check_lab command names it.
"""
from __future__ import annotations

import base64
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from .loader import ASSETS_DIR, DEFAULT_ASSETS_PATH, LAB_FILE, LabDef, LabInvalid, load_lab
from .models import Lab

# What an export writes; ``replace`` removes these first (and nothing else).
WRITTEN = (LAB_FILE, "intro.md", "finish.md", "setup.sh", "steps", ASSETS_DIR)


class ExportFailed(Exception):
    pass


@dataclass
class ExportResult:
    slug: str
    folder: Path
    files: int

    def __str__(self) -> str:
        return f"{self.slug}: exported to {self.folder} ({self.files} files)"


def _number(value: float | None):
    """A timeout as YAML writes it back: 60 rather than 60.0 (the digest of a
    lab read from YAML has the integer)."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _name(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-") or "step"


def _document(lab: Lab, steps: list, files: dict[str, bytes]) -> dict:
    """lab.yaml's content; ``files`` receives the files it refers to."""
    environment = lab.environment or {}
    data: dict = {
        "slug": lab.slug,
        "title": lab.title,
        "summary": lab.summary,
        "duration": lab.duration,
        "difficulty": lab.difficulty,
    }
    if lab.tags:
        data["tags"] = list(lab.tags)
    if lab.auto_check:
        data["auto_check"] = True
    if lab.skippable:
        data["skippable"] = True
    env: dict = {}
    if environment.get("template"):
        env["template"] = environment["template"]
    else:
        env["instances"] = []
        for item in environment.get("instances") or []:
            instance = {"name": item["name"]}
            if item.get("image"):
                instance["image"] = item["image"]
            if not item.get("assets", True):
                instance["assets"] = False
            env["instances"].append(instance)
    if environment.get("egress"):
        env["egress"] = environment["egress"]
    if (environment.get("assets_path") or DEFAULT_ASSETS_PATH) != DEFAULT_ASSETS_PATH:
        env["assets"] = environment["assets_path"]
    data["environment"] = env
    files["intro.md"] = lab.intro.encode()
    files["finish.md"] = lab.finish.encode()
    if lab.setup:
        files["setup.sh"] = lab.setup.encode()
        setup: dict = {"script": {"file": "setup.sh"}}
        if lab.setup_instance:
            setup["instance"] = lab.setup_instance
        if lab.setup_timeout is not None:
            setup["timeout"] = _number(lab.setup_timeout)
        data["setup"] = setup
    data["steps"] = []
    for position, step in enumerate(steps, start=1):
        stem = f"steps/{position:02d}-{_name(step.title)}"
        files[f"{stem}.md"] = step.text.encode()
        item: dict = {"title": step.title, "text": f"{stem}.md"}
        if step.instance:
            item["instance"] = step.instance
        if step.check_script:
            files[f"{stem}.check.sh"] = step.check_script.encode()
            item["check"] = {"file": f"{stem}.check.sh"}
        if step.solution:
            files[f"{stem}.solution.sh"] = step.solution.encode()
            item["solution"] = {"file": f"{stem}.solution.sh"}
        if step.hint:
            item["hint"] = step.hint
        if step.timeout is not None:
            item["timeout"] = _number(step.timeout)
        if step.skippable is not None:
            item["skippable"] = step.skippable
        data["steps"].append(item)
    return data


def _differences(lab: Lab, steps: list, lab_def: LabDef) -> list[str]:
    """What of the lab the folder read back does not hold."""
    environment = lab.environment or {}
    wanted = {
        "slug": lab.slug, "title": lab.title, "summary": lab.summary, "duration": lab.duration,
        "difficulty": lab.difficulty, "tags": list(lab.tags or []), "intro": lab.intro, "finish": lab.finish,
        "instances": [(i["name"], i.get("image") or None, i.get("assets", True))
                      for i in environment.get("instances") or []],
        "template": environment.get("template") or "", "egress": environment.get("egress") or "",
        "assets_path": environment.get("assets_path") or DEFAULT_ASSETS_PATH, "assets": lab.assets or {},
        "setup": lab.setup, "setup_instance": (lab.setup_instance or lab.default_instance) if lab.setup else "",
        "setup_timeout": lab.setup_timeout if lab.setup else None, "auto_check": lab.auto_check,
        "skippable": lab.skippable,
    }
    got = {name: getattr(lab_def, name) for name in wanted}
    got["instances"] = [(i.name, i.image, i.assets) for i in lab_def.instances]
    found = [name for name in wanted if got[name] != wanted[name]]
    if len(steps) != len(lab_def.steps):
        found.append(f"{len(steps)} steps became {len(lab_def.steps)}")
    for position, (step, step_def) in enumerate(zip(steps, lab_def.steps), start=1):
        if step.number != position:
            found.append(f"step {step.number} is step {position} in the folder (steps are numbered 1, 2, ...)")
        pairs = {"title": (step.title, step_def.title), "text": (step.text, step_def.text),
                 "instance": (step.instance or lab.default_instance, step_def.instance),
                 "check": (step.check_script, step_def.check), "solution": (step.solution, step_def.solution),
                 "hint": (step.hint, step_def.hint), "timeout": (step.timeout, step_def.timeout),
                 "skippable": (step.skippable, step_def.skippable)}
        found += [f"step {position} {name}" for name, (a, b) in pairs.items() if a != b]
    return found


def export_lab(*, lab: Lab, folder: str | Path, replace: bool = False) -> ExportResult:
    """Write ``lab`` into ``folder`` (missing or empty; ``replace``: a folder
    an export wrote before, whose exported files are replaced), check it
    reads back the same, and record it as the lab's source."""
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise ExportFailed(f"{root} is a file, not a folder")
    if root.exists() and any(root.iterdir()):
        if not replace:
            raise ExportFailed(f"{root} is not empty (--replace writes over a lab folder exported before)")
        if not (root / LAB_FILE).is_file():
            raise ExportFailed(f"{root} has no {LAB_FILE}: --replace only writes over a lab folder")
        for name in WRITTEN:
            target = root / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    steps = list(lab.steps.order_by("number"))
    files: dict[str, bytes] = {}
    document = _document(lab, steps, files)
    for relative, item in (lab.assets or {}).items():
        files[f"{ASSETS_DIR}/{relative}"] = base64.b64decode(item["data"])
    root.mkdir(parents=True, exist_ok=True)
    for relative, data in files.items():
        target = root / relative
        if not target.resolve().is_relative_to(root.resolve()):
            raise ExportFailed(f"the asset {relative} would be written outside {root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if relative.startswith(f"{ASSETS_DIR}/"):
            executable = (lab.assets or {})[relative[len(ASSETS_DIR) + 1:]].get("executable")
            target.chmod(0o755 if executable else 0o644)
    (root / LAB_FILE).write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100))
    try:
        lab_def = load_lab(root)
    except LabInvalid as exc:
        raise ExportFailed(f"the exported folder does not load:\n{exc}") from None
    differences = _differences(lab, steps, lab_def)
    if differences:
        raise ExportFailed(f"the exported folder does not hold the lab exactly: {', '.join(differences)}")
    Lab.objects.filter(pk=lab.pk).update(source=lab_def.source, digest=lab_def.digest())
    return ExportResult(slug=lab.slug, folder=root, files=len(files) + 1)
