"""PURE: what git's output means. Parsing only; running git is :mod:`repository`'s job."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

from flawless.server.core.model import Blame
from flawless.server.core.text import fold_whitespace

MOVED_CODE_WINDOW = 50          # lines searched either side for a frame's text
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
                 revision=revision, at_requested_revision=True, line_text=line_text)


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
