"""PURE: which frames are in-app, which frame is to blame, and the error's identity.

No I/O here: the repository's file list arrives as a :class:`RepoIndex`, the rule files as
:class:`Rules`, and :func:`route` returns a :class:`Route` that says what it decided and why.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional, Sequence, TypeVar

from flawless.report import Frame, Report
from flawless.server.core.cell_frames import (cell_function, cell_text, cell_where,
                                              notebook_cell)
from flawless.server.core.jsstack import url_path
from flawless.server.core.model import (PACKAGE_DIRS, ErrorKey, ExceptionLike, LineRule,
                                        RoutedException, RoutedFrame, Route, RoutingSettings,
                                        Rules)
from flawless.server.core.notebooks import is_notebook_path
from flawless.server.core.text import fold_whitespace

# Python 2 and 3 spell the module of the built-in exceptions differently; clients send either.
BUILTIN_PREFIXES = ("builtins.", "exceptions.")
_RAISE_LINE = re.compile(r"raise\b")
_DRIVE = re.compile(r"[A-Za-z]:")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
RuleT = TypeVar("RuleT", bound=LineRule)


def path_components(filename: str) -> Optional[list[str]]:
    """The directory components of a frame's filename, or None when it cannot name a file.

    Backslashes count as separators (Windows clients); empty and ``.`` components vanish.
    An anchored path (``/...``, ``~/...`` as clients shorten home directories, ``C:\\...``)
    is normalised lexically, as ``sys.path.insert(0, "..")`` in a notebook makes
    ``/home/u/proj/notebooks/../helpers/stats.py``; a ``..`` that climbs above its anchor,
    or any ``..`` of a relative path (relative to what?), is refused. So are names with NUL
    or line breaks and components starting with ``-`` (git would read them as options).
    """
    if not filename or any(char in filename for char in "\x00\r\n"):
        return None
    raw = filename.replace("\\", "/").split("/")
    anchor = 0 if raw[0] == "" else 1 if raw[0] == "~" or _DRIVE.fullmatch(raw[0]) else None
    parts: list[str] = []
    for part in raw:
        if part in ("", "."):
            continue
        if part == "..":
            if anchor is None or len(parts) <= anchor:
                return None
            parts.pop()
        elif part.startswith("-"):
            return None
        else:
            parts.append(part)
    return parts or None


def frame_path(filename: str) -> str:
    """The path a frame's filename names: a URL's path (a script of a page, mapped to the
    repository by suffix like any path), else the filename itself."""
    return url_path(filename) if _URL.match(filename) else filename


def _after_last(parts: list[str], dirs: Iterable[str]) -> Optional[list[str]]:
    """The components after the last directory named in ``dirs``, None when there is none."""
    names = set(dirs)
    for position in range(len(parts) - 2, -1, -1):
        if parts[position] in names:
            return parts[position + 1:]
    return None


class RepoIndex:
    """The repository's files, indexed so that a frame's path maps to a repository file in
    O(depth of the frame's path), whatever the size of the repository.

    Resolution policy (what :meth:`resolve` returns), the longest component-wise suffix wins:
    - a frame path under a runtime directory (``site-packages``) is package-relative: the
      repository file must end with ALL of it (``shop/cart.py`` matches ``src/shop/cart.py``);
    - otherwise the frame's leading directories are the deployment's (``/srv/app/``): the
      repository file sharing the longest suffix is taken when it is unambiguous: the file whose
      whole path matched, else the only file with that suffix. A match on the basename alone
      counts only when the frame gave no directory: ``json/decoder.py`` is not ``app/decoder.py``.
    - several equally good candidates (``a/x.py`` and ``b/x.py`` for a frame ``x.py``): None.
      Blaming the wrong file's author is worse than sending the error to the default contact.
    """

    def __init__(self, paths: frozenset[str], by_suffix: Mapping[str, Optional[str]]):
        self._paths = paths
        # suffix -> the only repository path ending with it, or None when several do. Only
        # suffixes up to the first unique one are kept: a longer one adds nothing, the rest of
        # the match is checked against that path. This keeps ~1-2 entries per file.
        self._by_suffix = by_suffix

    @classmethod
    def from_paths(cls, paths: Iterable[str]) -> RepoIndex:
        """Index the repository-relative paths of a commit's files."""
        by_basename: dict[str, list[list[str]]] = {}
        kept: set[str] = set()
        for path in paths:
            parts = path_components(path)
            if parts is not None and "/".join(parts) not in kept:
                kept.add("/".join(parts))
                by_basename.setdefault(parts[-1], []).append(parts)
        by_suffix: dict[str, Optional[str]] = {}
        # (paths sharing their last `length` components, length): split until each is unique
        pending = [(group, 1) for group in by_basename.values()]
        while pending:
            group, length = pending.pop()
            suffix = "/".join(group[0][-length:])
            if len(group) == 1:
                by_suffix[suffix] = "/".join(group[0])
                continue
            by_suffix[suffix] = None
            longer: dict[str, list[list[str]]] = {}
            for parts in group:
                if len(parts) > length:
                    longer.setdefault(parts[-length - 1], []).append(parts)
            pending.extend((members, length + 1) for members in longer.values())
        return cls(frozenset(kept), by_suffix)

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, path: object) -> bool:
        return path in self._paths

    def _longest_match(self, parts: list[str]) -> tuple[int, Optional[str]]:
        """The length of the longest suffix ``parts`` shares with a repository path, and the
        path when it is the only one sharing it or when it is that suffix exactly."""
        for length in range(1, len(parts) + 1):
            suffix = "/".join(parts[-length:])
            if suffix not in self._by_suffix:
                return self._exact(parts, length - 1)
            only = self._by_suffix[suffix]
            if only is not None:
                return _common_suffix_length(only.split("/"), parts), only
        return self._exact(parts, len(parts))

    def _exact(self, parts: list[str], length: int) -> tuple[int, Optional[str]]:
        suffix = "/".join(parts[len(parts) - length:])
        return length, suffix if length and suffix in self._paths else None

    def resolve(self, filename: str, runtime_dirs: Sequence[str]) -> Optional[str]:
        """The repository file a frame's filename refers to, or None when it is not in the
        repository (or ambiguous; see the class docstring)."""
        parts = path_components(filename)
        if parts is None:
            return None
        package_relative = _after_last(parts, runtime_dirs)
        if package_relative is not None:
            length, path = self._longest_match(package_relative)
            return path if length == len(package_relative) else None
        length, path = self._longest_match(parts)
        if path is not None and length == 1 and len(parts) > 1 and "/" in path:
            return None  # only the basename agrees, the directories differ
        return path


def _common_suffix_length(first: Sequence[str], second: Sequence[str]) -> int:
    length = 0
    while length < min(len(first), len(second)) and \
            first[-length - 1] == second[-length - 1]:
        length += 1
    return length


def rule_path(filename: str, repo_path: Optional[str], runtime_dirs: Sequence[str]) -> str:
    """The path that rule entries name for this frame: the repository path when in the
    repository, else the path after the last runtime directory (``requests/adapters.py``),
    else the filename with its separators normalised."""
    if repo_path is not None:
        return repo_path
    parts = path_components(filename)
    if parts is None:
        return filename.replace("\\", "/")
    package_relative = _after_last(parts, (*PACKAGE_DIRS, *runtime_dirs))
    if package_relative is not None:
        return "/".join(package_relative)
    absolute = filename.replace("\\", "/").startswith("/")
    return ("/" if absolute else "") + "/".join(parts)


def matches(entry: LineRule, rule_path: str, function_name: str, text: str) -> bool:
    """Whether a rule entry names this line: same file; function and fragment are wildcards
    when missing; a fragment matches when one of it and the folded line contains the other.
    An empty or one-character line never matches a fragment (it would match nearly anything).
    """
    if entry.filename != rule_path:
        return False
    if entry.function_name is not None and entry.function_name != function_name:
        return False
    fragment = fold_whitespace(entry.code_fragment or "")
    if not fragment:
        return True
    line = fold_whitespace(text)
    if len(line) <= 1:
        return False
    return fragment in line or line in fragment


def is_raise_line(text: str) -> bool:
    """Whether the source line is a ``raise`` statement (the fault is then the caller's)."""
    return _RAISE_LINE.match(text.strip()) is not None


def _exception_name(name: str) -> str:
    for prefix in BUILTIN_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _line_identity(frame: Frame) -> tuple[tuple[str, ...], str]:
    """The names a rule may give the frame's code, and its line as rules and keys see it:
    for a frame in a cell, the cell (or function) and the line's hash, never typed text."""
    if frame.cell is None:
        return (frame.function_name,), frame.text
    return tuple({cell_function(frame): None, frame.function_name: None}), cell_text(frame.cell)


def _first_match(entries: Iterable[RuleT], routed: RoutedFrame) -> Optional[RuleT]:
    names, text = _line_identity(routed.frame)
    for entry in entries:
        if any(matches(entry, routed.rule_path, name, text) for name in names):
            return entry
    return None


def _where(routed: RoutedFrame) -> str:
    frame = routed.frame
    if frame.cell is not None:
        return f"{cell_where(frame.cell, routed.rule_path)} in {frame.function_name}"
    return f"{routed.rule_path}:{frame.line_number} in {frame.function_name}"


def _blamable(routed: RoutedFrame, patterns: Sequence[re.Pattern[str]]) -> bool:
    if routed.repo_path is None or not routed.in_app:
        return False
    return not patterns or any(pattern.search(routed.repo_path) for pattern in patterns)


def _innermost_candidate(frames: Sequence[RoutedFrame], rules: Rules,
                         patterns: Sequence[re.Pattern[str]], notes: list[str],
                         below: Optional[int] = None) -> Optional[int]:
    """The index of the innermost frame of the repository (outside ``below``) that is not a
    building block; each building block passed over is noted."""
    for index in range(len(frames) if below is None else below, 0, -1):
        routed = frames[index - 1]
        if not _blamable(routed, patterns):
            continue
        block = _first_match(rules.building_blocks, routed)
        if block is None:
            return index - 1
        notes.append(f"skipped {_where(routed)}: building block ({block.source})")
    return None


def _past_raises(frames: Sequence[RoutedFrame], raising: int, rules: Rules,
                 patterns: Sequence[re.Pattern[str]], notes: list[str]) -> int:
    """From the raise statement at ``raising`` outwards, the first candidate that does not
    raise (the caller is to blame); the innermost raise when every candidate raises."""
    index = raising
    while True:
        notes.append(f"skipped {_where(frames[index])}: a raise statement, the caller is to blame")
        caller = _innermost_candidate(frames, rules, patterns, notes, below=index)
        if caller is None:
            notes.append(f"blamed {_where(frames[raising])}: every other candidate raises or "
                         "is a building block, so the innermost raise is blamed")
            return raising
        if not is_raise_line(frames[caller].frame.text):
            notes.append(f"blamed {_where(frames[caller])}: innermost line of the repository")
            return caller
        index = caller


def _find_blamed(exceptions: Sequence[RoutedException], rules: Rules,
                 settings: RoutingSettings) -> tuple[Optional[tuple[int, int]], list[str]]:
    """Which exception of the chain (0: the reported one) and which of its frames is blamed,
    and the lines explaining the choice.

    An exception's own line is its innermost candidate (a line of the repository, not a
    building block). When that line is not a ``raise``, it failed in its own right and is
    blamed. When it raises while handling a chained exception, the blame follows the chain
    to the line where the error began; an exception whose own line raises and that has no
    chained line to follow passes the blame to its caller, as a raise always does.
    """
    patterns = [re.compile(pattern) for pattern in settings.only_blame_patterns]
    notes: list[str] = []
    raising: Optional[tuple[int, int]] = None
    for position, exception in enumerate(exceptions):
        name = _exception_name(exception.exception_type)
        own = _innermost_candidate(exception.frames, rules, patterns, notes)
        if own is None:
            if position:
                notes.append(f"the chained {name} has no line of the repository")
            continue
        where = _where(exception.frames[own])
        if not is_raise_line(exception.frames[own].frame.text):
            if position:
                notes.append(f"blamed {where}: innermost line of the repository in the "
                             f"chained {name}, where the error began")
            elif len(exceptions) > 1:
                notes.append(f"blamed {where}: innermost line of the repository; it is not a "
                             f"raise, so it failed in its own right while handling the "
                             f"chained {_exception_name(exceptions[1].exception_type)}")
            else:
                notes.append(f"blamed {where}: innermost line of the repository")
            return (position, own), notes
        if position + 1 < len(exceptions):
            cause = _exception_name(exceptions[position + 1].exception_type)
            notes.append(f"{where} raises {name} while handling the chained {cause}: "
                         "the blame follows the chain")
        raising = (position, own)
    if raising is not None:
        position, own = raising
        return (position, _past_raises(exceptions[position].frames, own, rules, patterns,
                                       notes)), notes
    scope = " matching only_blame_filepaths_matching" if patterns else ""
    if notes and any(note.startswith("skipped") for note in notes):
        notes.append(f"unblamable: every line of the repository{scope} is a building block")
    else:
        notes.append(f"unblamable: no frame is a line of the repository{scope}")
    return None, notes


def _drop_reason(exceptions: Sequence[RoutedException], rules: Rules) -> Optional[str]:
    reported = exceptions[0].exception_type
    name = _exception_name(reported)
    for ignored in rules.ignored_exceptions:
        if _exception_name(ignored) == name:
            source = rules.ignored_exception_sources.get(ignored, "ignored_exceptions.yaml")
            return f"ignored exception: {reported} ({source})"
    for exception in exceptions:
        for routed in exception.frames:
            entry = _first_match(rules.third_party_whitelist, routed)
            if entry is not None:
                return f"third-party whitelist: {_where(routed)} ({entry.source})"
    return None


def _key(routed: RoutedFrame) -> ErrorKey:
    names, text = _line_identity(routed.frame)
    return ErrorKey(routed.repo_path or routed.rule_path, names[0], fold_whitespace(text))


def _route_frame(frame: Frame, index: RepoIndex, runtime_dirs: Sequence[str]) -> RoutedFrame:
    """Where one frame's line is: a frame in a cell of a notebook (``cell.notebook``) is a
    line of that notebook, in the repository when the notebook is one of its ``.ipynb``
    files; a script's URL is its path; any other frame is a line of its file."""
    cell = notebook_cell(frame)
    path = cell.notebook if cell is not None and cell.notebook else frame_path(frame.filename)
    repo_path = index.resolve(path, runtime_dirs)
    if cell is not None and repo_path is not None and not is_notebook_path(repo_path):
        repo_path = None  # a cell is never a line of a .py file, whatever the client says
    # A sender that says a frame is not the app's (a Sentry SDK's in_app) is believed.
    return RoutedFrame(frame, repo_path, rule_path(path, repo_path, runtime_dirs),
                       in_app=repo_path is not None and frame.in_app is not False)


def _routed_exception(exception: ExceptionLike, index: RepoIndex,
                      settings: RoutingSettings) -> RoutedException:
    return RoutedException(exception.exception_type, tuple(
        _route_frame(frame, index, settings.runtime_dirs) for frame in exception.traceback))


def route(report: Report, index: RepoIndex, rules: Rules, settings: RoutingSettings) -> Route:
    """Decide where a report goes: dropped (ignored exception or whitelisted line), or the
    frame to blame, the error's identity and the known error it is, with the reasons.

    The report's ``chained`` exceptions (its cause or the one it was raised while handling,
    and so on: the nearest first) are routed too: the blame may follow the chain.
    """
    exceptions = [_routed_exception(exception, index, settings)
                  for exception in (report, *report.chained)]
    routed, chain = exceptions[0].frames, tuple(exceptions[1:])
    dropped = _drop_reason(exceptions, rules)
    if dropped is not None:
        return Route(routed, dropped, None, _key(routed[-1]), None, (f"dropped: {dropped}",),
                     chain)
    blamed, explanation = _find_blamed(exceptions, rules, settings)
    # An unblamable error is known by its innermost frame, and so is matched against
    # known_errors by it: a known error in a library's code is how users silence those.
    key_frame = routed[-1] if blamed is None else exceptions[blamed[0]].frames[blamed[1]]
    known = _first_match(rules.known_errors, key_frame)
    if known is not None:
        explanation.append(f"known error ({known.source})")
    return Route(routed, None, None if blamed is None else blamed[1], _key(key_frame), known,
                 tuple(explanation), chain, 0 if blamed is None else blamed[0])


def _frame_inputs(frames: Sequence[Frame]) -> tuple:
    return tuple((frame.filename, frame.line_number, frame.function_name, frame.text,
                  frame.cell, frame.in_app) for frame in frames)


def route_inputs(report: Report) -> tuple:
    """Everything :func:`route` reads of a report, its frames' locals aside: two reports with
    equal inputs are routed alike (for one index, rules and settings), so a route can be
    reused for every repeat of an error. Keep it in step with :func:`route`."""
    return (report.exception_type, _frame_inputs(report.traceback),
            tuple((chained.exception_type, _frame_inputs(chained.traceback))
                  for chained in report.chained))
