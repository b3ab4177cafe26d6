"""Read a KillerCoda (formerly Katacoda) scenario folder as a lab.

No Django here, like the loader: ``load_scenario(folder)`` turns a folder with
an ``index.json`` into the same ``LabDef`` the loader makes of a ``lab.yaml``
folder (so ``import_labs`` and ``check_lab`` treat both alike), plus warnings
for what the lab runs without. What cannot run is refused (``LabInvalid``).
Every problem names the file and the line, like the loader's:

    scenario/index.json:31: warning: details.assets.host01[2].file: no file in assets/ matches 'k8s.sh'; nothing copied

The mapping (docs/labs.md, "Importing KillerCoda scenarios"):

=========================================  ===========================================
KillerCoda                                 lab
=========================================  ===========================================
``title``, ``description``                 title, summary
``details.intro.text`` / ``finish.text``   intro, finish
``details.intro.background``               the set-up (on node1)
``details.steps[].background``             appended to the set-up (warning: not when
                                           the step opens)
``foreground`` (intro, step, finish)       a ``bash onopen`` block: typed into the
                                           terminal once, when that page opens
``details.steps[].verify``                 the step's check (exit code 0: done)
``<details><summary>Solution``             kept in the text (collapsed); its commands
                                           become the step's solution (check_lab runs it)
``<details><summary>Hint``/``Tip``         kept in the text; also the step's hint
``details.assets.host01[]``                assets (globs expanded, ``~`` is /root,
                                           ``chmod +x`` the executable bit)
``backend.imageid`` ubuntu (and alike)     one instance, node1, of the docker image
inline code + ``{{exec}}``; a closing    inline code + ``{{run}}``; a ``run`` fence
fence with ``{{exec}}``
``{{exec interrupt}}``                     ``{{run interrupt}}``, an ``interrupt`` fence
``{{copy}}``                               ``{{copy}}`` inline code, a ``norun`` fence
``{{execute}}`` (Katacoda), ``T2``         as ``{{exec}}``; a second terminal or host is
                                           the only one (warning)
``{{TRAFFIC_HOST1_80}}``                   ``{{url node1 80}}``
=========================================  ===========================================

Refused: a Kubernetes or unknown backend, a challenge, a missing text or
script file, no steps. Warned: an IDE layout, assets that match no file,
other hosts' assets, a ``chmod`` beyond the executable bit, HTML other than
details/summary/br (shown as text), images of the scenario folder, a second
host or terminal, a step's or the finish page's background.
"""
from __future__ import annotations

import base64
import bisect
import json
import posixpath
import re
from dataclasses import dataclass, field
from json.decoder import scanstring
from pathlib import Path

from . import loader
from .loader import InstanceDef, LabDef, LabInvalid, Problem, StepDef

INDEX_FILE = "index.json"
COURSE_FILE = "structure.json"
ASSETS_DIR = "assets"
INSTANCE = "node1"
IMAGE = "docker"
# Images of one Linux host with a Docker Engine: the playground's docker image.
_SINGLE_HOST = re.compile(r"^(ubuntu|debian|docker|bash|centos|alpine)([-_:.].*)?$", re.IGNORECASE)
_KUBERNETES = re.compile(r"kubernetes|k8s|k3s|minikube|kind|openshift|cluster", re.IGNORECASE)
_TERMINAL_LAYOUTS = {"", "terminal", "terminal-terminal"}
_FENCE = re.compile(r"^(\s{0,3})(`{3,}|~{3,})(.*)$")
_ACTION = r"\{\{\s*(exec|execute|copy)?((?:\s+[\w-]+)*)\s*\}\}"
_INLINE = re.compile(r"(`+)([^`\n]+?)\1" + _ACTION)
_ANY_MARK = re.compile(r"(`+)([^`\n]+?)\1\{\{([^}]*)\}\}")
_TRAFFIC = re.compile(r"\{\{\s*TRAFFIC_HOST(\d+)_(\d{1,5})\s*\}\}")
_KATACODA_URL = re.compile(
    r"https?://\[\[HOST(\d*)_SUBDOMAIN\]\]-(\d{1,5})-\[\[KATACODA_HOST\]\]\.environments\.katacoda\.com"
)
_KATACODA_VAR = re.compile(r"\[\[[A-Z0-9_]+\]\]")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_BR_LINE = re.compile(r"^\s*(<br\s*/?>\s*)+$", re.IGNORECASE)
_DETAILS_OPEN = re.compile(r"^\s*<details>\s*(?:<summary>(.*?)</summary>)?\s*$", re.IGNORECASE)
_SUMMARY = re.compile(r"^\s*<summary>(.*?)</summary>\s*$", re.IGNORECASE)
_DETAILS_CLOSE = re.compile(r"^\s*</details>\s*$", re.IGNORECASE)
# HTML elements (not placeholders such as <image> or <your-name>, which show as text anyway).
_HTML_TAG = re.compile(
    r"</?(a|b|i|u|em|strong|img|p|div|span|code|pre|kbd|sup|sub|small|center|font|ul|ol|li|table|thead|tbody|"
    r"tr|td|th|h[1-6]|hr|iframe|script|style|blockquote|section|input|button|video|audio|source|br|details|"
    r"summary)(\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_CODE_SPAN = re.compile(r"(`+)[^`\n]*?\1")
_LOCAL_IMAGE = re.compile(r"!\[[^\]]*\]\((?!https?://|data:)([^)\s]+)")
_SOLUTION = re.compile(r"solution|answer", re.IGNORECASE)
_HINT = re.compile(r"hint|tip", re.IGNORECASE)
_SHELLISH = {"", "bash", "sh", "shell", "console", "zsh", "plain", "plaintext", "text"}
_ERREXIT = re.compile(r"^\s*(exit\b|set\s+-[a-zA-Z]*e|set\s+-o\s+errexit)", re.MULTILINE)


@dataclass
class Scenario:
    """A scenario read: the lab, and what it runs without."""

    lab: LabDef
    warnings: list[Problem] = field(default_factory=list)


class ScenarioInvalid(LabInvalid):
    """What cannot run (``problems``), and the warnings found on the way."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        super().__init__(problems)
        self.warnings = warnings or []


def warning(file: str, line: int | None, message: str) -> Problem:
    return Problem(file, line, f"warning: {message}")


# -- index.json with line numbers ---------------------------------------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


def json_lines(text: str) -> dict[tuple, int]:
    """The 1-based line of every key (and list item) of valid JSON ``text``, by path."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    lines: dict[tuple, int] = {}

    def line_at(position: int) -> int:
        return bisect.bisect_right(starts, position)

    def value(position: int, path: tuple) -> int:
        position = _WHITESPACE.match(text, position).end()
        lines.setdefault(path, line_at(position))
        char = text[position]
        if char in "{[":
            closing = "}" if char == "{" else "]"
            position = _WHITESPACE.match(text, position + 1).end()
            index = 0
            while text[position] != closing:
                if char == "{":
                    key, after = scanstring(text, position + 1)
                    lines[path + (key,)] = line_at(position)
                    position = _WHITESPACE.match(text, after).end() + 1  # the colon
                    position = value(position, path + (key,))
                else:
                    position = value(position, path + (index,))
                    index += 1
                position = _WHITESPACE.match(text, position).end()
                if text[position] == ",":
                    position = _WHITESPACE.match(text, position + 1).end()
            return position + 1
        if char == '"':
            return scanstring(text, position + 1)[1]
        return _SCALAR.match(text, position).end()

    value(0, ())
    return lines


class _Index:
    """index.json parsed, with the line of each path."""

    def __init__(self, file: Path, problems: list[Problem]) -> None:
        self.file = str(file)
        self.data: dict = {}
        self.lines: dict[tuple, int] = {}
        try:
            text = file.read_text(encoding="utf-8")
            data = json.loads(text)
        except UnicodeDecodeError:
            problems.append(Problem(self.file, None, "not UTF-8 text"))
            return
        except json.JSONDecodeError as exc:
            problems.append(Problem(self.file, exc.lineno, f"not valid JSON: {exc.msg}"))
            return
        if not isinstance(data, dict):
            problems.append(Problem(self.file, 1, "expected an object (title, description, details, backend)"))
            return
        self.data, self.lines = data, json_lines(text)

    def line(self, path: tuple) -> int | None:
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def get(self, *path, default=None):
        node = self.data
        for part in path:
            if isinstance(node, dict) and isinstance(part, str) and part in node or isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return default
        return node

    def problem(self, path: tuple, message: str) -> Problem:
        return Problem(self.file, self.line(path), f"{loader._where(path)}: {message}")

    def warning(self, path: tuple, message: str) -> Problem:
        return warning(self.file, self.line(path), f"{loader._where(path)}: {message}")


# -- Markdown ---------------------------------------------------------------------------------------

@dataclass
class _Details:
    summary: str
    line: int | None
    lines: list[str] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)
    """(command, the text since the previous command): exec'd code in it."""
    shell_blocks: list[str] = field(default_factory=list)
    since: list[str] = field(default_factory=list)


@dataclass
class Page:
    """A converted Markdown page and what its Solution and Hint sections carry."""

    text: str
    solution: str = ""
    hint: str = ""


def _action(kind: str | None, words: list[str], file: str, line: int, warnings: list[Problem]) -> str | None:
    """Our marker words for a KillerCoda action: "run", "run interrupt",
    "copy", or None (no action: plain code)."""
    if kind is None:
        if words:
            warnings.append(warning(file, line, f"{{{{{' '.join(words)}}}}}: an unknown action; shown as plain code"))
        return None
    if kind == "copy":
        return "copy"
    interrupt = False
    for word in words:
        lower = word.lower()
        if lower == "interrupt":
            interrupt = True
        elif lower in ("t1", "host1"):
            continue
        elif re.fullmatch(r"t\d+", lower):
            warnings.append(warning(file, line, f"{{{{{kind} {word}}}}}: a terminal of its own is not carried; "
                                                "it runs in the lab's only terminal"))
        elif re.fullmatch(r"host\d+", lower):
            warnings.append(warning(file, line, f"{{{{{kind} {word}}}}}: the lab has one host; it runs on {INSTANCE}"))
        else:
            warnings.append(warning(file, line, f"{{{{{kind} {word}}}}}: {word!r} is not understood; ignored"))
    return "run interrupt" if interrupt else "run"


def _outside_code(line: str, change) -> str:
    """``line`` with ``change`` applied to the parts outside code spans."""
    parts, last = [], 0
    for span in _CODE_SPAN.finditer(line):
        parts += [change(line[last:span.start()]), span.group(0)]
        last = span.end()
    return "".join(parts + [change(line[last:])])


def _prose(line: str, file: str, number: int, warnings: list[Problem]) -> tuple[str, list[str]]:
    """A line outside code blocks converted; and the commands it runs."""
    commands: list[str] = []

    def inline(found: re.Match) -> str:
        ticks, code, kind, words = found.group(1), found.group(2), found.group(3), found.group(4).split()
        action = _action(kind and kind.lower(), words, file, number, warnings)
        if action is None:
            return f"{ticks}{code}{ticks}"
        if action.startswith("run"):
            commands.append(code.strip() if len(ticks) == 1 else code)
        return f"{ticks}{code}{ticks}{{{{{action}}}}}"

    line = _INLINE.sub(inline, line)
    line = _outside_code(line, lambda part: _BR.sub(" ", part))
    for found in _ANY_MARK.finditer(line):
        if not re.fullmatch(r"\s*(run|copy)(\s+interrupt)?\s*", found.group(3)):
            warnings.append(warning(file, number, f"{{{{{found.group(3)}}}}}: an unknown action; shown as text"))

    def traffic(found: re.Match) -> str:
        host, port = int(found.group(1) or 1), found.group(2)
        if host != 1:
            warnings.append(warning(file, number, f"{found.group(0)}: the lab has one host; the link is to {INSTANCE}"))
        return f"{{{{url {INSTANCE} {port}}}}}"

    line = _TRAFFIC.sub(traffic, line)
    line = _KATACODA_URL.sub(traffic, line)
    for found in _KATACODA_VAR.finditer(line):
        warnings.append(warning(file, number, f"{found.group(0)}: a Katacoda variable the lab does not fill in"))
    bare = _CODE_SPAN.sub("", line)
    for found in _HTML_TAG.finditer(bare):
        if not re.fullmatch(r"</?(details|summary|br)\s*/?>", found.group(0), re.IGNORECASE):
            warnings.append(warning(file, number, f"{found.group(0)}: HTML is shown as text"))
            break
    for found in _LOCAL_IMAGE.finditer(bare):
        warnings.append(warning(file, number, f"the image {found.group(1)} of the scenario folder is not shown "
                                              "(labs show images by URL only)"))
    return line, commands


def convert_markdown(source: str, file: str, warnings: list[Problem], *, whole_solution: bool = False) -> Page:
    """KillerCoda Markdown in the lab's dialect (markdown.py), with the
    commands of a Solution section and the text of a Hint or Tip section.
    ``whole_solution``: the page is a solution (Katacoda's ``answer``), shown
    as a Solution section."""
    out: list[str] = []
    details: list[_Details] = []
    if whole_solution:
        out += ["<details>", "<summary>Solution</summary>", ""]
        details.append(_Details(summary="Solution", line=None))
    solutions: list[str] = []
    hints: list[str] = []
    lines = source.replace("\r\n", "\n").split("\n")
    index = 0

    def emit(text: str, *, code: bool = False) -> None:
        if not code and not text.strip() and out[-2:] == ["", ""]:
            return  # no runs of blank lines (details and <br> lines leave them)
        out.append(text)
        for section in details:
            section.lines.append(text)

    def ran(command: str) -> None:
        for section in details:
            section.commands.append((command, "\n".join(section.since)))
            section.since.clear()

    def prose(text: str) -> None:
        for section in details:
            section.since.append(text)

    while index < len(lines):
        line, number = lines[index], index + 1
        fence = _FENCE.match(line)
        if fence:
            indent, marks, info = fence.groups()
            # The closing fence: the same marks (or more), maybe an action after them.
            closing = re.compile(rf"^\s{{0,3}}{re.escape(marks[0])}{{{len(marks)},}}\s*(?:{_ACTION})?\s*$")
            end = index + 1
            while end < len(lines) and not closing.match(lines[end]):
                end += 1
            body = lines[index + 1:end]
            found = closing.match(lines[end]) if end < len(lines) else None
            kind = found.group(1) if found else None
            words = found.group(2).split() if found and found.group(2) else []
            action = _action(kind and kind.lower(), words, file, end + 1, warnings) if (kind or words) else None
            language = info.split()[0].lower() if info.split() else ""
            flags = {"run": "run", "run interrupt": "run interrupt", "copy": "norun", None: "norun"}[action]
            emit(f"{indent}{marks}{(language + ' ') if language else ''}{flags}")
            for text in body:
                emit(text, code=True)
            emit(f"{indent}{marks}")
            code = "\n".join(body)
            if action and action.startswith("run"):
                ran(code)
            else:
                prose("")
                for section in details:
                    if language in _SHELLISH and language not in ("plain", "plaintext", "text"):
                        section.shell_blocks.append(code)
            index = end + 1
            continue
        if _BR_LINE.match(line):
            emit("")
            index += 1
            continue
        opening = _DETAILS_OPEN.match(line)
        if opening:
            summary = opening.group(1)
            if summary is None and index + 1 < len(lines) and _SUMMARY.match(lines[index + 1]):
                index += 1
                summary = _SUMMARY.match(lines[index]).group(1)
            summary = (summary or "Details").strip()
            emit("<details>")
            emit(f"<summary>{summary}</summary>")
            emit("")
            details.append(_Details(summary=summary, line=number))
            index += 1
            continue
        if _DETAILS_CLOSE.match(line) and details:
            section = details.pop()
            emit("")
            emit("</details>")
            if _SOLUTION.search(section.summary):
                solutions.append(_solution_of(section))
            elif _HINT.search(section.summary):
                hints.append("\n".join(section.lines).strip())
            index += 1
            continue
        converted, commands = _prose(line, file, number, warnings)
        emit(converted)
        prose(converted)
        for command in commands:
            ran(command)
        index += 1
    if whole_solution:
        section = details.pop(0)
        solutions.append(_solution_of(section))
        out += ["", "</details>"]
    for section in details:
        warnings.append(warning(file, section.line, f"<details> ({section.summary}) is never closed; shown as text"))
    return Page(
        text="\n".join(out),
        solution="\n".join(s for s in solutions if s),
        hint="\n\n".join(h for h in hints if h),
    )


def _solution_of(section: _Details) -> str:
    """The commands a Solution section runs, in order; of alternatives written
    "A, OR B", only the first."""
    chosen: list[str] = []
    for command, before in section.commands:
        words = re.sub(r"<[^>]*>", " ", before).split()
        if chosen and [w.lower().strip("*_:.") for w in words] == ["or"]:
            continue
        chosen.append(command)
    if not chosen:
        chosen = section.shell_blocks
    return "\n".join(c.rstrip("\n") for c in chosen if c.strip())


def typed_block(script: str) -> str:
    """A foreground script as a block the player types into the terminal when
    the page opens. One that could end the learner's shell (``exit``, ``set
    -e``) is typed as a here-document to a bash of its own."""
    lines = script.replace("\r\n", "\n").split("\n")
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    body = "\n".join(lines).strip("\n")
    if _ERREXIT.search(body):
        body = f"bash <<'FOREGROUND_EOF'\n{body}\nFOREGROUND_EOF"
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}bash onopen\n{body}\n{fence}\n"


# -- the scenario -------------------------------------------------------------------------------------

def is_scenario(folder: str | Path) -> bool:
    return (Path(folder) / INDEX_FILE).is_file()


def is_course(folder: str | Path) -> bool:
    return (Path(folder) / COURSE_FILE).is_file() and not is_scenario(folder)


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug or "scenario"


class _Reader:
    def __init__(self, root: Path, index: _Index, problems: list[Problem], warnings: list[Problem]) -> None:
        self.root, self.index, self.problems, self.warnings = root, index, problems, warnings

    def file(self, path: tuple, *, limit: int, optional: bool = False) -> tuple[str, str] | None:
        """(text, shown name) of the file named at ``path`` of index.json."""
        relative = self.index.get(*path)
        if relative is None:
            if not optional:
                self.problems.append(self.index.problem(path, "is missing"))
            return None
        if not isinstance(relative, str) or not relative.strip():
            self.problems.append(self.index.problem(path, f"expected a file name, found {relative!r}"))
            return None
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root.resolve()):
            self.problems.append(self.index.problem(path, f"{relative} is outside the scenario folder"))
            return None
        if not target.is_file():
            self.problems.append(self.index.problem(path, f"no file {relative} in the scenario folder"))
            return None
        raw = target.read_bytes()
        shown = str(self.root / relative)
        if len(raw) > limit:
            self.problems.append(self.index.problem(path, f"{relative} is larger than {limit // 1024} KiB"))
            return None
        try:
            return raw.decode("utf-8"), shown
        except UnicodeDecodeError as exc:
            self.problems.append(Problem(shown, raw[: exc.start].count(b"\n") + 1, "not UTF-8 text"))
            return None

    def page(self, path: tuple, *, optional: bool = False) -> Page:
        found = self.file(path, limit=loader.MAX_TEXT_BYTES, optional=optional)
        if found is None:
            return Page("")
        return convert_markdown(found[0], found[1], self.warnings)

    def script(self, path: tuple) -> str:
        found = self.file(path, limit=loader.MAX_SCRIPT_BYTES, optional=True)
        return found[0] if found else ""


def _clip(text: str, limit: int, index: _Index, path: tuple, warnings: list[Problem]) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        warnings.append(index.warning(path, f"longer than {limit} characters; cut"))
        text = text[: limit - 3].rstrip() + "..."
    return text


def _duration(index: _Index, steps: int) -> int:
    found = re.search(r"\d+", str(index.get("time", default="")))
    minutes = int(found.group(0)) if found else 5 * steps
    return min(max(minutes, 1), 600)


_DIFFICULTIES = {"beginner": "beginner", "easy": "beginner", "intermediate": "intermediate",
                 "medium": "intermediate", "advanced": "advanced", "hard": "advanced"}


def _difficulty(index: _Index) -> str:
    """Katacoda's ``difficulty`` where it has one; KillerCoda's have none."""
    return _DIFFICULTIES.get(str(index.get("difficulty", default="")).strip().lower(), "beginner")


def _backend(index: _Index, problems: list[Problem], warnings: list[Problem]) -> None:
    image = index.get("backend", "imageid")
    if image is None:
        image = index.get("environment", "imageid")  # older Katacoda files
    path = ("backend", "imageid") if index.get("backend", "imageid") is not None else ("environment", "imageid")
    if image is None:
        warnings.append(index.warning(("backend",), f"no backend.imageid; the lab runs on the {IMAGE} image"))
    elif not isinstance(image, str):
        problems.append(index.problem(path, f"expected an image name, found {image!r}"))
    elif _KUBERNETES.search(image):
        problems.append(index.problem(path, f"{image!r}: a Kubernetes backend cannot run here "
                                            f"(the playground's instances are single Linux hosts with Docker)"))
    elif not _SINGLE_HOST.match(image):
        problems.append(index.problem(path, f"{image!r}: an unknown backend; this import knows single-host "
                                            f"images (ubuntu and alike), which run on the {IMAGE} image"))
    if str(index.get("type", default="")).startswith("challenge"):
        problems.append(index.problem(("type",), "KillerCoda challenges (challenge.sh tasks) cannot be imported; "
                                                 "scenarios with steps can"))
    for path in (("interface", "layout"), ("environment", "uilayout")):
        layout = index.get(*path)
        if layout is not None and str(layout).lower() not in _TERMINAL_LAYOUTS:
            warnings.append(index.warning(path, f"the {layout!r} layout (an editor, tabs) is not carried; "
                                                "the lab shows the terminal"))
    for key in ("showdashboard", "dashboards"):
        if index.get("environment", key) is not None:
            warnings.append(index.warning(("environment", key), "dashboard tabs are not carried; "
                                                                "use {{url node1 PORT}} links in the text"))


def _chmod_executable(mode, index: _Index, path: tuple, warnings: list[Problem]) -> bool:
    if mode is None:
        return False
    mode = str(mode).strip()
    if re.fullmatch(r"[ugoa]*\+[rwx]*x[rwx]*", mode):
        return True
    if re.fullmatch(r"0?[0-7]{3,4}", mode):
        return bool(int(mode, 8) & 0o111)
    warnings.append(index.warning(path, f"chmod {mode}: only +x is carried; ignored"))
    return False


def _target_dir(target, index: _Index, path: tuple, warnings: list[Problem]) -> str:
    target = str(target or "").strip() or "/root"
    if target == "~" or target.startswith("~/"):
        target = "/root" + target[1:]
    if not target.startswith("/"):
        warnings.append(index.warning(path, f"{target!r} is not an absolute directory; taken as /root/{target}"))
        target = "/root/" + target
    return posixpath.normpath(target)


def _assets(root: Path, index: _Index, problems: list[Problem], warnings: list[Problem]) -> tuple[str, dict]:
    """(the assets' base directory, relative path -> {data, executable})."""
    hosts = index.get("details", "assets", default={}) or {}
    if not isinstance(hosts, dict):
        problems.append(index.problem(("details", "assets"), "expected an object of hosts (host01: [...])"))
        return loader.DEFAULT_ASSETS_PATH, {}
    folder = root / ASSETS_DIR
    placed: dict[str, dict] = {}  # absolute path -> item
    for host, items in hosts.items():
        if host != "host01":
            warnings.append(index.warning(("details", "assets", host), f"the lab has one host ({INSTANCE}); "
                                                                       f"{host}'s files are not copied"))
            continue
        for number, item in enumerate(items if isinstance(items, list) else []):
            path = ("details", "assets", host, number)
            if not isinstance(item, dict) or not isinstance(item.get("file"), str):
                problems.append(index.problem(path, "expected {\"file\": ..., \"target\": ...}"))
                continue
            pattern = item["file"]
            target = _target_dir(item.get("target"), index, path + ("target",), warnings)
            executable = _chmod_executable(item.get("chmod"), index, path + ("chmod",), warnings)
            if ".." in Path(pattern).parts or pattern.startswith("/"):
                problems.append(index.problem(path + ("file",), f"{pattern} is outside the assets folder"))
                continue
            matches = sorted(folder.glob(pattern)) if folder.is_dir() else []
            files: list[tuple[Path, str]] = []
            for match in matches:
                if match.is_symlink():
                    warnings.append(index.warning(path + ("file",), f"{match.relative_to(root)} is a symbolic "
                                                                    "link; not copied"))
                elif match.is_dir():
                    files += [(f, f.relative_to(match.parent).as_posix()) for f in sorted(match.rglob("*"))
                              if f.is_file() and not f.is_symlink()]
                elif match.is_file():
                    files.append((match, match.relative_to(folder).as_posix()))
            if not files:
                warnings.append(index.warning(path + ("file",), f"no file in {ASSETS_DIR}/ matches {pattern!r}; "
                                                                "nothing copied"))
                continue
            for source, relative in files:
                placed[posixpath.join(target, relative)] = {
                    "data": base64.b64encode(source.read_bytes()).decode(), "executable": executable,
                }
    if not placed:
        return loader.DEFAULT_ASSETS_PATH, {}
    base = posixpath.commonpath([posixpath.dirname(p) for p in placed]) or "/"
    assets = {posixpath.relpath(p, base): item for p, item in sorted(placed.items())}
    total = sum(len(base64.b64decode(item["data"])) for item in assets.values())
    if len(assets) > loader.MAX_ASSET_FILES:
        problems.append(index.problem(("details", "assets"), f"{len(assets)} files; at most {loader.MAX_ASSET_FILES}"))
    if total > loader.MAX_ASSET_BYTES:
        problems.append(index.problem(("details", "assets"), f"{total} bytes in all; at most {loader.MAX_ASSET_BYTES}"))
    return base, assets


# Katacoda's older names of the background and foreground scripts.
_OLD_NAMES = {"background": "courseData", "foreground": "code"}


def _named(index: _Index, path: tuple, key: str) -> tuple:
    """The path of ``key`` under ``path``, or of Katacoda's older name for it."""
    if index.get(*path, key) is None and index.get(*path, _OLD_NAMES[key]) is not None:
        return path + (_OLD_NAMES[key],)
    return path + (key,)


def _with_foreground(page: Page, reader: _Reader, path: tuple) -> str:
    script = reader.script(path)
    if not script.strip():
        return page.text
    note = "Typed into the terminal when this page opens:\n\n"
    return f"{note}{typed_block(script)}\n{page.text}"


def _set_up_part(label: str, script: str) -> str:
    """One background script of the set-up, run by a bash of its own so that
    its ``exit`` ends only itself."""
    marker = "BACKGROUND_EOF"
    while marker in script:
        marker += "_"
    return f"# {label}\nbash <<'{marker}' || exit $?\n{script.rstrip()}\n{marker}\n"


def load_scenario(folder: str | Path, *, slug: str | None = None) -> Scenario:
    """The scenario in ``folder`` as a lab; raises ``LabInvalid`` listing what
    cannot run (its ``warnings`` attribute lists the rest)."""
    root = Path(folder)
    index_file = root / INDEX_FILE
    if not index_file.is_file():
        raise ScenarioInvalid([Problem(str(index_file), None, f"no {INDEX_FILE} here (a KillerCoda scenario has one)")])
    problems: list[Problem] = []
    warnings: list[Problem] = []
    index = _Index(index_file, problems)
    if problems:
        raise ScenarioInvalid(problems)
    reader = _Reader(root, index, problems, warnings)

    title = index.get("title")
    if not isinstance(title, str) or not title.strip():
        title = root.resolve().name
        warnings.append(index.warning(("title",), f"no title; the folder's name ({title}) is the lab's"))
    title = _clip(title, 120, index, ("title",), warnings)
    description = index.get("description")
    summary = _clip(description if isinstance(description, str) and description.strip() else title,
                    500, index, ("description",), warnings)
    _backend(index, problems, warnings)

    intro = reader.page(("details", "intro", "text"), optional=True)
    finish = reader.page(("details", "finish", "text"), optional=True)
    setup_parts = []
    background = reader.script(_named(index, ("details", "intro"), "background"))
    if background.strip():
        setup_parts.append(_set_up_part(str(index.get(*_named(index, ("details", "intro"), "background"))), background))
    if index.get(*_named(index, ("details", "finish"), "background")) is not None:
        warnings.append(index.warning(_named(index, ("details", "finish"), "background"),
                                      "a background script of the finish page is not run"))

    raw_steps = index.get("details", "steps")
    steps: list[StepDef] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(index.problem(("details", "steps"), "a scenario needs at least one step"))
        raw_steps = []
    elif len(raw_steps) > 50:
        problems.append(index.problem(("details", "steps"), f"{len(raw_steps)} steps; a lab has at most 50"))
    for number, item in enumerate(raw_steps, start=1):
        path = ("details", "steps", number - 1)
        if not isinstance(item, dict):
            problems.append(index.problem(path, "expected an object (title, text, verify, ...)"))
            continue
        page = reader.page(path + ("text",))
        text = page.text
        answer = reader.file(path + ("answer",), limit=loader.MAX_TEXT_BYTES, optional=True)
        solution = page.solution
        if answer is not None:  # Katacoda: an answer page, shown on request
            answered = convert_markdown(answer[0], answer[1], warnings, whole_solution=True)
            text = f"{text.rstrip()}\n\n{answered.text}\n"
            solution = solution or answered.solution
        text = _with_foreground(Page(text), reader, _named(index, path, "foreground"))
        step_background = reader.script(_named(index, path, "background"))
        if step_background.strip():
            warnings.append(index.warning(_named(index, path, "background"), f"runs at the lab's set-up, with the intro's "
                                                                  f"background, not when step {number} opens"))
            setup_parts.append(_set_up_part(str(index.get(*_named(index, path, "background"))), step_background))
        step_title = item.get("title") if isinstance(item.get("title"), str) and item["title"].strip() else f"Step {number}"
        steps.append(StepDef(
            number=number,
            title=_clip(step_title, 120, index, path + ("title",), warnings),
            text=text,
            instance=INSTANCE,
            check=reader.script(path + ("verify",)) if "verify" in item else "",
            solution=solution,
            hint=page.hint,
        ))

    assets_path, assets = _assets(root, index, problems, warnings)
    intro_text = _with_foreground(intro, reader, _named(index, ("details", "intro"), "foreground"))
    finish_text = _with_foreground(finish, reader, _named(index, ("details", "finish"), "foreground"))
    if problems:
        raise ScenarioInvalid(problems, warnings)
    lab = LabDef(
        slug=slug or slugify(root.resolve().name),
        title=title,
        summary=summary,
        duration=_duration(index, len(steps)),
        difficulty=_difficulty(index),
        tags=["killercoda"],
        intro=intro_text,
        finish=finish_text,
        instances=[InstanceDef(name=INSTANCE, image=IMAGE)],
        template="",
        assets_path=assets_path,
        assets=assets,
        setup="\n".join(setup_parts),
        setup_instance=INSTANCE if setup_parts else "",
        setup_timeout=None,
        auto_check=False,
        steps=steps,
        source=str(root.resolve()),
    )
    return Scenario(lab=lab, warnings=warnings)


# -- courses -------------------------------------------------------------------------------------------

def course_scenarios(folder: str | Path, problems: list[Problem]) -> list[tuple[Path, str]]:
    """(scenario folder, slug) of each scenario a course's structure.json lists,
    in order; a listed folder that is itself a course is followed."""
    root = Path(folder)
    index = _Index(root / COURSE_FILE, problems)
    if not index.data:
        return []
    items = index.get("items")
    if not isinstance(items, list):
        problems.append(index.problem(("items",), "expected a list of {\"path\": scenario folder}"))
        return []
    found: list[tuple[Path, str]] = []
    prefix = slugify(root.resolve().name)
    for number, item in enumerate(items):
        path = ("items", number, "path")
        relative = item.get("path") if isinstance(item, dict) else None
        if not isinstance(relative, str) or not relative:
            problems.append(index.problem(path, "expected the folder of a scenario"))
            continue
        child = (root / relative)
        if not child.resolve().is_relative_to(root.resolve()):
            problems.append(index.problem(path, f"{relative} is outside the course folder"))
        elif is_scenario(child):
            found.append((child, slugify(f"{prefix}-{child.resolve().name}")))
        elif is_course(child):
            found += course_scenarios(child, problems)
        else:
            problems.append(index.problem(path, f"{relative}: no scenario ({INDEX_FILE}) there"))
    return found


def find_scenarios(paths: list[str | Path], problems: list[Problem]) -> list[tuple[Path, str | None]]:
    """(scenario folder, slug or None for the folder's name) named by ``paths``:
    a scenario folder, a course folder (structure.json), or a folder whose
    subfolders are scenarios or courses."""
    found: list[tuple[Path, str | None]] = []
    for raw in paths:
        path = Path(raw)
        if (path / loader.LAB_FILE).is_file():
            continue
        if is_scenario(path):
            found.append((path, None))
        elif is_course(path):
            found += course_scenarios(path, problems)
        elif path.is_dir():
            for child in sorted(path.iterdir()):
                if (child / loader.LAB_FILE).is_file():
                    continue
                if is_scenario(child):
                    found.append((child, None))
                elif is_course(child):
                    found += course_scenarios(child, problems)
    return found


def load_folder(folder: str | Path) -> Scenario:
    """A lab folder (lab.yaml) or a scenario folder (index.json) as a lab, with
    the scenario's warnings; raises ``LabInvalid``."""
    if is_scenario(folder) and not (Path(folder) / loader.LAB_FILE).is_file():
        return load_scenario(folder)
    return Scenario(lab=loader.load_lab(folder))
