"""The git commit a file belongs to, read from ``.git`` files (never by running git).

Each directory and each repository is looked at once and cached: a deployed application
does not change its commit under a running process, and the lookup runs on the sender
thread, never on the application's.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Callable, Iterable, Optional

from flawless.client.paths import is_library_file

_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


@lru_cache(maxsize=1024)
def git_dir_of(directory: str) -> Optional[str]:
    """The git directory of the repository containing ``directory``, if any."""
    dot_git = os.path.join(directory, ".git")
    if os.path.isdir(dot_git):
        return dot_git
    if os.path.isfile(dot_git):  # worktrees and submodules: "gitdir: <path>"
        text = _read(dot_git) or ""
        if text.startswith("gitdir:"):
            return os.path.normpath(os.path.join(directory, text[len("gitdir:"):].strip()))
    parent = os.path.dirname(directory)
    return git_dir_of(parent) if parent != directory else None


def _resolve_ref(git_dir: str, ref: str) -> Optional[str]:
    common = git_dir
    common_link = _read(os.path.join(git_dir, "commondir"))
    if common_link:
        common = os.path.normpath(os.path.join(git_dir, common_link.strip()))
    for base in (git_dir, common):
        loose = (_read(os.path.join(base, *ref.split("/"))) or "").strip()
        if _SHA.match(loose):
            return loose
    for line in (_read(os.path.join(common, "packed-refs")) or "").splitlines():
        sha, _, name = line.partition(" ")
        if name.strip() == ref and _SHA.match(sha):
            return sha
    return None


@lru_cache(maxsize=64)
def head_revision(git_dir: str) -> Optional[str]:
    """The commit HEAD points at in ``git_dir``, following one symbolic ref."""
    head = (_read(os.path.join(git_dir, "HEAD")) or "").strip()
    if _SHA.match(head):
        return head
    if head.startswith("ref:"):
        return _resolve_ref(git_dir, head[len("ref:"):].strip())
    return None


def revision_of(filename: str) -> Optional[str]:
    """The commit of the repository holding ``filename``, or None outside any repository."""
    if not os.path.isabs(filename):
        return None
    git_dir = git_dir_of(os.path.dirname(filename))
    return head_revision(git_dir) if git_dir else None


def revision_of_frames(filenames: Iterable[str],
                       is_library: Callable[[str], bool] = is_library_file) -> Optional[str]:
    """The commit of the first file (innermost first) of the program's code that lives in a
    repository. Never the interpreter's: its standard library may lie in a git work tree
    (pyenv's does), whose commit means nothing to the program's repository."""
    for filename in filenames:
        if is_library(filename):
            continue
        revision = revision_of(filename)
        if revision:
            return revision
    return None
