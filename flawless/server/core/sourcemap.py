"""PURE: where a frame of a minified script comes from, once its source map has said.

Which stored maps a frame may use (by the script's URL, or its path), how a map's source
names become repository-like paths (``webpack://shop/./src/a.ts`` is ``src/a.ts``), and the
resolved frame itself. The map is read by a library in the shell; here are only plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

from flawless.report import Frame
from flawless.server.core.jsstack import clean_url, url_path

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:(?://[^/]*)?")
UNKNOWN_FUNCTIONS = ("", "<unknown>", "<anonymous>")


@dataclass(frozen=True)
class Token:
    """What a source map says about one position of the generated script."""

    source: str                 # the source's name in the map
    line: int                   # 1-based, in the original source
    column: int                 # 1-based
    function_name: Optional[str]  # the enclosing function in the original source, if known
    context_line: Optional[str]   # the original line, from the map's sourcesContent


def script_keys(filename: str) -> list[str]:
    """The names a frame's script may have been uploaded under, most specific first: its
    URL without query, then its path (``/static/app.js``)."""
    url = clean_url(filename)
    path = url_path(url)
    return [url] if path == url else [url, path]


def source_path(source: str) -> str:
    """A map's source name as a path: bundler prefixes (``webpack://NAME/``, ``file://``),
    queries, ``.`` and ``..`` components dropped (``../src/a.ts`` is ``src/a.ts``)."""
    path = _SCHEME.sub("", clean_url(source).replace("\\", "/"))
    parts = [part for part in path.split("/") if part not in ("", ".", "..")]
    return "/".join(parts) or source


def resolved_frame(frame: Frame, token: Token) -> Frame:
    """``frame`` at its place in the original source: file, line, column, function (the
    minified one when the map cannot tell) and the line's text from ``sourcesContent``."""
    function = token.function_name if token.function_name not in UNKNOWN_FUNCTIONS \
        else frame.function_name
    text = (token.context_line or "").rstrip("\r\n")
    return replace(frame, filename=source_path(token.source), line_number=token.line,
                   column_number=token.column, function_name=function or frame.function_name,
                   text=text)


def resolution_note(frame: Frame, resolved: Frame) -> str:
    """The line of the explanation saying where a frame was resolved to."""
    return (f"resolved {frame.filename}:{frame.line_number}:{frame.column_number} through its "
            f"source map to {resolved.filename}:{resolved.line_number}")
