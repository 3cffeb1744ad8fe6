"""One git repository on disk, used synchronously from worker threads.

Blame (with .mailmap and the ignore-revs file of the blamed revision), trees, blobs, clone
and fetch. Nothing a client sends reaches git's command line unchecked: a revision must be
hex, a path must be a file of the tree being blamed, and every path is written after ``--``.
GitPython runs the commands; every call has a timeout and runs in its own process group.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import weakref
from dataclasses import replace
from typing import Mapping, Optional, Union

# GitPython looks for git on PATH when imported; ours may live elsewhere (git_cli_path),
# and every command below names its executable itself, so that check must not be fatal.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import git  # noqa: E402

from flawless.server.atomic import write_atomically  # noqa: E402
from flawless.server.core.lru import Lru  # noqa: E402
from flawless.server.core.model import Blame, CommitInfo  # noqa: E402
from flawless.server.core.notebooks import CommittedCell, NotNotebook, parse_notebook  # noqa: E402
from flawless.server.core.redaction import redact, url_secrets  # noqa: E402
from flawless.server.core.text import fold_whitespace  # noqa: E402
from flawless.server.git.porcelain import (FIX_LOG_FORMAT, FULL_SHA, Tree,  # noqa: E402
                                           enclosing_block, listed_revisions, locate_line,
                                           parse_fix_log, parse_porcelain, parse_tree,
                                           split_lines)

IGNORE_REVS_FILE = ".git-blame-ignore-revs"
FETCHED_HEAD = "refs/flawless/head"
FETCHED_BRANCHES = "refs/flawless/heads/"
_REMOTE = "flawless-upstream"   # defined through the environment only; see Repository.fetch
_REQUESTED_REVISION = re.compile(r"[0-9a-fA-F]{4,40}")
# git blame's own thresholds (letters and digits a chunk needs to be followed; see -M, -C)
DEFAULT_MOVE_SCORE = 20
DEFAULT_COPY_SCORE = 40
# git's words for one bad argument (a line past the end, a path the revision lacks): these
# are the command's failure even when a path in the message holds a word listed below.
_ARGUMENT_PROBLEM = re.compile(
    r"has only \d+ lines?|no such path", re.IGNORECASE)
MAX_NOTEBOOK_BYTES = 32 * 2**20  # a larger notebook (outputs kept) is not read: its cells go
                                 # unblamed rather than cost the server's memory
# git's words for a repository that is broken as a whole (rather than for one bad line).
_REPOSITORY_PROBLEM = re.compile(
    r"not a git repository|unable to read|could not read|corrupt|bad object|invalid object"
    r"|missing (blob|tree|commit|object)|packfile|inflate|dubious ownership|failed to read",
    re.IGNORECASE)


class RepositoryUnavailable(Exception):
    """The repository is missing, broken or too slow: keep the report and try again later."""


class BlameFailed(Exception):
    """This one line cannot be blamed (not a file of the revision, past its end, ...)."""


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass  # it has ended already


def _require_sha(sha: str) -> None:
    if not isinstance(sha, str) or not FULL_SHA.fullmatch(sha):
        raise BlameFailed(f"{sha!r} is not a full commit sha")


class _CommandFailed(Exception):
    """A git command failed for a reason particular to its arguments."""


class Repository:
    """One git repository on disk, blamed with git's command line through GitPython.

    Thread-safe: it only uses ``Git.execute`` (one process per call, no shared state) and
    locked caches, so any number of worker threads may share one instance.
    """

    def __init__(self, repo_dir: str, git_cli_path: str = "git", timeout: float = 30.0,
                 repo_url: str = "", branch: str = "", network_timeout: float = 600.0,
                 detect_moves: bool = True):
        self.repo_dir = os.path.realpath(repo_dir)
        self.repo_url = repo_url
        self.branch = branch
        self.timeout = timeout
        self.detect_moves = detect_moves
        # A first clone of a big repository legitimately takes minutes.
        self.network_timeout = max(timeout, network_timeout)
        self._executable = git_cli_path
        self._git_cmd = git.Git(self.repo_dir)
        self._env = {
            # Never fall back to a repository above repo_dir when repo_dir itself is broken.
            "GIT_CEILING_DIRECTORIES": os.path.dirname(self.repo_dir),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
        }
        self._tip_refs = self._default_refs()
        self._trees: Lru[str, Tree] = Lru(16)
        self._lines: Lru[str, list[str]] = Lru(64)
        self._blamed_files: Lru[tuple[str, str], bool] = Lru(4096)
        self._whole_files: Lru[tuple[str, str], dict[int, Blame]] = Lru(32)
        self._ignore_files: Lru[str, str] = Lru(8)
        self._pickaxe: Lru[tuple[str, str], tuple[str, ...]] = Lru(4096)
        self._notebooks: Lru[str, Union[tuple[CommittedCell, ...], BlameFailed]] = Lru(16)
        self._processes: set[subprocess.Popen] = set()
        self._processes_lock = threading.Lock()
        self._closed = False
        self._scratch: Optional[str] = None
        self._scratch_lock = threading.Lock()

    def _default_refs(self) -> tuple[str, ...]:
        if self.repo_url:
            if self.branch:
                return FETCHED_BRANCHES + self.branch, "refs/heads/" + self.branch
            return FETCHED_HEAD, "HEAD"
        if self.branch:
            return "refs/heads/" + self.branch, "refs/remotes/origin/" + self.branch
        return ("HEAD",)

    # -- running git -----------------------------------------------------------------

    def _git(self, command: str, *args: str, config: tuple[str, ...] = (),
             env: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None) -> bytes:
        """Standard output of one git command in the repository.

        Raises RepositoryUnavailable when the repository (or git) is the problem and
        _CommandFailed when the command itself failed.
        """
        if self._closed:
            raise RepositoryUnavailable("flawless is stopping: no more git commands")
        if not os.path.isdir(self.repo_dir):
            raise RepositoryUnavailable(f"repository directory {self.repo_dir} does not exist")
        argv = [self._executable]
        for setting in config:
            argv += ["-c", setting]
        argv += [command, *args]
        limit = timeout or self.timeout
        try:
            status, out, err = self._run(argv, {**self._env, **(env or {})}, limit)
        except git.GitCommandNotFound:
            raise RepositoryUnavailable(
                f"the git executable {self._executable!r} cannot be run") from None
        if status is None:
            raise RepositoryUnavailable(
                f"git {command} did not finish within {limit:g} seconds in {self.repo_dir}")
        if status == 0:
            return out
        message = self.redact(err.decode("utf-8", "replace").strip())
        if self._closed:
            raise RepositoryUnavailable(f"git {command} was interrupted: flawless is stopping")
        if self._repository_problem(message, args):
            raise RepositoryUnavailable(f"git {command} in {self.repo_dir}: {message}")
        raise _CommandFailed(f"git {command} failed: {message or f'exit status {status}'}")

    def _repository_problem(self, message: str, args: tuple[str, ...]) -> bool:
        """Whether git's error message says the repository itself is broken.

        Only git's own words count: the paths and revisions the command was given (and the
        repository's directory) are taken out first, so that a file named ``corrupt.py``
        past whose end a line was asked is the failure of that one blame, not an outage.
        """
        words = message
        for argument in sorted({*args, self.repo_dir}, key=len, reverse=True):
            if len(argument) > 2:
                words = words.replace(argument, "<argument>")
        if _ARGUMENT_PROBLEM.search(words):
            return False
        return _REPOSITORY_PROBLEM.search(words) is not None

    def _run(self, argv: list[str], env: Mapping[str, str],
             limit: float) -> tuple[Optional[int], bytes, bytes]:
        """Exit status (None after a timeout), standard output and error of ``argv``.

        The command runs in its own process group so that a timeout or `close` also
        ends the helpers git starts (ssh, remote-https, pack-objects).
        """
        handle = self._git_cmd.execute(argv, as_process=True, env=env, start_new_session=True)
        process = handle.proc
        with self._processes_lock:
            self._processes.add(process)
        try:
            try:
                out, err = process.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                process.communicate()
                return None, b"", b""
            return process.returncode, out, err
        finally:
            with self._processes_lock:
                self._processes.discard(process)

    def redact(self, text: str) -> str:
        """``text`` with the credentials of repo_url (and of any URL) masked."""
        return redact(text, url_secrets(self.repo_url))

    def close(self) -> None:
        """End every git command under way and refuse new ones (all fail as unavailable)."""
        with self._processes_lock:
            self._closed = True
            running = list(self._processes)
        for process in running:
            _kill_group(process)

    # -- clone and fetch -------------------------------------------------------------

    def _has_repository(self) -> bool:
        try:
            self._git("rev-parse", "--git-dir")
        except (RepositoryUnavailable, _CommandFailed):
            return False
        return True

    def ensure_clone(self) -> None:
        """Clone repo_url into repo_dir when it is set and repo_dir holds no repository."""
        if self.repo_url and not self._has_repository():
            self.fetch()

    def fetch(self) -> None:
        """Bring repo_dir up to date with repo_url, cloning it first when missing.

        The remote's branches land in ``refs/flawless/heads/`` and its HEAD in
        ``refs/flawless/head``, so a working copy in repo_dir is never touched. The URL
        travels in the environment, not on the command line, so its credentials show up
        neither in process listings nor in logs.
        """
        if not self.repo_url:
            return
        if not self._has_repository():
            self._create_empty()
        remote = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"remote.{_REMOTE}.url",
                  "GIT_CONFIG_VALUE_0": self.repo_url}
        try:
            self._git("fetch", "--quiet", "--prune", "--no-tags", _REMOTE,
                      f"+HEAD:{FETCHED_HEAD}", f"+refs/heads/*:{FETCHED_BRANCHES}*",
                      env=remote, timeout=self.network_timeout)
        except _CommandFailed as failure:
            raise RepositoryUnavailable(
                f"cannot fetch {self.redact(self.repo_url)}: {failure}") from None

    def write_commit_graph(self) -> None:
        """Write git's commit-graph with changed-path filters (a cache git itself writes in
        its maintenance): blaming one line of a long history walks only the commits that
        changed the file, three to four times faster (bench/README.md). Incremental: a new
        layer for the commits added since the last one."""
        try:
            self._git("commit-graph", "write", "--reachable", "--changed-paths", "--split",
                      timeout=self.network_timeout)
        except _CommandFailed as failure:
            raise RepositoryUnavailable(f"cannot write the commit-graph: {failure}") from None

    def _create_empty(self) -> None:
        if os.path.isdir(self.repo_dir) and os.listdir(self.repo_dir):
            raise RepositoryUnavailable(
                f"{self.repo_dir} is neither a git repository nor empty; "
                f"not cloning {self.redact(self.repo_url)} into it")
        os.makedirs(self.repo_dir, exist_ok=True)
        try:
            self._git("init", "--quiet", "--bare")
        except _CommandFailed as failure:
            raise RepositoryUnavailable(str(failure)) from None

    # -- revisions and trees ---------------------------------------------------------

    def _commit_sha(self, name: str) -> Optional[str]:
        try:
            out = self._git("rev-parse", "--verify", "--quiet", name + "^{commit}")
        except _CommandFailed:
            return None
        sha = out.decode("ascii", "replace").strip()
        return sha if FULL_SHA.fullmatch(sha) else None

    def resolve_revision(self, revision: Optional[str]) -> tuple[str, bool]:
        """The full sha to blame at, and whether it is the requested ``revision``.

        Only hex shas of 4 to 40 digits are looked up; anything else (a ref name, an
        option) counts as unknown. Unknown or no revision: HEAD, or the configured branch.
        """
        if isinstance(revision, str) and _REQUESTED_REVISION.fullmatch(revision):
            sha = self._commit_sha(revision.lower())
            if sha is not None:
                return sha, True
        for ref in self._tip_refs:
            sha = self._commit_sha(ref)
            if sha is not None:
                return sha, False
        raise RepositoryUnavailable(
            f"{' nor '.join(self._tip_refs)} names a commit in {self.repo_dir}")

    def commit_info(self, revision: str) -> Optional[CommitInfo]:
        """The commit a hex ``revision`` (4 to 40 digits) names and its author, or None
        when the repository has no such commit."""
        if not (isinstance(revision, str) and _REQUESTED_REVISION.fullmatch(revision)):
            return None
        sha = self._commit_sha(revision.lower())
        if sha is None:
            return None
        try:
            out = self._git("log", "-1", "-z", f"--format={FIX_LOG_FORMAT}", sha, "--",
                            config=self._mailmap())
        except _CommandFailed as failure:
            raise RepositoryUnavailable(str(failure)) from None
        found = parse_fix_log(out)
        return found[0][0] if found else None

    def contains(self, revision: str, commit: str) -> Optional[bool]:
        """Whether commit ``revision`` has ``commit`` in its history (or is it); None when
        the repository lacks ``commit``."""
        _require_sha(revision)
        _require_sha(commit)
        if self._commit_sha(commit) is None:
            return None
        try:
            base = self._git("merge-base", commit, revision)
        except _CommandFailed:
            return False      # no common history at all
        return base.decode("ascii", "replace").strip() == commit

    def fix_log(self, tip: str, after: Optional[str] = None,
                since: Optional[float] = None) -> list[tuple[CommitInfo, tuple[str, ...]]]:
        """The commits reachable from ``tip`` (and not from ``after``, or committed since
        ``since`` seconds after the epoch) whose message has a ``Fixes:`` line, with the
        values of their ``Fixes:`` trailers; newest first."""
        _require_sha(tip)
        limits = [tip]
        if after is not None:
            _require_sha(after)
            limits.append("^" + after)
        if since is not None:
            limits.insert(0, f"--since={int(since)}")
        try:
            out = self._git("log", "-z", "-i", "--grep=^fixes:", f"--format={FIX_LOG_FORMAT}",
                            *limits, "--", config=self._mailmap())
        except _CommandFailed as failure:
            raise RepositoryUnavailable(str(failure)) from None
        return parse_fix_log(out)

    def _mailmap(self) -> tuple[str, ...]:
        # The mailmap of the branch tip: it knows people's current addresses, also for
        # commits older than the mailmap.
        return (f"mailmap.blob={self._tip_refs[0]}:.mailmap",)

    def _tree(self, sha: str) -> Tree:
        _require_sha(sha)
        tree = self._trees.get(sha)
        if tree is None:
            try:
                tree = parse_tree(self._git("ls-tree", "-r", "-z", "--full-tree", sha))
            except _CommandFailed as failure:
                raise RepositoryUnavailable(str(failure)) from None
            self._trees.put(sha, tree)
        return tree

    def paths_at(self, sha: str) -> frozenset[str]:
        """Every file path (repository-relative) of commit ``sha``."""
        return self._tree(sha).paths

    def _cat_file(self, *args: str) -> bytes:
        try:
            return self._git("cat-file", *args)
        except _CommandFailed as failure:
            raise RepositoryUnavailable(str(failure)) from None

    def _blob_lines(self, blob: str) -> list[str]:
        lines = self._lines.get(blob)
        if lines is None:
            lines = split_lines(self._cat_file("blob", blob).decode("utf-8", "replace"))
            self._lines.put(blob, lines)
        return lines

    def _blob_of(self, tree: Tree, path: str, sha: str) -> str:
        blob = tree.blobs.get(path) if isinstance(path, str) else None
        if blob is None:
            raise BlameFailed(f"{path!r} is not a file of the repository at {sha[:12]}")
        return blob

    def notebook_at(self, path: str, sha: str) -> tuple[CommittedCell, ...]:
        """The cells of the notebook ``path`` at commit ``sha`` (read once per content).

        Raises BlameFailed when it is no file of the commit, too large or not a notebook.
        """
        _require_sha(sha)
        blob = self._blob_of(self._tree(sha), path, sha)
        cells = self._notebooks.get(blob)
        if cells is None:
            cells = self._read_notebook(path, blob)
            self._notebooks.put(blob, cells)
        if isinstance(cells, BlameFailed):
            raise cells
        return cells

    def _read_notebook(self, path: str, blob: str
                       ) -> Union[tuple[CommittedCell, ...], BlameFailed]:
        size = int(self._cat_file("-s", blob).strip() or 0)
        if size > MAX_NOTEBOOK_BYTES:
            return BlameFailed(f"{path} has {size} bytes, more than the {MAX_NOTEBOOK_BYTES} "
                               "a notebook may have to be read")
        try:
            return parse_notebook(self._cat_file("blob", blob).decode("utf-8", "replace"))
        except NotNotebook as problem:
            return BlameFailed(f"{path} is not a notebook flawless can read: {problem}")

    def _ignore_revs_file(self, tree: Tree) -> Optional[str]:
        """A file listing the commits to skip, from the tree's ignore-revs file.

        Only commits present in the repository are kept: git refuses to blame at all when
        the list names an unknown one.
        """
        blob = tree.blobs.get(IGNORE_REVS_FILE)
        if blob is None:
            return None
        known = self._ignore_files.get(blob)
        if known is not None:
            return known or None
        listed = listed_revisions("\n".join(self._blob_lines(blob)))
        present = b""
        if listed:
            try:
                present = self._git("rev-list", "--no-walk", "--ignore-missing", *listed)
            except _CommandFailed as failure:
                raise RepositoryUnavailable(str(failure)) from None
        path = ""
        if present.strip():
            path = os.path.join(self._scratch_dir(), blob)
            # Another thread may be reading it with git right now: replace, never truncate.
            write_atomically(path, present)
        self._ignore_files.put(blob, path)
        return path or None

    def _scratch_dir(self) -> str:
        with self._scratch_lock:
            if self._scratch is None:
                self._scratch = tempfile.mkdtemp(prefix="flawless-blame-")
                weakref.finalize(self, shutil.rmtree, self._scratch, True)
            return self._scratch

    # -- blame -----------------------------------------------------------------------

    def blame_line(self, path: str, line_number: int, sha: str, expected_text: str = "",
                   function_name: str = "") -> Blame:
        """Who last touched line ``line_number`` of ``path`` at commit ``sha``.

        With ``expected_text``, a stale line number is corrected to the nearest line within
        MOVED_CODE_WINDOW that has that text; without a match the given line is blamed.
        When the commit plain blame names moved the line (see :meth:`_follow_move`), the
        block around it (the function ``function_name``) is blamed again with git's move
        and copy detection, and the explanation says so.
        """
        _require_sha(sha)
        if isinstance(line_number, bool) or not isinstance(line_number, int) or line_number < 1:
            raise BlameFailed(f"line number {line_number!r} is not a positive integer")
        tree = self._tree(sha)
        blob = self._blob_of(tree, path, sha)
        target = line_number
        if fold_whitespace(expected_text or ""):
            target = locate_line(self._blob_lines(blob), line_number, expected_text) \
                or line_number
        # A one-line blame stops as soon as the line is explained: cheap for recent code.
        # A second line of the same file blames the whole file (about the price of one
        # old line), so any further line of it costs nothing.
        file_key = (sha, path)
        whole = self._whole_files.get(file_key)
        if whole is None and self._blamed_files.get(file_key):
            whole = self._blame(tree, sha, path, None)
            self._whole_files.put(file_key, whole)
        self._blamed_files.put(file_key, True)
        blames = whole if whole is not None else self._blame(tree, sha, path, (target, target))
        if target not in blames:
            raise BlameFailed(f"{path} has no line {target} at {sha[:12]}")
        if not self.detect_moves:
            return blames[target]
        return self._follow_move(tree, sha, path, blob, blames[target], function_name)

    def _follow_move(self, tree: Tree, sha: str, path: str, blob: str, plain: Blame,
                     function_name: str) -> Blame:
        """``plain``, or when its commit moved the line, the blame of its origin.

        A commit moved the line when it also changed how often the line's text occurs in
        another file (a function moved there, a file renamed with a shim left behind) or
        left the count in this file unchanged (moved within it): ``git diff-tree -S`` says,
        at the price of one small git call per commit and text. Only then is the block
        around the line blamed again, with ``-C`` (``-M`` within a file): those cost more,
        and git follows no single short line anyway.
        """
        detection = self._moved_from(plain)
        if detection is None:
            return plain
        options, origin = detection
        start, end = enclosing_block(self._blob_lines(blob), plain.line_number, function_name)
        traced = self._blame(tree, sha, path, (start, end), options).get(plain.line_number)
        what = f"lines {start}-{end}" + (f" ({function_name})" if function_name else "")
        plainly = (f"plain git blame names {plain.commit_sha[:12]} by {plain.author_name} "
                   f"({plain.commit_summary}), which {origin}; blamed {what} again with "
                   f"git blame {' '.join(options)}")
        if traced is None or traced.commit_sha == plain.commit_sha:
            return replace(plain, explanation=(plainly + ": no older origin, the commit stays "
                                               "blamed",))
        moved_from = "" if traced.original_path == path else f" in {traced.original_path}"
        return replace(traced, explanation=(
            f"{plainly}: the line was written{moved_from} in {traced.commit_sha[:12]} by "
            f"{traced.author_name} ({traced.commit_summary})",))

    def _moved_from(self, plain: Blame) -> Optional[tuple[tuple[str, ...], str]]:
        """(git blame options, what the commit did) when ``plain``'s commit moved the line.

        git follows a moved chunk only when it holds enough letters and digits (20 for a
        move within a file, 40 from another file): the options lower that to what the line
        alone holds, as the line's text is known to have moved in this very commit.
        """
        needle = plain.line_text.strip()
        if len(needle) < 2 or "\x00" in needle or "\ufffd" in needle:
            return None
        key = (plain.commit_sha, needle)
        changed = self._pickaxe.get(key)
        if changed is None:
            try:
                out = self._git("diff-tree", "-r", "--root", "--no-commit-id", "--no-renames",
                                "--name-only", "-z", "-S" + needle, plain.commit_sha)
            except _CommandFailed as failure:
                raise RepositoryUnavailable(str(failure)) from None
            changed = tuple(os.fsdecode(name) for name in out.split(b"\0") if name)
            self._pickaxe.put(key, changed)
        others = [name for name in changed if name != plain.original_path]
        score = sum(char.isalnum() for char in needle)
        move = f"-M{min(score, DEFAULT_MOVE_SCORE)}"
        if others:
            return (move, f"-C{min(score, DEFAULT_COPY_SCORE)}"), \
                f"also changed that line's text in {others[0]}"
        if plain.original_path not in changed:
            return (move,), f"moved it within {plain.original_path}"
        return None

    def _blame(self, tree: Tree, sha: str, path: str, lines: Optional[tuple[int, int]],
               detection: tuple[str, ...] = ()) -> dict[int, Blame]:
        """Blames of lines ``(first, last)`` of ``path``, or of all its lines when None."""
        # The empty --ignore-revs-file drops what a blame.ignoreRevsFile setting listed:
        # the ignore-revs file of the blamed revision alone decides.
        options = ["--porcelain", "--ignore-revs-file", "", *detection]
        ignore_file = self._ignore_revs_file(tree)
        if ignore_file:
            options += ["--ignore-revs-file", ignore_file]
        if lines is not None:
            options += ["-L", f"{lines[0]},{lines[1]}"]
        try:
            output = self._git("blame", *options, sha, "--", path, config=self._mailmap())
        except _CommandFailed as failure:
            where = path if lines is None else f"{path}:{lines[0]}"
            raise BlameFailed(f"{where} at {sha[:12]}: {failure}") from None
        return parse_porcelain(output, path, sha)
