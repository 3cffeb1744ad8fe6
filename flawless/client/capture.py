"""Exception -> :class:`Report`, on the application's thread.

Only what cannot wait is done here: walking the traceback, reading source lines (cached by
``linecache``) and repr'ing locals, because frames and objects change once the handler
returns. Every repr is bounded in length, item count and depth, and never walks or sorts a
whole container, so a local holding a 10-million-item list costs microseconds. Values of
sensitive names are never repr'd at all. Scrubbing of the resulting text, path shortening
and revision lookup happen later, on the sender thread.
"""

from __future__ import annotations

import linecache
import os
import re
import time
import types
from collections import deque
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from flawless.report import (KEPT_OUTERMOST_FRAMES, MAX_FRAMES, MAX_MESSAGE_CHARS,
                             MAX_STRING_CHARS, Frame, NotebookCell, Report, trim)
from flawless.client.scrub import MASK

ExcInfo = tuple[Optional[type], Optional[BaseException], Optional[types.TracebackType]]
# A caller's stack: a live frame (walked outward), or summaries / (file, line, function, text).
PrecedingStack = Union[types.FrameType, Iterable[Any], None]
# (filename, line number) of a frame -> where that line lies in a notebook cell, if it does.
CellDescriber = Callable[[str, int], Optional[NotebookCell]]
GroupingKey = tuple

CLIENT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NOTEBOOK_CELL = re.compile(r"^<ipython-input-\d+-|[/\\]ipykernel_\d+[/\\]")
_SKIPPED_VALUE_TYPES = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
_MAX_STACK_WALK = 256
_MIN_SECRET_CHARS = 4
_MAX_SECRETS = 64


@dataclass(frozen=True)
class CaptureOptions:
    """Bounds and opt-ins of a capture."""

    locals_frames: int = 5          # innermost frames whose locals are kept; 0 keeps none
    max_locals: int = 32            # per frame, ``self`` attributes included
    max_self_attributes: int = 16
    repr_chars: int = 256           # per local
    repr_items: int = 8             # per container
    repr_depth: int = 3
    cell_text: bool = False         # source lines of notebook cells
    cell_locals: bool = False       # locals of frames running notebook cell code
    max_chain: int = 5              # chained exceptions described


@dataclass(frozen=True)
class Captured:
    """A report still to be scrubbed, and the secret values seen while capturing it."""

    report: Report
    secrets: frozenset[str] = frozenset()


def is_notebook_cell(filename: str) -> bool:
    """True for code compiled from an IPython or Jupyter cell."""
    return _NOTEBOOK_CELL.search(filename) is not None


def type_name(exception_type: type) -> str:
    """Module-qualified name of an exception type (``builtins.ValueError``)."""
    return f"{exception_type.__module__}.{exception_type.__qualname__}"


def grouping_key(exception_type: Optional[type], tb: Optional[types.TracebackType]) -> GroupingKey:
    """A cheap key telling repeats of the same error apart from other errors."""
    sites = []
    while tb is not None:
        sites.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    return (exception_type, tuple(sites))


_PLAIN_SCALARS = frozenset((bool, float, type(None)))


class BoundedRepr:
    """``repr`` bounded in length, item count and depth; masks values of sensitive keys."""

    def __init__(self, options: CaptureOptions, is_sensitive: Callable[[object], bool]) -> None:
        self.options = options
        self.is_sensitive = is_sensitive
        self.secrets: set[str] = set()

    def __call__(self, value: Any) -> str:
        try:
            text = self._repr(value, self.options.repr_depth)
        except Exception as error:  # a user's __repr__ may raise anything
            text = f"<repr failed: {type(error).__name__}>"
        return trim(text, self.options.repr_chars)

    def mask(self, value: Any) -> str:
        """Return the mask, remembering ``value`` so it is also masked wherever it reappears."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and len(value) >= _MIN_SECRET_CHARS \
                and len(self.secrets) < _MAX_SECRETS:
            self.secrets.add(value[:MAX_STRING_CHARS])
        return MASK

    def _repr(self, value: Any, depth: int) -> str:
        kind = type(value)  # exact builtin types first: the common case, without isinstance
        if kind in _PLAIN_SCALARS:
            return repr(value)
        if kind is str and len(value) <= self.options.repr_chars:
            return repr(value)
        if kind is dict:
            return self._repr_dict(value, depth)
        if kind is list or kind is tuple:
            return self._repr_items(value, depth)
        limit = self.options.repr_chars
        if isinstance(value, (str, bytes, bytearray)):
            text = repr(value[:limit])
            return text + "…" if len(value) > limit else text
        if isinstance(value, bool) or value is None or isinstance(value, float):
            return repr(value)
        if isinstance(value, int):
            # str() of a huge int is quadratic (and limited since 3.11).
            bits = value.bit_length()
            return repr(value) if bits < 256 else f"<int of {bits} bits>"
        if isinstance(value, dict):
            return self._repr_dict(value, depth)
        if isinstance(value, (list, tuple, set, frozenset, deque)):
            return self._repr_items(value, depth)
        return repr(value)

    def _repr_items(self, value: Any, depth: int) -> str:
        if isinstance(value, list):
            left, right = "[", "]"
        elif isinstance(value, tuple):
            left, right = "(", ")"
        elif isinstance(value, deque):
            left, right = "deque([", "])"
        elif type(value) is set and value:
            left, right = "{", "}"
        elif value:
            left, right = type(value).__name__ + "({", "})"
        else:
            return type(value).__name__ + "()"
        if not value:
            return left + right
        if depth <= 0:
            return left + "..." + right
        items = [self._repr(item, depth - 1) for item in islice(value, self.options.repr_items)]
        if len(value) > self.options.repr_items:
            items.append(f"... {len(value) - self.options.repr_items} more")
        trail = "," if isinstance(value, tuple) and len(value) == 1 else ""
        return left + ", ".join(items) + trail + right

    def _repr_dict(self, value: dict, depth: int) -> str:
        if not value:
            return "{}"
        if depth <= 0:
            return "{...}"
        items = []
        for key, item in islice(value.items(), self.options.repr_items):
            shown = self.mask(item) if self.is_sensitive(key) else self._repr(item, depth - 1)
            items.append(f"{self._repr(key, depth - 1)}: {shown}")
        if len(value) > self.options.repr_items:
            items.append(f"... {len(value) - self.options.repr_items} more")
        return "{" + ", ".join(items) + "}"


def _frame_locals(frame: types.FrameType, bounded: BoundedRepr) -> dict[str, str]:
    """Bounded reprs of a frame's locals and of ``self``'s attributes."""
    options = bounded.options
    kept: dict[str, str] = {}
    names = frame.f_locals
    for name, value in names.items():
        if len(kept) >= options.max_locals:
            break
        if name.startswith("__") or isinstance(value, _SKIPPED_VALUE_TYPES):
            continue
        kept[name] = bounded.mask(value) if bounded.is_sensitive(name) else bounded(value)
    attributes = getattr(names.get("self"), "__dict__", None)
    if isinstance(attributes, dict):
        for name, value in islice(attributes.items(), options.max_self_attributes):
            if len(kept) >= options.max_locals:
                break
            if not isinstance(value, _SKIPPED_VALUE_TYPES):
                kept[f"self.{name}"] = (bounded.mask(value) if bounded.is_sensitive(name)
                                        else bounded(value))
    return kept


def _source_line(filename: str, line_number: int, module_globals: Optional[dict]) -> str:
    return trim(linecache.getline(filename, line_number, module_globals).strip(),
                MAX_STRING_CHARS)


def _bound_frames(frames: list) -> list:
    """Keep the outermost and innermost frames of a very deep stack, as the server would."""
    if len(frames) <= MAX_FRAMES:
        return frames
    return frames[:KEPT_OUTERMOST_FRAMES] + frames[-(MAX_FRAMES - KEPT_OUTERMOST_FRAMES):]


def _live_frame(frame: types.FrameType, line_number: int, options: CaptureOptions,
                bounded: Optional[BoundedRepr]) -> Frame:
    filename = frame.f_code.co_filename
    cell = is_notebook_cell(filename)
    text = "" if cell and not options.cell_text else \
        _source_line(filename, line_number, frame.f_globals)
    frame_locals = None
    if bounded is not None and (options.cell_locals or not cell):
        frame_locals = _frame_locals(frame, bounded)
    return Frame(filename, max(line_number, 1), frame.f_code.co_name, text, frame_locals)


def _outer_frames(frame: types.FrameType, options: CaptureOptions) -> list[Frame]:
    """The frames calling ``frame``, outermost first, without locals."""
    frames: list[Frame] = []
    current: Optional[types.FrameType] = frame
    while current is not None and len(frames) < _MAX_STACK_WALK:
        if not current.f_code.co_filename.startswith(CLIENT_DIR):
            frames.append(_live_frame(current, current.f_lineno or 1, options, None))
        current = current.f_back
    frames.reverse()
    return frames


def _summary_frames(stack: Iterable[Any], options: CaptureOptions) -> list[Frame]:
    """Frames from ``traceback.extract_stack()`` summaries or 4-tuples."""
    frames = []
    for filename, line_number, function_name, text in stack:
        if filename.startswith(CLIENT_DIR):
            continue
        if is_notebook_cell(filename) and not options.cell_text:
            text = ""
        frames.append(Frame(filename, max(int(line_number or 1), 1), function_name,
                            trim((text or "").strip(), MAX_STRING_CHARS)))
    return frames


def _preceding_frames(stack: PrecedingStack, options: CaptureOptions) -> list[Frame]:
    if stack is None:
        return []
    if isinstance(stack, types.FrameType):
        return _outer_frames(stack, options)
    return _summary_frames(stack, options)


def _traceback_frames(tb: Optional[types.TracebackType], options: CaptureOptions,
                      bounded: BoundedRepr) -> list[Frame]:
    entries = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(CLIENT_DIR):
            entries.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    entries = _bound_frames(entries)
    first_with_locals = len(entries) - options.locals_frames
    return [_live_frame(frame, line_number, options,
                        bounded if index >= first_with_locals else None)
            for index, (frame, line_number) in enumerate(entries)]


def _with_cells(frames: list[Frame], describe_cell: Optional[CellDescriber]) -> list[Frame]:
    """``frames`` with the notebook cell of each frame that runs a cell's code."""
    if describe_cell is None:
        return frames
    described = []
    for frame in frames:
        cell = None
        if is_notebook_cell(frame.filename):
            try:
                cell = describe_cell(frame.filename, frame.line_number)
            except Exception:  # the frame is still worth sending without its cell
                cell = None
        described.append(replace(frame, cell=cell) if cell is not None else frame)
    return described


def _message(value: Optional[BaseException]) -> str:
    if value is None:
        return ""
    try:
        return trim(str(value), MAX_MESSAGE_CHARS)
    except Exception as error:  # a user's __str__ may raise anything
        return f"<str failed: {type(error).__name__}>"


def _describe_chain(value: Optional[BaseException], limit: int) -> str:
    """One line per chained exception: how it is linked, what it is and where it was raised."""
    lines = []
    seen = {id(value)}
    while value is not None and len(lines) < limit:
        if value.__cause__ is not None:
            link, value = "caused by", value.__cause__
        elif value.__context__ is not None and not value.__suppress_context__:
            link, value = "while handling", value.__context__
        else:
            break
        if id(value) in seen:
            break
        seen.add(id(value))
        tb = value.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = (f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno} in "
                 f"{tb.tb_frame.f_code.co_name}") if tb is not None else ""
        lines.append(f"{link} {type_name(type(value))}: {trim(_message(value), 512)}{where}")
    return "\n".join(lines)


def capture(exc_info: ExcInfo, options: CaptureOptions, is_sensitive: Callable[[object], bool],
            preceding_stack: PrecedingStack = None, hostname: Optional[str] = None,
            revision: Optional[str] = None, error_count: int = 1,
            error_threshold: Optional[int] = None, additional_info: Optional[str] = None,
            context: Optional[Mapping[str, Any]] = None,
            describe_cell: Optional[CellDescriber] = None) -> Captured:
    """Turn ``exc_info`` into an unscrubbed report, with secrets masked by name and the
    notebook cell of each frame in one (``describe_cell``)."""
    exception_type, value, tb = exc_info
    if exception_type is None and value is not None:
        exception_type = type(value)
    if tb is None and value is not None:
        tb = value.__traceback__
    bounded = BoundedRepr(options, is_sensitive)
    frames = _preceding_frames(preceding_stack, options) + _traceback_frames(tb, options, bounded)
    if not frames:
        frames = [Frame("<unknown>", 1, "<unknown>")]
    full_context = dict(context or {})
    chain = _describe_chain(value, options.max_chain)
    if chain:
        full_context["chained_exceptions"] = chain
    report = Report(
        exception_type=type_name(exception_type) if exception_type else "builtins.Exception",
        exception_message=_message(value),
        traceback=tuple(_with_cells(_bound_frames(frames), describe_cell)),
        hostname=hostname,
        revision=revision,
        error_count=error_count,
        error_threshold=error_threshold,
        additional_info=additional_info,
        context=full_context or None,
        timestamp=time.time(),
    )
    return Captured(report, frozenset(bounded.secrets))
