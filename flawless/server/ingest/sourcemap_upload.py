"""The source maps of a build directory, as ``flawless sourcemaps`` stores them.

A script (``.js``, ``.mjs``, ``.cjs``) whose ``sourceMappingURL`` names a map file of the
directory is paired with it; any other ``X.map`` is taken as the map of ``X``. Each is stored
under ``URL_PREFIX`` + its path in the directory (``/static/`` + ``js/app.js``), which is how
frames name the script once served, with the script itself when it is there (the server
reads function names from it). A map that is no JSON source map is refused, naming the file.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

from flawless.server.storage.records import SourceMapFile

MAX_MAP_BYTES = 64 * 1024 * 1024
SCRIPT_SUFFIXES = (".js", ".mjs", ".cjs")
_MAPPING_URL = re.compile(rb"//[#@]\s*sourceMappingURL=(\S+)\s*$")
_TAIL_BYTES = 4096


class BadBuild(ValueError):
    """A build directory whose maps cannot be stored; the message names the file."""


def script_url(url_prefix: str, relative: str) -> str:
    """The URL (or root-relative path) a script of the build is served at."""
    prefix = url_prefix.strip()
    if "://" not in prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix.rstrip("/") + "/" + relative.lstrip("/")


def _mapping_url(script: Path) -> str:
    with open(script, "rb") as handle:
        handle.seek(max(0, script.stat().st_size - _TAIL_BYTES))
        tail = handle.read().rstrip()
    match = _MAPPING_URL.search(tail.rsplit(b"\n", 1)[-1])
    return urllib.parse.unquote(match.group(1).decode("utf-8", "replace")) if match else ""


def _checked_map(path: Path) -> bytes:
    if path.stat().st_size > MAX_MAP_BYTES:
        raise BadBuild(f"{path}: larger than {MAX_MAP_BYTES} bytes")
    data = path.read_bytes()
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        raise BadBuild(f"{path}: not JSON") from None
    if not isinstance(parsed, dict) or not ("mappings" in parsed or "sections" in parsed):
        raise BadBuild(f"{path}: not a source map (no mappings)")
    return data


def build_maps(directory: str, url_prefix: str) -> list[SourceMapFile]:
    """Every script and map pair of ``directory``, as stored for its release."""
    root = Path(directory).resolve()
    if not root.is_dir():
        raise BadBuild(f"{directory}: not a directory")
    files = sorted(path for path in root.rglob("*") if path.is_file())
    pairs: dict[Path, Path] = {}   # map -> script
    for script in (path for path in files if path.suffix in SCRIPT_SUFFIXES):
        reference = _mapping_url(script)
        if reference and "://" not in reference and not reference.startswith("data:"):
            target = (script.parent / reference).resolve()
            if target.is_file() and root in target.parents:
                pairs.setdefault(target, script)
    for map_path in (path for path in files if path.suffix == ".map"):
        pairs.setdefault(map_path, map_path.with_suffix(""))
    maps = []
    for map_path, script in sorted(pairs.items()):
        relative = script.relative_to(root).as_posix()
        generated = script.read_bytes() if script.is_file() else None
        maps.append(SourceMapFile(script_url(url_prefix, relative), _checked_map(map_path),
                                  generated))
    if not maps:
        raise BadBuild(f"{directory}: no source map (*.map) found")
    return maps


def describe(maps: list[SourceMapFile]) -> list[str]:
    """One line per stored map, for the command's output."""
    return [f"{item.url}: map of {len(item.map):,} bytes"
            + (", with the script" if item.generated is not None else ", without the script")
            for item in maps]

