"""PURE: a Sentry SDK's event turned into a wire REPORT: the one place that knows both.

Every field the report has a place for is mapped here, leniently: a value of the wrong type
is left out, never a reason to refuse the event (the SDK could not fix it, and the error
behind it still happened). ``flawless.report`` then bounds and validates the result like any
report, so nothing is stored that a JSON-RPC report could not carry.

- ``exception.values``: the last value (Sentry orders them oldest first) is the report's
  exception; the others become ``chained``, the nearest first, the innermost last. Without
  an exception (``capture_message``), the message is the report's, with the stack of the
  crashed or current thread when the SDK attached one.
- frames: ``abs_path`` (else ``filename``; a URL without its query), ``lineno``, ``colno``,
  ``function``, ``context_line``, ``in_app`` and ``vars`` (as text); a frame without a line
  number (native code) is left out.
- ``release`` is the revision when it names a commit (hex, perhaps after ``name@``); else it
  is a tag, like ``environment`` and ``transaction``. ``server_name`` is the hostname.
- ``contexts`` are flattened (``os.name``), ``request`` keeps its method, its URL without
  query and its headers that are neither secret nor an address; ``user`` keeps its id only.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any, Iterable, Mapping, Optional

from flawless.report import (KEPT_OUTERMOST_FRAMES, MAX_CONTEXT_ITEMS, MAX_FRAMES,
                             MAX_LOCAL_REPR_CHARS, MAX_LOCALS_PER_FRAME)
from flawless.server.core.jsstack import clean_url

UNKNOWN = "<unknown>"
MAX_CHAINED = 8
MAX_TAGS = 32
COMMIT = re.compile(r"(?:.*[@+])?([0-9a-fA-F]{7,40})")
LEVELS = {"fatal": "error", "error": "error", "warning": "warning", "info": "info",
          "debug": "info", "log": "info"}
# Request headers that carry a secret or a person's address: never kept.
SECRET_HEADER = re.compile(
    r"auth|cookie|token|secret|key|session|csrf|xsrf|password|signature|forwarded|real-ip"
    r"|client-ip|remote-addr|x-amz|proxy", re.IGNORECASE)
MAX_REQUEST_HEADERS = 32


def _string(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value.strip() else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _values(container: Any) -> list[Any]:
    """The items of a Sentry interface that is ``{"values": [...]}`` or a bare list."""
    if isinstance(container, Mapping):
        container = container.get("values")
    return [item for item in container if isinstance(item, Mapping)] \
        if isinstance(container, list) else []


def _positive(value: Any) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
        return None
    return value


def _as_text(value: Any) -> str:
    """A local's value as the report carries it: Sentry SDKs send reprs as strings, and the
    rest as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)[:MAX_LOCAL_REPR_CHARS + 1]
    except (TypeError, ValueError, RecursionError):
        return UNKNOWN


def _filename(frame: Mapping[str, Any]) -> str:
    name = _string(frame.get("abs_path")) or _string(frame.get("filename")) or UNKNOWN
    return (clean_url(name) if "://" in name else name).strip() or UNKNOWN


def wire_frame(frame: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """The wire form of one Sentry frame, or None when it has no line number."""
    line = _positive(frame.get("lineno"))
    if line is None:
        return None
    wire: dict[str, Any] = {"filename": _filename(frame), "line_number": line,
                            "function_name": _string(frame.get("function")) or UNKNOWN,
                            "text": frame.get("context_line")
                            if isinstance(frame.get("context_line"), str) else ""}
    column = _positive(frame.get("colno"))
    if column is not None:
        wire["column_number"] = column
    if isinstance(frame.get("in_app"), bool):
        wire["in_app"] = frame["in_app"]
    variables = frame.get("vars")
    if isinstance(variables, Mapping):
        wire["frame_locals"] = {str(name): _as_text(value) for name, value in
                                list(variables.items())[:MAX_LOCALS_PER_FRAME]}
    return wire


def wire_frames(stacktrace: Any, limit: int = MAX_FRAMES) -> list[dict[str, Any]]:
    """The frames of a Sentry stacktrace, outermost first (as Sentry sends them), the
    outermost and innermost kept when there are more than ``limit``."""
    frames = _mapping(stacktrace).get("frames")
    if not isinstance(frames, list):
        return []
    if len(frames) > limit:
        outermost = min(KEPT_OUTERMOST_FRAMES, limit // 8)
        frames = frames[:outermost] + frames[len(frames) - (limit - outermost):]
    wired = (wire_frame(frame) for frame in frames if isinstance(frame, Mapping))
    return [frame for frame in wired if frame is not None]


def exception_type(value: Mapping[str, Any], platform: Any) -> str:
    """The module-qualified type name (``builtins.`` for Python's built-in exceptions)."""
    name = _string(value.get("type")) or "Error"
    module = _string(value.get("module"))
    if module is None and platform == "python":
        module = "builtins"
    return f"{module}.{name}" if module else name


def _thread_stack(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    threads = _values(event.get("threads"))
    for wanted in ("crashed", "current"):
        for thread in threads:
            if thread.get(wanted) is True:
                return wire_frames(thread.get("stacktrace"))
    return wire_frames(event.get("stacktrace"))


def _message(event: Mapping[str, Any]) -> str:
    logentry = event.get("logentry")
    if isinstance(logentry, Mapping):
        return _string(logentry.get("formatted")) or _string(logentry.get("message")) or ""
    message = event.get("message")
    if isinstance(message, Mapping):
        return _string(message.get("formatted")) or _string(message.get("message")) or ""
    return message if isinstance(message, str) else ""


def _placeholder(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The one frame of a report whose event had none: it maps to no file."""
    return [{"filename": f"<{_string(event.get('platform')) or 'sentry'}>", "line_number": 1,
             "function_name": _string(event.get("culprit")) or UNKNOWN}]


def _tags(event: Mapping[str, Any], release_tag: Optional[str]) -> dict[str, str]:
    tags = event.get("tags")
    pairs: Iterable[Any] = tags.items() if isinstance(tags, Mapping) else \
        tags if isinstance(tags, list) else ()
    kept: dict[str, str] = {}
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str) \
                and isinstance(pair[1], (str, int, float, bool)):
            kept[pair[0]] = str(pair[1])
    for name, value in (("environment", event.get("environment")), ("release", release_tag),
                        ("transaction", event.get("transaction"))):
        if _string(value) and name not in kept:
            kept[name] = value
    return dict(list(kept.items())[:MAX_TAGS])


def _context(event: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar values of ``contexts``, one level deep, as ``name.field``."""
    flat: dict[str, Any] = {}
    platform = _string(event.get("platform"))
    if platform:
        flat["platform"] = platform
    for name, fields in _mapping(event.get("contexts")).items():
        if name == "trace":
            continue  # ids of a tracing system: nothing a person reads
        for field, value in _mapping(fields).items():
            if len(flat) >= MAX_CONTEXT_ITEMS:
                return flat
            if isinstance(value, (str, bool, int)) or (
                    isinstance(value, float) and math.isfinite(value)):
                flat[f"{name}.{field}"] = value
    return flat


def _request(event: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    request = _mapping(event.get("request"))
    if not request:
        return None
    kept: dict[str, Any] = {}
    if _string(request.get("method")):
        kept["method"] = request["method"]
    if _string(request.get("url")):
        kept["url"] = clean_url(request["url"])
    headers = request.get("headers")
    pairs: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else \
        headers if isinstance(headers, list) else ()
    safe = {}
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str) \
                and isinstance(pair[1], str) and not SECRET_HEADER.search(pair[0]):
            safe[pair[0]] = clean_url(pair[1]) if pair[0].lower() == "referer" else pair[1]
    if safe:
        kept["headers"] = dict(list(safe.items())[:MAX_REQUEST_HEADERS])
    return kept or None


def _timestamp(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            math.isfinite(value) and 0 <= value < 10**11:
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        return parsed.timestamp()
    return None


def revision_of(release: Any) -> Optional[str]:
    """The commit a release names (``9fceb02``, ``shop@9fceb02d...``), or None."""
    match = COMMIT.fullmatch(release.strip()) if isinstance(release, str) else None
    return match.group(1).lower() if match else None


def report_from_event(event: Any) -> Optional[dict[str, Any]]:
    """The wire REPORT of a Sentry event, or None when ``event`` is no JSON object."""
    if not isinstance(event, Mapping):
        return None
    platform = event.get("platform")
    exceptions = _values(event.get("exception"))
    report: dict[str, Any] = {}
    if exceptions:
        main = exceptions[-1]
        report["exception_type"] = exception_type(main, platform)
        report["exception_message"] = main.get("value") \
            if isinstance(main.get("value"), str) else ""
        report["traceback"] = wire_frames(main.get("stacktrace")) or _thread_stack(event)
        report["chained"] = [
            {"exception_type": exception_type(value, platform),
             "exception_message": value.get("value")
             if isinstance(value.get("value"), str) else "",
             "traceback": wire_frames(value.get("stacktrace"), limit=64)}
            for value in reversed(exceptions[max(0, len(exceptions) - 1 - MAX_CHAINED):-1])]
    else:
        report["exception_type"] = "message"
        report["exception_message"] = _message(event)
        report["traceback"] = _thread_stack(event)
    if not report["traceback"]:
        report["traceback"] = _placeholder(event)
    release = event.get("release")
    revision = revision_of(release)
    optional = {
        "hostname": _string(event.get("server_name")),
        "revision": revision,
        "level": LEVELS.get(event.get("level"), "error")
        if isinstance(event.get("level"), str) else None,
        "tags": _tags(event, None if revision else _string(release)) or None,
        "context": _context(event) or None,
        "request": _request(event),
        "timestamp": _timestamp(event.get("timestamp")),
    }
    user_id = _mapping(event.get("user")).get("id")
    if isinstance(user_id, (str, int)) and not isinstance(user_id, bool):
        optional["user"] = {"id": str(user_id)}
    report.update({key: value for key, value in optional.items() if value is not None})
    if not report.get("chained"):
        report.pop("chained", None)
    return report
