"""The repository's documentation stands alone: README.md and docs/ link only
to files of the repository (that exist, at headings that exist), and name no
document kept outside it."""
from __future__ import annotations

import re

from tests.stack import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Documents of the project's own process, which a clone does not have.
OUTSIDE = re.compile(r"\.\./shared|(?<![\w/])(?:DESIGN|STYLE|API)\.md|/work/")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path) -> set[str]:
    return {slug(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


def test_every_link_points_into_the_repository_at_something_there():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            where, _, anchor = target.partition("#")
            if re.match(r"^[a-z]+:", where):
                broken.append(f"{doc.name}: {target} (outside the repository)")
                continue
            path = (doc.parent / where).resolve() if where else doc
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.name}: {target} (no such file in the repository)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, "links that leave the repository or lead nowhere:\n  " + "\n  ".join(broken)


def test_no_document_outside_the_repository_is_named():
    named = [
        f"{doc.relative_to(ROOT)}:{number}: {line.strip()}"
        for doc in DOCS
        for number, line in enumerate(doc.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not named, "documents a clone does not have (the contract is docs/api.md):\n  " + "\n  ".join(named)
