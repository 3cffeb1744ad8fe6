"""The wire schema of an error report, shared by the client and the server.

Standard library only: the client imports this module inside user programs.

``parse_report`` turns untrusted JSON data into a :class:`Report`, naming every
bad field; over-long strings, too many frames and too many locals are trimmed
rather than rejected, so one huge value never costs a whole report.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Union

MAX_STRING_CHARS = 4096
MAX_MESSAGE_CHARS = 16384
MAX_FRAMES = 256
KEPT_OUTERMOST_FRAMES = 32
MAX_LOCALS_PER_FRAME = 64
MAX_LOCAL_REPR_CHARS = 1024
MAX_CONTEXT_ITEMS = 32
MAX_ERROR_COUNT = 10**9
MAX_TAGS = 32
MAX_TAG_CHARS = 256
MAX_NAME_CHARS = 128
MAX_METHOD_CHARS = 32
MAX_HEADERS = 32
MAX_HEADER_CHARS = 1024
MAX_USER_ID_CHARS = 255
MAX_CHAINED = 8
MAX_CHAINED_FRAMES = 64
LEVELS = ("error", "warning", "info")
TRIM_MARK = "…"

ContextValue = Union[str, int, float, bool]
MESSAGE_TYPE = "message"  # the exception_type of a report of record_message: text, no exception

# -- A frame in a notebook cell (README, "Notebooks"): where the line is in the saved notebook.
CELL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")   # nbformat 4.5 cell ids
LINE_HASH = re.compile(r"[0-9a-f]{8,64}")
LINE_HASH_CHARS = 16


def line_hash(line: str) -> str:
    """The ``line_hash`` of a cell line: the first 16 hex digits of the SHA-256 of its UTF-8
    text with every run of whitespace folded to one space and both ends stripped."""
    folded = " ".join(line.split())
    return hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()[:LINE_HASH_CHARS]


@dataclass(frozen=True)
class NotebookCell:
    """Where a frame's line lies in a notebook: the cell and the line within its source."""

    line: int                             # 1-based, in the cell's source as the notebook saves it
    notebook: Optional[str] = None        # path of the .ipynb, shortened like filenames
    id: Optional[str] = None              # nbformat 4.5 cell id
    execution_count: Optional[int] = None
    line_hash: Optional[str] = None       # line_hash() of that line; never its text


@dataclass(frozen=True)
class Frame:
    """One stack frame, outermost first in a traceback."""

    filename: str
    line_number: int
    function_name: str
    text: str = ""
    frame_locals: Optional[Mapping[str, str]] = field(default=None, hash=False, compare=True)
    cell: Optional[NotebookCell] = None   # set when the frame runs code of a notebook cell
    column_number: Optional[int] = None   # 1-based; JavaScript frames, resolved by source maps
    in_app: Optional[bool] = None         # False: the sender says it is not the app's code


@dataclass(frozen=True)
class RequestInfo:
    """The HTTP request being served when the error happened: no query values, no secret
    header, no body."""

    method: Optional[str] = None
    url: Optional[str] = None
    route: Optional[str] = None
    headers: Optional[Mapping[str, str]] = field(default=None, hash=False)


@dataclass(frozen=True)
class ChainedException:
    """An exception of the ``__cause__``/``__context__`` chain of the reported one."""

    exception_type: str
    exception_message: str
    traceback: tuple[Frame, ...] = ()


@dataclass(frozen=True)
class Report:
    """One captured exception (or message: see ``level``), as sent over the wire."""

    exception_type: str
    exception_message: str
    traceback: tuple[Frame, ...]
    hostname: Optional[str] = None
    revision: Optional[str] = None
    error_count: int = 1
    error_threshold: Optional[int] = None
    additional_info: Optional[str] = None
    context: Optional[Mapping[str, ContextValue]] = field(default=None, hash=False)
    timestamp: Optional[float] = None
    level: str = "error"
    tags: Optional[Mapping[str, str]] = field(default=None, hash=False)
    request: Optional[RequestInfo] = None
    user_id: Optional[str] = None
    chained: tuple[ChainedException, ...] = ()  # the nearest first, the innermost last


class InvalidReport(ValueError):
    """A report that cannot be accepted; ``errors`` maps each bad field to the rule it broke."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in self.errors.items()))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` without NUL characters, each lone surrogate (legal in JSON escapes, but not
    encodable as UTF-8, so it could be neither stored nor shown) replaced by U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def trim(text: str, limit: int) -> str:
    """Return ``text`` cut to at most ``limit`` characters, marking a cut with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + TRIM_MARK


class _Checker:
    """Collects field errors while reading one untrusted report."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def fail(self, name: str, reason: str) -> None:
        self.errors.setdefault(name, reason)

    def string(self, obj: Mapping[str, Any], key: str, name: str, limit: int,
               required: bool = False, non_empty: bool = False) -> Optional[str]:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(name, "is required")
            return None
        if not isinstance(value, str):
            self.fail(name, "must be a string")
            return None
        value = trim(clean_text(value), limit)
        if non_empty and not value.strip():  # checked once cleaned: "\x00" is empty too
            self.fail(name, "must not be empty")
            return None
        return value

    def integer(self, obj: Mapping[str, Any], key: str, name: str, minimum: int,
                required: bool = False, maximum: int = MAX_ERROR_COUNT) -> Optional[int]:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(name, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, "must be an integer")
            return None
        if value < minimum:
            self.fail(name, f"must be >= {minimum}")
            return None
        return min(value, maximum)


def _parse_cell(checker: _Checker, value: Any, name: str) -> Optional[NotebookCell]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        checker.fail(name, "must be an object")
        return None
    before = len(checker.errors)
    line = checker.integer(value, "line", f"{name}.line", 1, required=True, maximum=10**9)
    notebook = checker.string(value, "notebook", f"{name}.notebook", MAX_STRING_CHARS,
                              non_empty=True)
    execution_count = checker.integer(value, "execution_count", f"{name}.execution_count", 1,
                                      maximum=10**9)
    cell_id, digest = value.get("id"), value.get("line_hash")
    if cell_id is not None and not (isinstance(cell_id, str) and CELL_ID.fullmatch(cell_id)):
        checker.fail(f"{name}.id", "must be 1 to 64 letters, digits, '-' or '_'")
    if digest is not None and not (isinstance(digest, str) and LINE_HASH.fullmatch(digest)):
        checker.fail(f"{name}.line_hash", "must be 8 to 64 lowercase hex digits")
    if len(checker.errors) != before:
        return None
    assert line is not None
    return NotebookCell(line, notebook, cell_id, execution_count, digest)


def _parse_frame(checker: _Checker, value: Any, name: str) -> Optional[Frame]:
    if not isinstance(value, Mapping):
        checker.fail(name, "must be an object")
        return None
    before = len(checker.errors)
    filename = checker.string(value, "filename", f"{name}.filename", MAX_STRING_CHARS,
                              required=True, non_empty=True)
    line_number = checker.integer(value, "line_number", f"{name}.line_number", 1,
                                  required=True, maximum=10**9)
    function_name = checker.string(value, "function_name", f"{name}.function_name",
                                   MAX_STRING_CHARS, required=True)
    text = checker.string(value, "text", f"{name}.text", MAX_STRING_CHARS) or ""
    frame_locals = _parse_strings(checker, value.get("frame_locals"), f"{name}.frame_locals",
                                  MAX_LOCAL_REPR_CHARS, MAX_LOCALS_PER_FRAME)
    cell = _parse_cell(checker, value.get("cell"), f"{name}.cell")
    column_number = checker.integer(value, "column_number", f"{name}.column_number", 1,
                                    maximum=10**9)
    in_app = value.get("in_app")
    if in_app is not None and not isinstance(in_app, bool):
        checker.fail(f"{name}.in_app", "must be true or false")
    if len(checker.errors) != before:
        return None
    assert filename is not None and line_number is not None and function_name is not None
    return Frame(filename, line_number, function_name, text, frame_locals, cell, column_number,
                 in_app)


def _parse_traceback(checker: _Checker, value: Any, name: str = "traceback",
                     may_be_empty: bool = False, max_frames: int = MAX_FRAMES,
                     kept_outermost: int = KEPT_OUTERMOST_FRAMES) -> tuple[Frame, ...]:
    if value is None:
        checker.fail(name, "is required")
        return ()
    if not isinstance(value, list):
        checker.fail(name, "must be a list of frames")
        return ()
    if not value and not may_be_empty:
        checker.fail(name, "must not be empty")
        return ()
    if len(value) > max_frames:
        value = value[:kept_outermost] + value[len(value) - (max_frames - kept_outermost):]
    frames = [_parse_frame(checker, item, f"{name}[{index}]") for index, item in enumerate(value)]
    return tuple(frame for frame in frames if frame is not None)


def _parse_context(checker: _Checker, value: Any) -> Optional[dict[str, ContextValue]]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        checker.fail("context", "must be an object of name -> string, number or boolean")
        return None
    context: dict[str, ContextValue] = {}
    for key, item in list(value.items())[:MAX_CONTEXT_ITEMS]:
        key = trim(clean_text(str(key)), 128)
        if isinstance(item, str):
            context[key] = trim(clean_text(item), MAX_STRING_CHARS)
        elif isinstance(item, (bool, int)) or (isinstance(item, float) and math.isfinite(item)):
            context[key] = item
        else:
            checker.fail(f"context.{key}", "must be a string, a finite number or a boolean")
    return context


def _parse_strings(checker: _Checker, value: Any, name: str, limit: int,
                   max_items: int) -> Optional[dict[str, str]]:
    """A map of name -> string (locals, tags, headers): at most ``max_items``, each trimmed."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        checker.fail(name, "must be an object of name -> string")
        return None
    kept: dict[str, str] = {}
    for key, item in list(value.items())[:max_items]:
        key = trim(clean_text(str(key)), MAX_NAME_CHARS)
        if isinstance(item, str):
            kept[key] = trim(clean_text(item), limit)
        else:
            checker.fail(f"{name}.{key}", "must be a string")
    return kept


def _parse_level(checker: _Checker, value: Any) -> str:
    if value is None:
        return "error"
    if not isinstance(value, str) or value not in LEVELS:
        checker.fail("level", "must be one of " + ", ".join(LEVELS))
        return "error"
    return value


def _parse_request(checker: _Checker, value: Any) -> Optional[RequestInfo]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        checker.fail("request", "must be an object")
        return None
    return RequestInfo(
        method=checker.string(value, "method", "request.method", MAX_METHOD_CHARS),
        url=checker.string(value, "url", "request.url", MAX_STRING_CHARS),
        route=checker.string(value, "route", "request.route", MAX_STRING_CHARS),
        headers=_parse_strings(checker, value.get("headers"), "request.headers",
                               MAX_HEADER_CHARS, MAX_HEADERS))


def _parse_user(checker: _Checker, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        checker.fail("user", 'must be an object {"id": ID}')
        return None
    return checker.string(value, "id", "user.id", MAX_USER_ID_CHARS)


def _parse_chained(checker: _Checker, value: Any) -> tuple[ChainedException, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        checker.fail("chained", "must be a list of exceptions")
        return ()
    chained = []
    for index, item in enumerate(value[:MAX_CHAINED]):
        name = f"chained[{index}]"
        if not isinstance(item, Mapping):
            checker.fail(name, "must be an object")
            continue
        before = len(checker.errors)
        exception_type = checker.string(item, "exception_type", f"{name}.exception_type",
                                        MAX_STRING_CHARS, required=True, non_empty=True)
        exception_message = checker.string(item, "exception_message",
                                           f"{name}.exception_message", MAX_MESSAGE_CHARS,
                                           required=True)
        traceback = _parse_traceback(checker, item.get("traceback"), f"{name}.traceback",
                                     may_be_empty=True, max_frames=MAX_CHAINED_FRAMES,
                                     kept_outermost=0)
        if len(checker.errors) == before:
            assert exception_type is not None and exception_message is not None
            chained.append(ChainedException(exception_type, exception_message, traceback))
    return tuple(chained)


def _parse_timestamp(checker: _Checker, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        checker.fail("timestamp", "must be a finite number of seconds since the epoch")
        return None
    if not 0 <= value < 10**11:
        checker.fail("timestamp", "must be between 0 and 10^11 seconds since the epoch")
        return None
    return float(value)


def parse_report(data: Any) -> Report:
    """Validate untrusted JSON data and return the :class:`Report` it describes.

    Raises :class:`InvalidReport` naming every bad field. Unknown fields are ignored.
    """
    if not isinstance(data, Mapping):
        raise InvalidReport({"report": "must be an object"})
    checker = _Checker()
    exception_type = checker.string(data, "exception_type", "exception_type", MAX_STRING_CHARS,
                                    required=True, non_empty=True)
    exception_message = checker.string(data, "exception_message", "exception_message",
                                       MAX_MESSAGE_CHARS, required=True)
    traceback = _parse_traceback(checker, data.get("traceback"))
    hostname = checker.string(data, "hostname", "hostname", 255)
    revision = checker.string(data, "revision", "revision", 255)
    error_count = checker.integer(data, "error_count", "error_count", 1)
    error_threshold = checker.integer(data, "error_threshold", "error_threshold", 1)
    additional_info = checker.string(data, "additional_info", "additional_info", MAX_MESSAGE_CHARS)
    context = _parse_context(checker, data.get("context"))
    timestamp = _parse_timestamp(checker, data.get("timestamp"))
    level = _parse_level(checker, data.get("level"))
    tags = _parse_strings(checker, data.get("tags"), "tags", MAX_TAG_CHARS, MAX_TAGS)
    request = _parse_request(checker, data.get("request"))
    user_id = _parse_user(checker, data.get("user"))
    chained = _parse_chained(checker, data.get("chained"))
    if checker.errors:
        raise InvalidReport(checker.errors)
    assert exception_type is not None and exception_message is not None
    return Report(
        exception_type=exception_type,
        exception_message=exception_message,
        traceback=traceback,
        hostname=hostname,
        revision=revision,
        error_count=error_count or 1,
        error_threshold=error_threshold,
        additional_info=additional_info,
        context=context,
        timestamp=timestamp,
        level=level,
        tags=tags,
        request=request,
        user_id=user_id,
        chained=chained,
    )


def _plain_string(value: Any, limit: int) -> bool:
    return type(value) is str and len(value) <= limit and "\x00" not in value and (
        value.isascii() or _LONE_SURROGATE.search(value) is None)


def _optional_string(data: Mapping[str, Any], key: str, limit: int) -> bool:
    value = data.get(key)
    return value is None or _plain_string(value, limit)


def _optional_count(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    return value is None or (type(value) is int and 1 <= value <= MAX_ERROR_COUNT)


REPORT_FIELDS = frozenset(("exception_type", "exception_message", "traceback", "hostname",
                           "revision", "error_count", "error_threshold", "additional_info",
                           "context", "timestamp", "level", "tags", "request", "user",
                           "chained"))
FRAME_FIELDS = frozenset(("filename", "line_number", "function_name", "text", "frame_locals"))
REQUEST_FIELDS = frozenset(("method", "url", "route", "headers"))
CHAINED_FIELDS = frozenset(("exception_type", "exception_message", "traceback"))


def _plain_frame(frame: Any) -> bool:
    if type(frame) is not dict or not frame.keys() <= FRAME_FIELDS:
        return False
    filename, line_number = frame.get("filename"), frame.get("line_number")
    if not (_plain_string(filename, MAX_STRING_CHARS) and filename.strip()
            and type(line_number) is int and 1 <= line_number <= 10**9
            and _plain_string(frame.get("function_name"), MAX_STRING_CHARS)
            and _optional_string(frame, "text", MAX_STRING_CHARS)):
        return False
    frame_locals = frame.get("frame_locals")
    if frame_locals is None:
        return True
    return (type(frame_locals) is dict and len(frame_locals) <= MAX_LOCALS_PER_FRAME
            and all(_plain_string(name, MAX_NAME_CHARS)
                    and _plain_string(value, MAX_LOCAL_REPR_CHARS)
                    for name, value in frame_locals.items()))


def _plain_traceback(traceback: Any, min_frames: int, max_frames: int) -> bool:
    return (type(traceback) is list and min_frames <= len(traceback) <= max_frames
            and all(_plain_frame(frame) for frame in traceback))


def _plain_strings(value: Any, limit: int, max_items: int) -> bool:
    return value is None or (
        type(value) is dict and len(value) <= max_items
        and all(_plain_string(name, MAX_NAME_CHARS) and _plain_string(item, limit)
                for name, item in value.items()))


def _plain_request(request: Any) -> bool:
    return request is None or (
        type(request) is dict and request.keys() <= REQUEST_FIELDS
        and _optional_string(request, "method", MAX_METHOD_CHARS)
        and _optional_string(request, "url", MAX_STRING_CHARS)
        and _optional_string(request, "route", MAX_STRING_CHARS)
        and _plain_strings(request.get("headers"), MAX_HEADER_CHARS, MAX_HEADERS))


def _plain_user(user: Any) -> bool:
    return user is None or (type(user) is dict and user.keys() == {"id"}
                            and _plain_string(user["id"], MAX_USER_ID_CHARS))


def _plain_chained(chained: Any) -> bool:
    if chained is None:
        return True
    return (type(chained) is list and 0 < len(chained) <= MAX_CHAINED
            and all(type(item) is dict and item.keys() == CHAINED_FIELDS
                    and _plain_string(item["exception_type"], MAX_STRING_CHARS)
                    and bool(item["exception_type"].strip())
                    and _plain_string(item["exception_message"], MAX_MESSAGE_CHARS)
                    and _plain_traceback(item["traceback"], 0, MAX_CHAINED_FRAMES)
                    for item in chained))


def _plain_timestamp(value: Any) -> bool:
    return value is None or (type(value) in (int, float) and 0 <= value < 10**11)


def _plain_context(context: Any) -> bool:
    if context is None:
        return True
    return (type(context) is dict and len(context) <= MAX_CONTEXT_ITEMS
            and all(_plain_string(name, MAX_NAME_CHARS)
                    and (_plain_string(value, MAX_STRING_CHARS)
                         or type(value) in (bool, int)
                         or (type(value) is float and math.isfinite(value)))
                    for name, value in context.items()))


def _plain_report(data: Any) -> bool:
    """True when ``data`` is a report that parse_report accepts as it is, without trimming.

    A quick test of the common case; anything unusual is left to parse_report.
    """
    if type(data) is not dict or not data.keys() <= REPORT_FIELDS:
        return False
    exception_type, traceback = data.get("exception_type"), data.get("traceback")
    return (_plain_string(exception_type, MAX_STRING_CHARS) and bool(exception_type.strip())
            and _plain_string(data.get("exception_message"), MAX_MESSAGE_CHARS)
            and _plain_traceback(traceback, 1, MAX_FRAMES)
            and _optional_string(data, "hostname", 255)
            and _optional_string(data, "revision", 255)
            and _optional_string(data, "additional_info", MAX_MESSAGE_CHARS)
            and _optional_count(data, "error_count")
            and _optional_count(data, "error_threshold")
            and _plain_context(data.get("context")) and _plain_timestamp(data.get("timestamp"))
            and data.get("level") in (None, *LEVELS)
            and _plain_strings(data.get("tags"), MAX_TAG_CHARS, MAX_TAGS)
            and _plain_request(data.get("request")) and _plain_user(data.get("user"))
            and _plain_chained(data.get("chained")))


def stored_form(data: Any) -> Optional[dict[str, Any]]:
    """None when ``data`` is a valid report parse_report keeps exactly as it is, with no
    unknown field (the common case, recognised quickly); else the wire form of the trimmed,
    cleaned report, without unknown fields.

    Raises :class:`InvalidReport` exactly when :func:`parse_report` would.
    """
    if _plain_report(data):
        return None
    return report_to_dict(parse_report(data))


def frame_to_dict(frame: Frame) -> dict[str, Any]:
    """Return the wire form of one frame."""
    data: dict[str, Any] = {
        "filename": frame.filename,
        "line_number": frame.line_number,
        "function_name": frame.function_name,
        "text": frame.text,
    }
    if frame.frame_locals is not None:
        data["frame_locals"] = dict(frame.frame_locals)
    if frame.cell is not None:
        data["cell"] = cell_to_dict(frame.cell)
    if frame.column_number is not None:
        data["column_number"] = frame.column_number
    if frame.in_app is not None:
        data["in_app"] = frame.in_app
    return data


def request_to_dict(request: RequestInfo) -> dict[str, Any]:
    """Return the wire form of a request, unset fields omitted."""
    data: dict[str, Any] = {key: value for key, value in (
        ("method", request.method), ("url", request.url), ("route", request.route))
        if value is not None}
    if request.headers is not None:
        data["headers"] = dict(request.headers)
    return data


def chained_to_dict(chained: ChainedException) -> dict[str, Any]:
    """Return the wire form of one chained exception."""
    return {"exception_type": chained.exception_type,
            "exception_message": chained.exception_message,
            "traceback": [frame_to_dict(frame) for frame in chained.traceback]}


def cell_to_dict(cell: NotebookCell) -> dict[str, Any]:
    """Return the wire form of a frame's notebook cell, unset fields omitted."""
    fields = {"notebook": cell.notebook, "id": cell.id, "execution_count": cell.execution_count,
              "line": cell.line, "line_hash": cell.line_hash}
    return {key: value for key, value in fields.items() if value is not None}


def report_to_dict(report: Report) -> dict[str, Any]:
    """Return the wire form of a report: JSON-serialisable, optional fields omitted when unset."""
    data: dict[str, Any] = {
        "exception_type": report.exception_type,
        "exception_message": report.exception_message,
        "traceback": [frame_to_dict(frame) for frame in report.traceback],
    }
    optional = {
        "hostname": report.hostname,
        "revision": report.revision,
        "error_threshold": report.error_threshold,
        "additional_info": report.additional_info,
        "context": dict(report.context) if report.context is not None else None,
        "timestamp": report.timestamp,
        "tags": dict(report.tags) if report.tags is not None else None,
        "request": request_to_dict(report.request) if report.request is not None else None,
        "user": {"id": report.user_id} if report.user_id is not None else None,
    }
    data.update({key: value for key, value in optional.items() if value is not None})
    if report.error_count != 1:
        data["error_count"] = report.error_count
    if report.level != "error":
        data["level"] = report.level
    if report.chained:
        data["chained"] = [chained_to_dict(chained) for chained in report.chained]
    return data


def with_error_count(report: Report, error_count: int) -> Report:
    """Return a copy of ``report`` standing for ``error_count`` occurrences."""
    return replace(report, error_count=error_count)
