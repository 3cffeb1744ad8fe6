"""PURE: what ``/flawless.js`` sends from a page, turned into a wire REPORT.

The page sends ``{"type", "message", "stack", "file", "line", "column", "page", "release",
"kind"}`` (every field optional). The stack is parsed (``jsstack``) and turned outermost
first like a Python traceback; when it has no frame, the error's file, line and column make
one. ``release`` (the page's ``data-release``) becomes the revision; the page's URL, without
its query string, goes into the context. Values of the wrong type are left out rather than
refused: a page cannot fix what its browser sends.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from flawless.server.core.jsstack import JsFrame, named_file, parse_stack

KINDS = ("error", "rejection")
ANONYMOUS = "<anonymous>"
UNKNOWN_FILE = "<unknown>"


def _text(payload: Mapping[str, Any], key: str) -> Optional[str]:
    value = payload.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _url(payload: Mapping[str, Any], key: str) -> Optional[str]:
    """The URL at ``key`` without its query and fragment, or None when nothing is left."""
    text = _text(payload, key)
    return named_file(text) if text else None


def _positive(payload: Mapping[str, Any], key: str) -> Optional[int]:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
        return None
    return value


def js_frame_to_wire(frame: JsFrame) -> dict[str, Any]:
    """The wire form of one JavaScript frame: its URL as the filename, with its column."""
    wire: dict[str, Any] = {"filename": frame.url, "line_number": frame.line,
                            "function_name": frame.function or ANONYMOUS}
    if frame.column is not None:
        wire["column_number"] = frame.column
    return wire


def _frames(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    frames = parse_stack(_text(payload, "stack") or "")
    if not frames:
        file, line = _url(payload, "file"), _positive(payload, "line")
        if file and line:
            frames = [JsFrame("", file, line, _positive(payload, "column"))]
    wire = [js_frame_to_wire(frame) for frame in reversed(frames)]
    if not wire:
        wire = [{"filename": _url(payload, "page") or UNKNOWN_FILE, "line_number": 1,
                 "function_name": ANONYMOUS}]
    return wire


def browser_report(payload: Any) -> Optional[dict[str, Any]]:
    """The wire REPORT of one error a page sent, or None when ``payload`` is no object."""
    if not isinstance(payload, Mapping):
        return None
    kind = payload.get("kind") if payload.get("kind") in KINDS else "error"
    report: dict[str, Any] = {
        "exception_type": _text(payload, "type") or
        ("UnhandledRejection" if kind == "rejection" else "Error"),
        "exception_message": payload.get("message") if isinstance(payload.get("message"), str)
        else "",
        "traceback": _frames(payload),
        "context": {"kind": kind},
    }
    release = _text(payload, "release")
    if release:
        report["revision"] = release.strip()
    page = _url(payload, "page")
    if page:
        report["context"]["page"] = page
    return report
