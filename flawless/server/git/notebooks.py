"""Blame a line reported from a notebook's cell in the committed ``.ipynb`` (synchronous, for
worker threads; see :mod:`flawless.server.core.notebooks` for how the line is found).

The line found is blamed like any file's line. A cell found whose line raised matches no line
of it has unsaved edits: nothing is blamed, and the author of the cell's last change is
named instead. The notebook's text never leaves this function: the blame carries no line.
"""

from __future__ import annotations

from dataclasses import replace

from flawless.report import NotebookCell
from flawless.server.core.model import Blame, CellBlame
from flawless.server.core.notebooks import CellNotFound, locate
from flawless.server.git.repository import BlameFailed, Repository


def blame_cell(repository: Repository, path: str, reported: NotebookCell, sha: str) -> Blame:
    """Who last changed the reported cell line of notebook ``path`` at commit ``sha`` (or,
    when the line has unsaved edits, the cell). Raises BlameFailed when no cell of the
    notebook holds it, and RepositoryUnavailable as any blame does."""
    try:
        location = locate(repository.notebook_at(path, sha), reported)
    except CellNotFound as missing:
        raise BlameFailed(f"{path} at {sha[:12]}: {missing}") from None
    cell = location.cell
    if location.json_line is not None:
        blame = repository.blame_line(path, location.json_line, sha)
    else:
        first, last = cell.blame_range()
        blame = max((repository.blame_line(path, line, sha) for line in range(first, last + 1)),
                    key=lambda each: (each.commit_timestamp, each.line_number))
    return replace(blame, line_text="", cell=CellBlame(
        position=cell.position, cell_id=cell.id, line=location.line, by_id=location.by_id,
        checked=location.checked, one_json_line=cell.one_json_line()))
