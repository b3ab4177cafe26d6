"""The Markdown tables of the docs, read as the docs tests check them."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def first_cells(path: Path, header: str) -> Iterator[str]:
    """The first cell of each body row of every table in ``path`` whose first
    column is headed ``header``."""
    columns = None
    for line in path.read_text().splitlines():
        if not line.startswith("|"):
            columns = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if columns is None:
            columns = cells
        elif columns[0] == header and not set(cells[0]) <= set("-: "):
            yield cells[0]
