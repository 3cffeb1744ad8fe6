"""PURE: how a frame that runs a notebook cell is named for people and known as an error.

A kernel's frame in a cell carries a :class:`~flawless.report.NotebookCell`. People see it as
``analysis.ipynb, cell 7 (id f426cbb7), line 3`` (7 is the execution count the kernel showed
as ``In[7]``). An error raised there is known by the notebook, the cell (its id, else the
function) and the line's hash: none of them changes with the execution count or the
kernel's temporary file, and none holds the text typed in the cell.
"""

from __future__ import annotations

from typing import Optional

from flawless.report import Frame, NotebookCell
from flawless.server.core.model import Blame, CellBlame

LINE_HASH_MARK = "line_hash:"


def basename(path: str) -> str:
    """The last component of a path (either separator)."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def cell_label(cell: NotebookCell) -> str:
    """``cell 7 (id f426cbb7)``, ``cell 7``, ``cell (id f426cbb7)`` or ``a cell``."""
    number = f" {cell.execution_count}" if cell.execution_count is not None else ""
    named = f" (id {cell.id})" if cell.id else ""
    return f"cell{number}{named}" if number or named else "a cell"


def cell_where(cell: NotebookCell, name: Optional[str]) -> str:
    """``analysis.ipynb, cell 7 (id f426cbb7), line 3`` (without a name when there is none)."""
    return ", ".join(part for part in (name, cell_label(cell), f"line {cell.line}") if part)


def notebook_cell(frame: Frame) -> Optional[NotebookCell]:
    """The frame's cell when it names its notebook (so the line may be in the repository)."""
    cell = frame.cell
    return cell if cell is not None and cell.notebook else None


def frame_where(frame: Frame) -> str:
    """Where a frame's line is, for people: ``analysis.ipynb, cell 7 (id ...), line 3`` for a
    frame in a cell, else ``FILE:LINE``."""
    if frame.cell is not None:
        notebook = frame.cell.notebook
        return cell_where(frame.cell, basename(notebook) if notebook else None)
    return f"{frame.filename}:{frame.line_number}"


def frame_line(frame: Frame) -> int:
    """The line people look for: the line in the cell for a frame in a cell."""
    return frame.cell.line if frame.cell is not None else frame.line_number


def cell_function(frame: Frame) -> str:
    """The part of an error's identity that names the code: the cell, else the function."""
    cell = frame.cell
    return f"cell {cell.id}" if cell is not None and cell.id else frame.function_name


def cell_text(cell: NotebookCell) -> str:
    """The part of an error's identity that names the line: its hash, else its number."""
    return f"{LINE_HASH_MARK}{cell.line_hash}" if cell.line_hash else f"line {cell.line} of the cell"


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


def committed_cell(path: str, cell: CellBlame) -> str:
    """``the 5th cell (id f426cbb7) of notebooks/analysis.ipynb``."""
    named = f" (id {cell.cell_id})" if cell.cell_id else ""
    return f"the {_ordinal(cell.position)} cell{named} of {path}"


def blame_reason(blame: Optional[Blame]) -> Optional[str]:
    """Why the author of a notebook's blame gets the alert; None for any other blame."""
    if blame is None or blame.cell is None:
        return None
    where = committed_cell(blame.path, blame.cell)
    if blame.cell.line is None:
        return f"last changed {where}, whose line raised has unsaved edits (no line blamed)"
    return f"last changed line {blame.cell.line} of {where} (git blame)"


def blame_note(blame: Blame, reported: NotebookCell) -> str:
    """How the line reported from a cell was found in the committed notebook, and what was
    blamed, in one sentence (for explanations and mails)."""
    cell = blame.cell
    assert cell is not None
    where = committed_cell(blame.path, cell)
    if cell.line is None:
        return (f"unsaved edits, no line blamed: line {reported.line} of the cell as it ran is "
                f"not in {where} at {blame.revision[:12]} (no line of that cell has its "
                "hash); the alert names the author of the cell's last change (line "
                f"{blame.line_number} of the file)")
    found = "by its id" if cell.by_id else "by the hash of the line raised"
    if not cell.checked:
        line = f"its line {cell.line} is taken unchecked (the report carries no line hash)"
    elif cell.line != reported.line:
        line = (f"the line raised (line {reported.line} as it ran) is its line {cell.line}, "
                "moved since the commit")
    else:
        line = f"its line {cell.line} is the line raised (same hash)"
    note = (f"notebook cell found {found}: {where} at {blame.revision[:12]}; {line}; "
            f"line {blame.line_number} of the file")
    if cell.one_json_line:
        note += "; the notebook stores the cell's source on one line, so this names the " \
                "cell's last change"
    return note
