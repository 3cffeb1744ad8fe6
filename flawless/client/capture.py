"""Exception (or message) -> :class:`Report`, on the application's thread.

Only what cannot wait is done here: walking the traceback, reading source lines (cached by
``linecache``) and repr'ing locals, because frames and objects change once the handler
returns. Every repr is bounded in length, item count and depth, and never walks or sorts a
whole container, so a local holding a 10-million-item list costs microseconds. Values of
sensitive names are never repr'd at all, and only frames of the program's own code carry
locals (not the standard library's or installed packages', unless asked). Every object is
treated as hostile: a ``__repr__``, ``__dict__`` or ``__class__`` that raises costs one
value, never the report. Scrubbing of the resulting text, path shortening and revision
lookup happen later, on the sender thread.
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
from typing import Any, Callable, Iterable, Optional, Union

from flawless.report import (KEPT_OUTERMOST_FRAMES, MAX_CHAINED_FRAMES, MAX_FRAMES,
                             MAX_MESSAGE_CHARS, MAX_STRING_CHARS, MESSAGE_TYPE,
                             ChainedException, Frame, NotebookCell, Report, trim)
from flawless.client.paths import is_library_file
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
    library_locals: bool = False    # locals of the stdlib's and installed packages' frames
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
    try:
        return f"{exception_type.__module__}.{exception_type.__qualname__}"
    except Exception:  # a metaclass may make these attributes raise
        return "builtins.Exception"


def grouping_key(exception_type: Optional[type], tb: Optional[types.TracebackType]) -> GroupingKey:
    """A cheap key telling repeats of the same error apart from other errors."""
    sites = []
    while tb is not None:
        sites.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    # By name: a hostile metaclass may not hash.
    return (type_name(exception_type) if exception_type is not None else None, tuple(sites))


def message_grouping_key(level: str, stack: PrecedingStack) -> GroupingKey:
    """Repeats of a message are those sent from the same call site, whatever their text."""
    if isinstance(stack, types.FrameType):
        site: Any = (stack.f_code.co_filename, stack.f_lineno)
    else:  # summaries: (file, line, function, text) each
        site = tuple(tuple(entry)[:2] for entry in stack or ())
    return (MESSAGE_TYPE, level, site)


_PLAIN_SCALARS = frozenset((bool, float, type(None)))


class BoundedRepr:
    """``repr`` bounded in length, item count and depth; masks values of sensitive keys."""

    def __init__(self, options: CaptureOptions, is_sensitive: Callable[[object], bool],
                 mask_text: str = MASK) -> None:
        self.options = options
        self.is_sensitive = is_sensitive
        self.mask_text = mask_text
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
        return self.mask_text

    def named(self, name: object, value: Any) -> str:
        """The repr of ``value`` held under ``name``: masked when the name is sensitive."""
        try:
            return self.mask(value) if self.is_sensitive(name) else self(value)
        except Exception as error:  # a str subclass as a name, with a hostile __hash__
            return f"<repr failed: {type(error).__name__}>"

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


def _is_skipped(value: Any) -> bool:
    """Modules, functions and classes say nothing about this error."""
    try:
        return isinstance(value, _SKIPPED_VALUE_TYPES)
    except Exception:  # isinstance asks __class__, which may raise
        return False


def _self_attributes(instance: Any) -> list[tuple[str, Any]]:
    """The first attributes of ``self``; none when its ``__dict__`` is not a plain dict."""
    try:
        attributes = object.__getattribute__(instance, "__dict__")
    except Exception:  # no __dict__ (slots), or a __dict__ property that raises
        return []
    if type(attributes) is not dict:
        return []
    return [(name, value) for name, value in islice(attributes.items(), _MAX_STACK_WALK)
            if type(name) is str]


def _frame_locals(frame: types.FrameType, bounded: BoundedRepr) -> dict[str, str]:
    """Bounded reprs of a frame's locals and of ``self``'s attributes."""
    options = bounded.options
    kept: dict[str, str] = {}
    names = frame.f_locals
    for name, value in names.items():
        if len(kept) >= options.max_locals:
            break
        if name.startswith("__") or _is_skipped(value):
            continue
        kept[name] = bounded.named(name, value)
    if "self" in names:
        attributes = _self_attributes(names["self"])[:options.max_self_attributes]
        for name, value in attributes:
            if len(kept) >= options.max_locals:
                break
            if not _is_skipped(value):
                kept[f"self.{name}"] = bounded.named(name, value)
    return kept


def _source_line(filename: str, line_number: int, module_globals: Optional[dict]) -> str:
    try:
        line = linecache.getline(filename, line_number, module_globals)
    except Exception:  # a module's loader may raise anything from get_source
        return ""
    return trim(line.strip(), MAX_STRING_CHARS)


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


def _with_locals(entries: list, options: CaptureOptions,
                 bounded: Optional[BoundedRepr]) -> list[Frame]:
    """Frames of ``(frame, line)`` entries, outermost first; the innermost
    ``locals_frames`` of the program's code (of any code with ``library_locals``) carry
    their locals."""
    wanted = options.locals_frames if bounded is not None else 0
    frames = []
    for frame, line_number in reversed(entries):
        keeps_locals = wanted > 0 and (options.library_locals
                                       or not is_library_file(frame.f_code.co_filename))
        if keeps_locals:
            wanted -= 1
        frames.append(_live_frame(frame, line_number, options,
                                  bounded if keeps_locals else None))
    frames.reverse()
    return frames


def _stack_entries(frame: Optional[types.FrameType]) -> list:
    """``(frame, line)`` of ``frame`` and its callers, outermost first, without the
    client's own frames."""
    entries = []
    while frame is not None and len(entries) < _MAX_STACK_WALK:
        if not frame.f_code.co_filename.startswith(CLIENT_DIR):
            entries.append((frame, frame.f_lineno or 1))
        frame = frame.f_back
    entries.reverse()
    return entries


def _outer_frames(frame: types.FrameType, options: CaptureOptions) -> list[Frame]:
    """The frames calling ``frame``, outermost first, without locals."""
    return _with_locals(_stack_entries(frame), options, None)


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


def _traceback_entries(tb: Optional[types.TracebackType]) -> list:
    entries = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(CLIENT_DIR):
            entries.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return entries


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


def _linked(value: BaseException) -> Optional[BaseException]:
    """The exception ``value`` was raised from, or while handling."""
    if value.__cause__ is not None:
        return value.__cause__
    if value.__context__ is not None and not value.__suppress_context__:
        return value.__context__
    return None


def _chain(value: Optional[BaseException], options: CaptureOptions
           ) -> tuple[ChainedException, ...]:
    """The ``__cause__``/``__context__`` chain of ``value``, the nearest first, each with
    its frames (without locals)."""
    chained: list[ChainedException] = []
    seen = {id(value)}
    try:
        while value is not None and len(chained) < options.max_chain:
            value = _linked(value)
            if value is None or id(value) in seen:
                break
            seen.add(id(value))
            entries = _traceback_entries(value.__traceback__)[-MAX_CHAINED_FRAMES:]
            chained.append(ChainedException(type_name(type(value)), _message(value),
                                            tuple(_with_locals(entries, options, None))))
    except Exception:  # a hostile exception's attributes: keep what was read
        pass
    return tuple(chained)


def _traceback_of(value: Optional[BaseException]) -> Optional[types.TracebackType]:
    try:
        return value.__traceback__ if value is not None else None
    except Exception:
        return None


def capture(exc_info: ExcInfo, options: CaptureOptions, is_sensitive: Callable[[object], bool],
            preceding_stack: PrecedingStack = None, mask: str = MASK,
            describe_cell: Optional[CellDescriber] = None, **fields: Any) -> Captured:
    """Turn ``exc_info`` into an unscrubbed report, with secrets masked by name and the
    notebook cell of each frame in one (``describe_cell``).

    ``fields`` are the report's other fields (hostname, revision, error_count, tags, ...).
    """
    exception_type, value, tb = exc_info
    if exception_type is None and value is not None:
        exception_type = type(value)
    if tb is None:
        tb = _traceback_of(value)
    bounded = BoundedRepr(options, is_sensitive, mask)
    entries = _bound_frames(_traceback_entries(tb))
    frames = _preceding_frames(preceding_stack, options) + _with_locals(entries, options, bounded)
    if not frames:
        frames = [Frame("<unknown>", 1, "<unknown>")]
    report = Report(
        exception_type=type_name(exception_type) if exception_type else "builtins.Exception",
        exception_message=_message(value),
        traceback=tuple(_with_cells(_bound_frames(frames), describe_cell)),
        chained=_chain(value, options),
        timestamp=time.time(),
        **fields,
    )
    return Captured(report, frozenset(bounded.secrets))


def capture_message(text: str, stack: PrecedingStack, options: CaptureOptions,
                    is_sensitive: Callable[[object], bool], mask: str = MASK,
                    describe_cell: Optional[CellDescriber] = None, **fields: Any) -> Captured:
    """A report of ``text`` (see ``record_message``) at ``stack``: a live frame, whose
    innermost frames of the program carry their locals, or frame summaries."""
    bounded = BoundedRepr(options, is_sensitive, mask)
    if isinstance(stack, types.FrameType):
        frames = _with_locals(_bound_frames(_stack_entries(stack)), options, bounded)
    else:
        frames = _preceding_frames(stack, options)
    report = Report(
        exception_type=MESSAGE_TYPE,
        exception_message=trim(text, MAX_MESSAGE_CHARS),
        traceback=tuple(_with_cells(_bound_frames(frames or [Frame("<unknown>", 1, "<unknown>")]),
                                    describe_cell)),
        timestamp=time.time(),
        **fields,
    )
    return Captured(report, frozenset(bounded.secrets))
