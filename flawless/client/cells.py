"""The cells a notebook kernel ran, and where a frame's line lies in them.

IPython compiles each cell into a pseudo-file (``/tmp/ipykernel_1234/3051.py`` in a kernel,
``<ipython-input-7-…>`` in a terminal) and drops the cell's leading blank lines before
compiling. A :class:`CellBook` remembers, by that pseudo-file's name, which cell it was
(its nbformat id, its execution count, its source as typed) and so turns a frame's
filename and line into a :class:`~flawless.report.NotebookCell`: the line in the cell's
source as the notebook saves it, and a hash of that line. The source is never copied: the
book holds a reference to the string IPython itself keeps in its history.
"""

from __future__ import annotations

import linecache
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from flawless.report import CELL_ID, NotebookCell, line_hash

CellDescriber = Callable[[str, int], Optional[NotebookCell]]
MAX_CELLS = 512
_NUMBERED_CELL = re.compile(r"<ipython-input-\d+-")


@dataclass(frozen=True)
class CellRun:
    """One cell as it was run."""

    source: str                           # the cell's text as typed (before IPython's transforms)
    cell_id: Optional[str] = None         # nbformat 4.5 id, when the front end sent one
    execution_count: Optional[int] = None  # None for a cell run without history


def valid_cell_id(value: object) -> Optional[str]:
    """``value`` when it is an nbformat 4.5 cell id, else None. Front ends send other things
    as ``cellId`` (VS Code sends a URI holding the notebook's path): those never leave."""
    return value if isinstance(value, str) and CELL_ID.fullmatch(value) else None


def source_line(source: str, compiled: Sequence[str], line_number: int) -> tuple[int, str]:
    """The line number in ``source`` (the cell as typed) of line ``line_number`` of
    ``compiled`` (the cell as IPython compiled it), and that line's text.

    IPython removes leading blank lines; its other transforms keep one line per line.
    When the line counts do not agree that way, the line number is taken as it is.
    """
    typed = source.splitlines()
    skipped = 0
    while skipped < len(typed) and not typed[skipped].strip():
        skipped += 1
    if len(typed) - skipped != len(compiled):
        skipped = 0
    number = line_number + skipped
    return number, typed[number - 1] if 0 < number <= len(typed) else ""


class CellBook:
    """The last :data:`MAX_CELLS` cells run, by the name of the pseudo-file each compiled to.

    ``execution_count_of(filename)`` tells the execution count of any cell the shell compiled
    (None for a file that is no cell of this shell); it covers cells run before the book.
    """

    def __init__(self, execution_count_of: Callable[[str], Optional[int]],
                 max_cells: int = MAX_CELLS) -> None:
        self._execution_count_of = execution_count_of
        self._max_cells = max_cells
        self._runs: OrderedDict[str, CellRun] = OrderedDict()
        self._lock = threading.Lock()  # frames are described on any thread
        self.notebook: Optional[str] = None

    def remember(self, filename: str, run: CellRun) -> None:
        """Note that the cell ``run`` compiles to ``filename``."""
        with self._lock:
            self._runs[filename] = run
            self._runs.move_to_end(filename)
            while len(self._runs) > self._max_cells:
                self._runs.popitem(last=False)

    def run_of(self, filename: str) -> Optional[CellRun]:
        """The cell that compiled to ``filename``, if the book has it."""
        with self._lock:
            return self._runs.get(filename)

    def _run_numbered(self, execution_count: int) -> Optional[CellRun]:
        with self._lock:
            return next((run for run in reversed(self._runs.values())
                         if run.execution_count == execution_count), None)

    def describe(self, filename: str, line_number: int) -> Optional[NotebookCell]:
        """Where line ``line_number`` of ``filename`` lies in a cell, or None when
        ``filename`` is no cell of this shell. The line's hash is sent only with a notebook
        path: without a notebook there is nothing to compare it with."""
        run = self.run_of(filename)
        if run is not None:
            execution_count = run.execution_count
        else:
            execution_count = self._execution_count_of(filename)
            if execution_count is None:
                return None
            if _NUMBERED_CELL.match(filename):
                # IPython 8's terminal names a cell after its transformed text, which it does
                # not tell pre_run_cell; the name holds the number, unique to a stored cell.
                run = self._run_numbered(execution_count)
        compiled = linecache.getlines(filename)
        if run is not None:
            line, text = source_line(run.source, compiled, line_number)
        else:
            line = line_number
            text = compiled[line - 1] if 0 < line <= len(compiled) else ""
        notebook = self.notebook
        return NotebookCell(line=line, notebook=notebook,
                            id=run.cell_id if run else None, execution_count=execution_count,
                            line_hash=line_hash(text) if notebook else None)
