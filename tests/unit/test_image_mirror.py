"""Every image is built from the Debian mirror of this machine's apt sources
(scripts/common.sh ``debian_mirror``, or ``PLAYGROUND_DEBIAN_MIRROR``): each
debootstrap takes it, and no build input names an archive of its own."""
from __future__ import annotations

import re

from tests.stack import ROOT

BUILD_INPUTS = [
    *sorted((ROOT / "scripts").glob("*.sh")),
    ROOT / "Dockerfile",
    ROOT / "docker-compose.yml",
    *sorted(p for base in ("deploy/images", "sandboxes/images", "sandboxes/mirror")
            for p in (ROOT / base).rglob("*") if p.is_file() and p.suffix not in (".c", ".h", ".o")),
]
ARCHIVE = re.compile(r"[a-z+]+://[^\s\"']*(?:debian|ubuntu)[^\s\"']*", re.IGNORECASE)


def logical_lines(text: str) -> list[str]:
    """Shell lines with their continuations joined, comments left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if not line.lstrip().startswith("#")]


def test_every_debootstrap_takes_the_machines_mirror():
    calls = []
    for path in sorted((ROOT / "scripts").glob("*.sh")):
        lines = logical_lines(path.read_text())
        for line in lines:
            if re.search(r"(^|\s|!\s)debootstrap\s+--", line):
                calls.append((path.name, line.strip()))
    assert len(calls) >= 2, calls  # build-images.sh and registry.sh
    for name, line in calls:
        assert "$(debian_mirror)" in line or '"$mirror"' in line, f"{name}: {line}"
    build_images = (ROOT / "scripts" / "build-images.sh").read_text()
    assert 'mirror="$(debian_mirror)"' in build_images


def test_no_build_input_names_a_debian_archive():
    named = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in BUILD_INPUTS
        for match in ARCHIVE.finditer(path.read_text(errors="replace"))
    ]
    assert not named, "the machine's apt sources decide the mirror, never the repository:\n  " + "\n  ".join(named)
