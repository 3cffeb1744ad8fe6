"""PURE: what git's output means. Parsing only; running git is :mod:`repository`'s job."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

from flawless.server.core.model import Blame, CommitInfo
from flawless.server.core.text import fold_whitespace

MOVED_CODE_WINDOW = 50          # lines searched either side for a frame's text
MAX_BLOCK_LINES = 400           # the most lines blamed again with copy detection
_PORCELAIN_HEADER = re.compile(rb"([0-9a-f]{40}) \d+ (\d+)(?: \d+)?")
FULL_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Tree:
    """The files of one commit: repository-relative path -> blob sha."""

    paths: frozenset[str]
    blobs: Mapping[str, str]


def split_lines(text: str) -> list[str]:
    """The lines of a file as git numbers them: only ``\\n`` ends a line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def locate_line(lines: list[str], line_number: int, expected_text: str,
                window: int = MOVED_CODE_WINDOW) -> Optional[int]:
    """The line (1-based) nearest ``line_number`` whose text is ``expected_text``, or None.

    Whitespace is folded before comparing. On a tie the later line wins: code is more often
    pushed down by lines added above it than pulled up.
    """
    wanted = fold_whitespace(expected_text)
    for distance in range(window + 1):
        for candidate in (line_number + distance, line_number - distance):
            if 1 <= candidate <= len(lines) and fold_whitespace(lines[candidate - 1]) == wanted:
                return candidate
    return None


def _indentation(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


def _defines(line: str, function_name: str) -> bool:
    """Whether ``line`` starts the definition of ``function_name`` (Python, JavaScript)."""
    if not function_name.isidentifier():
        return False
    return re.search(rf"\b(def|class|function)\s+{re.escape(function_name)}\b"
                     rf"|\b{re.escape(function_name)}\s*(=|:|\()", line) is not None


def enclosing_block(lines: list[str], line_number: int, function_name: str = "",
                    limit: int = MAX_BLOCK_LINES) -> tuple[int, int]:
    """The first and last line (1-based) of the block of code holding ``line_number``.

    Read by indentation, so it serves Python and most formatted code: the enclosing
    definition named ``function_name`` (with its decorators), else the outermost enclosing
    block below the top level; a top-level line's block is its paragraph. At most ``limit``
    lines, kept around ``line_number``. Copy detection needs a block: git does not follow a
    single short line to another file.
    """
    target = min(max(line_number, 1), max(len(lines), 1))
    start = target
    level = _indentation(lines[target - 1]) if lines else 0
    for number in range(target - 1, 0, -1):
        text = lines[number - 1]
        if not text.strip() or _indentation(text) >= level:
            continue
        start, level = number, _indentation(text)
        if level == 0 or _defines(text, function_name):
            break
    if start == target:   # a top-level line: its paragraph
        while start > 1 and lines[start - 2].strip():
            start -= 1
        end = target
        while end < len(lines) and lines[end].strip():
            end += 1
    else:
        while start > 1 and lines[start - 2].lstrip().startswith("@") and \
                _indentation(lines[start - 2]) == level:
            start -= 1
        end = target
        for number in range(target + 1, len(lines) + 1):
            text = lines[number - 1]
            if not text.strip():
                continue
            if _indentation(text) <= level:
                if text.strip()[0] in ")]}":   # the closing bracket of a braced block
                    end = number
                break
            end = number
    if end - start + 1 > limit:
        start = max(start, target - limit // 2)
        end = min(end, start + limit - 1)
    return start, end


def parse_porcelain(output: bytes, path: str, revision: str) -> dict[int, Blame]:
    """Line number -> `Blame` for each line in the output of ``git blame --porcelain``."""
    commits: dict[bytes, dict[bytes, str]] = {}
    blames: dict[int, Blame] = {}
    commit, line_number = b"", 0
    for line in output.split(b"\n"):
        header = _PORCELAIN_HEADER.fullmatch(line)
        if header:
            commit, line_number = header.group(1), int(header.group(2))
            fields = commits.setdefault(commit, {})
        elif line.startswith(b"\t") and commit:
            blames[line_number] = _blame_from(commit, commits[commit], path, line_number,
                                              revision, line[1:].decode("utf-8", "replace"))
        elif commit:
            key, _, value = line.partition(b" ")
            fields[key] = value.decode("utf-8", "replace")
    return blames


def _blame_from(commit: bytes, fields: Mapping[bytes, str], path: str, line_number: int,
                revision: str, line_text: str) -> Blame:
    email = fields.get(b"author-mail", "")
    if email.startswith("<") and email.endswith(">"):
        email = email[1:-1]
    return Blame(path=path, line_number=line_number, author_name=fields.get(b"author", ""),
                 author_email=email, commit_sha=commit.decode("ascii"),
                 commit_summary=fields.get(b"summary", ""),
                 commit_timestamp=float(fields.get(b"author-time", "0")),
                 revision=revision, at_requested_revision=True, line_text=line_text,
                 original_path=fields.get(b"filename", path))


def listed_revisions(text: str) -> list[str]:
    """The full shas listed in a ``.git-blame-ignore-revs`` file (comments dropped)."""
    shas = []
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip().lower()
        if FULL_SHA.fullmatch(word):
            shas.append(word)
    return shas


def parse_tree(output: bytes) -> Tree:
    blobs = {}
    for entry in output.split(b"\0"):
        meta, _, name = entry.partition(b"\t")
        parts = meta.split(b" ")
        if len(parts) == 3 and parts[1] == b"blob":
            blobs[os.fsdecode(name)] = parts[2].decode("ascii")
    return Tree(paths=frozenset(blobs), blobs=blobs)


# git log --format of fix_log: fields split by US, Fixes: trailer values by RS, commits by NUL
FIX_LOG_FORMAT = "%H%x1f%aN%x1f%aE%x1f%(trailers:key=Fixes,valueonly,separator=%x1e)"


def parse_fix_log(output: bytes) -> list[tuple[CommitInfo, tuple[str, ...]]]:
    """Each commit of ``git log -z --format=FIX_LOG_FORMAT`` with its Fixes: trailer values."""
    commits = []
    for entry in output.split(b"\0"):
        fields = entry.decode("utf-8", "replace").strip("\n").split("\x1f")
        if len(fields) != 4 or not FULL_SHA.fullmatch(fields[0]):
            continue
        sha, name, email, values = fields
        commits.append((CommitInfo(sha, name, email),
                        tuple(value for value in values.split("\x1e") if value.strip())))
    return commits
