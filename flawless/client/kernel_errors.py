"""The errors a notebook kernel caught, kept in the kernel whether or not a server is set.

Bounded: the last :data:`MAX_ERRORS` errors, each without locals. Nothing here is sent
anywhere; it is what ``flawless.client.ipython.errors()`` and the ``%flawless`` magic show.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Optional

from flawless.report import Frame, NotebookCell, trim

MAX_ERRORS = 100
_MESSAGE_COLUMN_CHARS = 60


@dataclass(frozen=True)
class KernelError:
    """One error raised by a cell of this kernel."""

    exception_type: str                  # module-qualified (``builtins.ZeroDivisionError``)
    message: str
    frames: tuple[Frame, ...]            # outermost first, source lines included
    cell: Optional[NotebookCell]         # where in the cell that ran the error arose
    time: float                          # seconds since the epoch

    @property
    def where(self) -> str:
        """The innermost frame, as a person reads it: ``In[7], line 3`` or ``stats.py:12``."""
        if not self.frames:
            return ""
        frame = self.frames[-1]
        if frame.cell is not None:
            return f"{cell_label(frame.cell)}, line {frame.cell.line}"
        name = frame.filename.replace("\\", "/").rsplit("/", 1)[-1]
        return f"{name}:{frame.line_number} in {frame.function_name}"


def cell_label(cell: NotebookCell) -> str:
    """``In[7]`` (or ``In[ ]`` for a cell run without history)."""
    count = cell.execution_count
    return f"In[{count if count is not None else ' '}]"


class ErrorLog:
    """The last ``max_errors`` errors, oldest first; safe to add to from any thread."""

    def __init__(self, max_errors: int = MAX_ERRORS) -> None:
        self._errors: deque[KernelError] = deque(maxlen=max_errors)
        self._lock = threading.Lock()

    def add(self, error: KernelError) -> None:
        with self._lock:
            self._errors.append(error)

    def clear(self) -> None:
        with self._lock:
            self._errors.clear()

    def errors(self) -> list[KernelError]:
        with self._lock:
            return list(self._errors)


def errors_table(errors: list[KernelError]) -> str:
    """A plain-text table of ``errors``, one row each."""
    if not errors:
        return "No errors caught in this kernel."
    header = ("#", "time", "cell", "cell id", "error", "raised at")
    rows = [header] + [
        (str(number), time.strftime("%H:%M:%S", time.localtime(error.time)),
         cell_label(error.cell) if error.cell else "",
         (error.cell.id or "") if error.cell else "",
         trim(f"{error.exception_type.rsplit('.', 1)[-1]}: {' '.join(error.message.split())}",
              _MESSAGE_COLUMN_CHARS),
         error.where)
        for number, error in enumerate(errors, 1)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip()
                     for row in rows)
