"""PURE: JavaScript stack traces (``error.stack``) read into frames.

Three formats, line by line, in any mixture: Chrome/V8 (``    at fn (URL:LINE:COL)``,
``    at URL:LINE:COL``), Firefox and Safari (``fn@URL:LINE:COL``, ``@URL:LINE:COL``) and
frames-only (``URL:LINE:COL``). Lines that are none of these (the ``TypeError: ...`` heading,
``at native``, ``[native code]``) are skipped. A frame inside ``eval`` is placed at the eval
call, the last place that has a URL. Query strings and fragments are dropped from URLs: they
may carry what a user typed, and they do not say which file ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

MAX_STACK_CHARS = 65536
MAX_STACK_FRAMES = 256

_LOCATION = re.compile(r"^(?P<url>.+?):(?P<line>\d{1,9})(?::(?P<column>\d{1,9}))?$")
_V8 = re.compile(r"^\s*at\s+(?:(?P<function>.+?)\s+\((?P<inner>.+)\)|(?P<bare>\S+))\s*$")
_V8_EVAL = re.compile(r"^eval at .*?\((?P<origin>[^()]+)\)")
_GECKO = re.compile(r"^\s*(?P<function>[^@]*)@(?P<location>.+?)\s*$")
# Firefox names code run by eval or new Function "URL line N > eval".
_GECKO_EVAL = re.compile(r"^(?P<url>.+?) line (?P<line>\d{1,9}) > (?:eval|Function)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*")


@dataclass(frozen=True)
class JsFrame:
    """One frame of a JavaScript stack: its function ("" when anonymous), the script's URL
    (without query or fragment), and the 1-based line and column."""

    function: str
    url: str
    line: int
    column: Optional[int]


def clean_url(url: str) -> str:
    """``url`` without its query string and fragment."""
    return url.split("#", 1)[0].split("?", 1)[0]


def named_file(url: str) -> Optional[str]:
    """``url`` without its query string and fragment, or None when that leaves no name."""
    cleaned = clean_url(url)
    return cleaned if cleaned.strip() else None


def url_path(url: str) -> str:
    """The path of a URL (``/static/app.js``); anything else is returned as it is."""
    match = _SCHEME.match(url)
    return clean_url(url[match.end():] or "/") if match else clean_url(url)


def _location(text: str, function: str) -> Optional[JsFrame]:
    text = text.strip()
    gecko_eval = _GECKO_EVAL.match(text)
    if gecko_eval:
        url = named_file(gecko_eval["url"])
        return JsFrame(function, url, int(gecko_eval["line"]), None) if url else None
    match = _LOCATION.match(text)
    url = named_file(match["url"]) if match is not None else None
    if match is None or int(match["line"]) < 1 or url is None:
        return None
    column = int(match["column"]) if match["column"] is not None else None
    return JsFrame(function, url, int(match["line"]), column if column else None)


def _function_name(name: str) -> str:
    name = name.strip()
    for prefix in ("async ", "new "):
        if name.startswith(prefix):
            name = name[len(prefix):].strip()
    return name


def _v8_frame(v8: re.Match) -> Optional[JsFrame]:
    if v8["bare"] is not None:
        return _location(v8["bare"], "")
    inner = v8["inner"]
    evaluated = _V8_EVAL.match(inner)
    return _location(evaluated["origin"] if evaluated else inner, _function_name(v8["function"]))


def parse_line(line: str, v8_only: bool = False) -> Optional[JsFrame]:
    """The frame one line of a stack describes, or None when it describes none.

    ``v8_only``: the stack is V8's, whose heading (the message, perhaps over several lines)
    may hold anything, so only ``at ...`` lines count."""
    v8 = _V8.match(line)
    if v8:
        return _v8_frame(v8)
    if v8_only:
        return None
    gecko = _GECKO.match(line)
    if gecko:
        return _location(gecko["location"], _function_name(gecko["function"]))
    return _location(line, "")


def parse_stack(stack: str) -> list[JsFrame]:
    """The frames of ``stack``, innermost first as JavaScript prints them; at most
    MAX_STACK_FRAMES, read from at most MAX_STACK_CHARS characters."""
    frames = []
    lines = stack[:MAX_STACK_CHARS].splitlines()
    v8_only = any(_V8.match(line) for line in lines)
    for line in lines:
        frame = parse_line(line, v8_only)
        if frame is not None:
            frames.append(frame)
            if len(frames) >= MAX_STACK_FRAMES:
                break
    return frames
