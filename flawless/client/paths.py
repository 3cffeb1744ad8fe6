"""Which files are the program's own code, and paths with ``..`` resolved.

The interpreter's directories (its standard library, its site-packages, its scripts, the
prefixes it was installed under) hold code the program did not write: their frames carry no
locals by default (library locals are where user data hides), and their ``.git``, when they
lie in a git work tree (pyenv installs do), is not the program's revision.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from typing import Iterable, Optional

# Prefixes shared with other software (``/usr/src/app`` is a common place for an app):
# below them only the interpreter's own sysconfig directories count as the interpreter's.
SHARED_ROOTS = frozenset(("/", "/usr", "/usr/local", "/opt"))
_SYSCONFIG_KEYS = ("stdlib", "platstdlib", "purelib", "platlib", "scripts", "include",
                   "platinclude")
_PACKAGE_DIRECTORIES = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_MAX_REMEMBERED_FILES = 4096


def normalise(path: str) -> str:
    """``path`` with ``.`` and ``..`` components resolved lexically (never touching the
    disk): ``/p/notebooks/../helpers/stats.py`` -> ``/p/helpers/stats.py``. Pseudo-files
    such as ``<stdin>`` are kept as they are."""
    if path.startswith("<") or not ("." + os.sep in path or os.sep * 2 in path
                                    or path.endswith(os.sep + ".")):
        return path
    return os.path.normpath(path)


def _sysconfig_directories(prefix: str) -> list[str]:
    paths = sysconfig.get_paths(vars={"base": prefix, "platbase": prefix,
                                      "installed_base": prefix, "installed_platbase": prefix})
    return [paths[key] for key in _SYSCONFIG_KEYS if key in paths]


def interpreter_directories(prefixes: Optional[Iterable[str]] = None) -> tuple[str, ...]:
    """The directories of the interpreter installed under ``prefixes`` (default: the running
    one's ``sys.prefix``, ``sys.base_prefix`` and exec prefixes), each ending in a separator."""
    running = prefixes is None
    if prefixes is None:
        prefixes = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    directories: set[str] = set()
    for prefix in set(prefixes):
        directories.update(_sysconfig_directories(prefix))
        if os.path.normpath(prefix) not in SHARED_ROOTS:
            directories.add(prefix)
    if running:
        directories.update(sysconfig.get_paths()[key] for key in _SYSCONFIG_KEYS)
        directories.update(getattr(site, "getsitepackages", lambda: [])())
        user_site = getattr(site, "getusersitepackages", lambda: None)()
        if user_site:
            directories.add(user_site)
    return tuple(sorted(os.path.join(os.path.normpath(directory), "")
                        for directory in directories if directory))


class LibraryFiles:
    """Tells the interpreter's files (and installed packages anywhere) from the program's;
    remembers its answers, so a capture asks the file system nothing."""

    def __init__(self, directories: Optional[tuple[str, ...]] = None) -> None:
        self._directories = directories
        self._known: dict[str, bool] = {}

    @property
    def directories(self) -> tuple[str, ...]:
        """The interpreter's directories, worked out on first use."""
        if self._directories is None:
            self._directories = interpreter_directories()
        return self._directories

    def __call__(self, filename: str) -> bool:
        """True when ``filename`` is not the program's code."""
        known = self._known.get(filename)
        if known is None:
            if len(self._known) >= _MAX_REMEMBERED_FILES:
                self._known = {}
            known = self._known[filename] = self._classify(filename)
        return known

    def _classify(self, filename: str) -> bool:
        if filename.startswith("<"):
            return filename.startswith("<frozen ")  # <stdin>, <string>, cells: the program's
        path = normalise(filename)
        return any(marker in path for marker in _PACKAGE_DIRECTORIES) or \
            path.startswith(self.directories)


is_library_file = LibraryFiles()
