"""Read and validate a lab folder (lab.yaml, Markdown files, scripts, assets/).

No Django here: the loader turns a folder into a ``LabDef`` or raises
``LabInvalid`` with every problem found, each naming the file, the line (from
the YAML nodes' marks) and what is wrong, as an author needs to fix it:

    labs/hello/lab.yaml:14: steps[2].check: no file checks/2.sh in the lab folder

The format is ``lab.schema.json`` beside this module; this module adds what a
schema cannot say (files exist, names refer to declared instances, ...).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from . import markdown

SCHEMA_PATH = Path(__file__).with_name("lab.schema.json")
LAB_FILE = "lab.yaml"
ASSETS_DIR = "assets"
MAX_TEXT_BYTES = 256 * 1024
MAX_SCRIPT_BYTES = 64 * 1024
MAX_ASSET_BYTES = 8 * 1024 * 1024
MAX_ASSET_FILES = 200
DEFAULT_ASSETS_PATH = "/root"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class LabInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class InstanceDef:
    name: str
    image: str | None
    """None: the playground's default image."""
    assets: bool = True


@dataclass(frozen=True)
class StepDef:
    number: int
    title: str
    text: str
    instance: str
    check: str = ""
    solution: str = ""
    hint: str = ""
    timeout: float | None = None
    skippable: bool | None = None
    """None: the lab's ``skippable``."""


@dataclass(frozen=True)
class LabDef:
    slug: str
    title: str
    summary: str
    duration: int
    difficulty: str
    tags: list[str]
    intro: str
    finish: str
    instances: list[InstanceDef]
    template: str
    assets_path: str
    assets: dict[str, dict]
    """Relative path -> {"data": base64, "executable": bool}."""
    setup: str
    setup_instance: str
    setup_timeout: float | None
    auto_check: bool
    steps: list[StepDef] = field(default_factory=list)
    source: str = ""
    egress: str = ""  # "", or a policy of settings.EGRESS_POLICIES
    skippable: bool = False
    """Whether learners may skip steps (each step may say otherwise)."""

    def digest(self) -> str:
        """A hash of everything imported, to tell an unchanged lab."""
        body = asdict(self)
        body.pop("source")
        # Fields added later count only when set, so that labs imported
        # before them keep their digest (a re-import says "unchanged").
        if not body["skippable"]:
            body.pop("skippable")
        for step in body["steps"]:
            if step["skippable"] is None:
                step.pop("skippable")
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@cache
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


# -- YAML with line numbers -------------------------------------------------------------

def _node_lines(node: yaml.Node, path: tuple, lines: dict, keys: dict, problems: list, file: str) -> None:
    """Record the 1-based line of every node by its path; report duplicate keys
    (PyYAML silently keeps the last)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in seen:
                problems.append(Problem(file, key_node.start_mark.line + 1, f"{_where(path + (key,))}: duplicate key"))
            seen.add(key)
            keys[path + (key,)] = key_node.start_mark.line + 1
            _node_lines(value_node, path + (key,), lines, keys, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_lines(item, path + (index,), lines, keys, problems, file)


def _where(path: tuple) -> str:
    """``steps[2].check`` for ("steps", 1, "check"): 1-based like the steps."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


class _Doc:
    """lab.yaml parsed, with the line of each path."""

    def __init__(self, file: str, text: str, problems: list[Problem]) -> None:
        self.file = file
        self.lines: dict[tuple, int] = {}
        self.keys: dict[tuple, int] = {}
        self.data = None
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            problems.append(Problem(file, line, f"not valid YAML: {exc.problem or exc.context}"))
            return
        except yaml.YAMLError as exc:
            problems.append(Problem(file, None, f"not valid YAML: {exc}"))
            return
        if node is not None:
            _node_lines(node, (), self.lines, self.keys, problems, file)

    def line(self, path: tuple) -> int | None:
        """The line of the key naming ``path`` (or of the node, for list
        items), else of its nearest parent."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.keys.get(path) or self.lines.get(path)

    def problem(self, path: tuple, message: str) -> Problem:
        return Problem(self.file, self.line(path), f"{_where(path)}: {message}")


def _schema_problems(doc: _Doc) -> list[Problem]:
    problems = []
    validator = Draft202012Validator(schema())
    for error in sorted(validator.iter_errors(doc.data), key=lambda e: (doc.line(e.absolute_path) or 0, e.message)):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - allowed, key=str):
                known = ", ".join(sorted(allowed))
                problems.append(doc.problem(path + (key,), f"unknown key (expected one of: {known})"))
            continue
        if error.validator == "required":
            problems.append(doc.problem(path, error.message.replace("is a required property", "is missing")))
            continue
        if error.validator == "pattern":
            message = f"{error.instance!r} does not have the expected form ({_pattern_words(error.validator_value)})"
        elif error.validator == "enum":
            message = f"{error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
        elif error.validator == "type":
            expected = error.validator_value
            expected = " or ".join(expected) if isinstance(expected, list) else expected
            message = f"expected {expected}, found {type(error.instance).__name__} {error.instance!r}"
        else:
            message = error.message
        problems.append(doc.problem(path, message))
    return problems


def _pattern_words(pattern: str) -> str:
    return {
        "^[a-z][a-z0-9-]{0,62}$": "a lowercase name starting with a letter, like node1",
        "^[a-z0-9][a-z0-9-]{0,63}$": "lowercase letters, digits and dashes",
        "^[a-z0-9][a-z0-9-]{0,31}$": "lowercase letters, digits and dashes",
        "^[^/]": "a path relative to the lab folder",
    }.get(pattern, f"pattern {pattern}")


# -- files of the lab folder ------------------------------------------------------------

def _read_file(root: Path, relative: str, *, limit: int, doc: _Doc, path: tuple, problems: list) -> str | None:
    """The text of a file of the lab folder named at ``path`` of lab.yaml."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        problems.append(doc.problem(path, f"{relative} is outside the lab folder"))
        return None
    if not target.is_file():
        problems.append(doc.problem(path, f"no file {relative} in the lab folder"))
        return None
    raw = target.read_bytes()
    if len(raw) > limit:
        problems.append(doc.problem(path, f"{relative} is larger than {limit // 1024} KiB"))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(_display(root, target), line, "not UTF-8 text"))
        return None


def _script(root: Path, value, *, doc: _Doc, path: tuple, problems: list) -> str:
    if isinstance(value, dict):
        return _read_file(root, value["file"], limit=MAX_SCRIPT_BYTES, doc=doc, path=path + ("file",), problems=problems) or ""
    if len(value.encode()) > MAX_SCRIPT_BYTES:
        problems.append(doc.problem(path, f"the script is larger than {MAX_SCRIPT_BYTES // 1024} KiB"))
        return ""
    return value


def _display(root: Path, target: Path) -> str:
    """A file's name as an author reads it: the lab folder as given, then the path in it."""
    try:
        return str(root / target.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(target)


def _assets(root: Path, problems: list) -> dict[str, dict]:
    folder = root / ASSETS_DIR
    if not folder.is_dir():
        return {}
    found: dict[str, dict] = {}
    total = 0
    for item in sorted(folder.rglob("*")):
        shown = _display(root, item) if not item.is_symlink() else str(item)
        if item.is_symlink():
            problems.append(Problem(shown, None, "symbolic links are not copied into instances; use a regular file"))
            continue
        if item.is_dir():
            continue
        data = item.read_bytes()
        total += len(data)
        relative = item.relative_to(folder).as_posix()
        found[relative] = {"data": base64.b64encode(data).decode(), "executable": bool(item.stat().st_mode & 0o111)}
    if len(found) > MAX_ASSET_FILES:
        problems.append(Problem(str(folder), None, f"{len(found)} files; at most {MAX_ASSET_FILES}"))
    if total > MAX_ASSET_BYTES:
        problems.append(Problem(str(folder), None, f"{total} bytes in all; at most {MAX_ASSET_BYTES}"))
    return found


def _markdown(root: Path, relative: str, *, doc: _Doc, path: tuple, problems: list, instances: set[str] | None) -> str:
    text = _read_file(root, relative, limit=MAX_TEXT_BYTES, doc=doc, path=path, problems=problems)
    if text is None:
        return ""
    if instances is not None:
        for block in markdown.code_blocks(text):
            if block.run and block.run not in instances:
                known = ", ".join(sorted(instances))
                problems.append(Problem(str(root / relative), block.line,
                                        f"run={block.run}: no instance of that name (the lab has: {known})"))
    return text


# -- the lab ---------------------------------------------------------------------------------

def load_lab(folder: str | Path) -> LabDef:
    """The lab in ``folder``; raises ``LabInvalid`` listing every problem."""
    root = Path(folder)
    lab_file = root / LAB_FILE
    shown = str(lab_file)
    if not lab_file.is_file():
        raise LabInvalid([Problem(shown, None, f"no {LAB_FILE} here (a lab is a folder with a {LAB_FILE})")])
    problems: list[Problem] = []
    try:
        text = lab_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LabInvalid([Problem(shown, None, "not UTF-8 text")]) from None
    doc = _Doc(shown, text, problems)
    if problems and doc.data is None:
        raise LabInvalid(problems)
    if not isinstance(doc.data, dict):
        raise LabInvalid([Problem(shown, 1, "expected a mapping of keys (title:, summary:, steps: ...)")])
    problems += _schema_problems(doc)
    if problems:
        # Shapes are wrong: the checks below would only repeat them.
        raise LabInvalid(problems)
    data = doc.data

    slug = data.get("slug") or root.resolve().name
    if not _SLUG.match(slug):
        problems.append(Problem(shown, doc.line(("slug",)) or 1,
                                f"slug: the folder name {slug!r} is not a slug; rename it or set slug:"))

    environment = data["environment"]
    template = environment.get("template", "")
    instance_list = environment.get("instances", [])
    if bool(template) == bool(instance_list):
        problems.append(doc.problem(("environment",), "give either instances or template (exactly one)"))
    names: list[str] = []
    instances = []
    for index, item in enumerate(instance_list):
        if item["name"] in names:
            problems.append(doc.problem(("environment", "instances", index, "name"), f"{item['name']!r} is used twice"))
        names.append(item["name"])
        instances.append(InstanceDef(name=item["name"], image=item.get("image"), assets=item.get("assets", True)))
    # With a template, its instances' names are not known here: allow any.
    known = set(names) if not template else None
    default_instance = names[0] if names else ""

    def instance_at(path: tuple, value: str | None) -> str:
        if value and known is not None and value not in known:
            problems.append(doc.problem(path, f"no instance named {value!r} (the lab has: {', '.join(names)})"))
        return value or default_instance

    setup, setup_instance, setup_timeout = "", "", None
    if "setup" in data:
        setup = _script(root, data["setup"]["script"], doc=doc, path=("setup", "script"), problems=problems)
        wanted = data["setup"].get("instance")
        setup_instance = "all" if wanted == "all" else instance_at(("setup", "instance"), wanted)
        setup_timeout = data["setup"].get("timeout")

    steps = []
    for index, item in enumerate(data["steps"]):
        path = ("steps", index)
        instance = instance_at(path + ("instance",), item.get("instance"))
        steps.append(StepDef(
            number=index + 1,
            title=item["title"],
            text=_markdown(root, item["text"], doc=doc, path=path + ("text",), problems=problems, instances=known),
            instance=instance,
            check=_script(root, item["check"], doc=doc, path=path + ("check",), problems=problems) if "check" in item else "",
            solution=_script(root, item["solution"], doc=doc, path=path + ("solution",), problems=problems) if "solution" in item else "",
            hint=item.get("hint", ""),
            timeout=item.get("timeout"),
            skippable=item.get("skippable"),
        ))

    def page(key: str) -> str:
        relative = data.get(key, f"{key}.md")
        return _markdown(root, relative, doc=doc, path=(key,), problems=problems, instances=known)

    lab = LabDef(
        slug=slug,
        title=data["title"],
        summary=data["summary"],
        duration=data["duration"],
        difficulty=data["difficulty"],
        tags=list(data.get("tags", [])),
        intro=page("intro"),
        finish=page("finish"),
        instances=instances,
        template=template,
        egress=environment.get("egress", ""),
        assets_path=environment.get("assets", DEFAULT_ASSETS_PATH),
        assets=_assets(root, problems),
        setup=setup,
        setup_instance=setup_instance,
        setup_timeout=setup_timeout,
        auto_check=bool(data.get("auto_check", False)),
        skippable=bool(data.get("skippable", False)),
        steps=steps,
        source=str(root.resolve()),
    )
    if problems:
        raise LabInvalid(problems)
    return lab


def find_labs(paths: list[str | Path]) -> list[Path]:
    """Lab folders named by ``paths``: a lab folder itself, or a folder whose
    subfolders are labs (like the project's ``labs/``)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / LAB_FILE).is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(child for child in path.iterdir() if (child / LAB_FILE).is_file()))
    return found
