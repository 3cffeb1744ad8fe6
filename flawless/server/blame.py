"""GitPython blame: bounded concurrency, cache, .mailmap, ignore-revs, clone and fetch.

`Repository` does the git work synchronously (it runs in worker threads); `BlameService`
is its Twisted shell: a bounded thread pool, a result cache answered on the reactor thread,
and the periodic fetch. Nothing a client sends reaches git's command line unchecked: a
revision must be hex, a path must be a file of the tree being blamed, and every path is
written after ``--``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Generic, Hashable, Mapping, Optional, TypeVar, Union

# GitPython looks for git on PATH when imported; ours may live elsewhere (git_cli_path),
# and every command below names its executable itself, so that check must not be fatal.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import git  # noqa: E402
from twisted.internet import defer, threads  # noqa: E402
from twisted.internet.task import LoopingCall  # noqa: E402
from twisted.logger import Logger  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from twisted.python.threadpool import ThreadPool  # noqa: E402

log = Logger()

MOVED_CODE_WINDOW = 50          # lines searched either side for a frame's text
TIP_TRUSTED_SECONDS = 2.0       # how long a lookup of HEAD (or the branch) is reused
IGNORE_REVS_FILE = ".git-blame-ignore-revs"
FETCHED_HEAD = "refs/flawless/head"
FETCHED_BRANCHES = "refs/flawless/heads/"
_REMOTE = "flawless-upstream"   # defined through the environment only; see Repository.fetch
_REQUESTED_REVISION = re.compile(r"[0-9a-fA-F]{4,40}")
_FULL_SHA = re.compile(r"[0-9a-f]{40}")
_PORCELAIN_HEADER = re.compile(rb"([0-9a-f]{40}) \d+ (\d+)(?: \d+)?")
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
# git's words for a repository that is broken as a whole (rather than for one bad line).
_REPOSITORY_PROBLEM = re.compile(
    r"not a git repository|unable to read|could not read|corrupt|bad object|invalid object"
    r"|missing (blob|tree|commit|object)|packfile|inflate|dubious ownership|failed to read",
    re.IGNORECASE)


class RepositoryUnavailable(Exception):
    """The repository is missing, broken or too slow: keep the report and try again later."""


class BlameFailed(Exception):
    """This one line cannot be blamed (not a file of the revision, past its end, ...)."""


@dataclass(frozen=True)
class Blame:
    """Who last touched one line, at which commit."""

    path: str                 # repository-relative
    line_number: int          # line number in the revision blamed
    author_name: str
    author_email: str         # after .mailmap
    commit_sha: str
    commit_summary: str
    commit_timestamp: float   # author date, seconds since epoch
    revision: str             # sha of the revision the blame ran at
    at_requested_revision: bool  # False when the report's revision was unknown and HEAD was used
    line_text: str = ""       # the blamed line as the repository has it


# -- pure helpers ------------------------------------------------------------------------

def redact(text: str, url: str = "") -> str:
    """``text`` with the credentials of any URL removed, and those of ``url`` wherever they
    appear (long enough ones only: a user name like ``git`` is also an ordinary word)."""
    userinfo = _USERINFO.match(url)
    if userinfo:
        credentials = url[len(userinfo.group(1)):userinfo.end() - 1]
        for secret in (credentials, credentials.partition(":")[2]):
            if len(secret) >= 8:
                text = text.replace(secret, "***")
    return _USERINFO.sub(r"\1***@", text)


def fold_whitespace(text: str) -> str:
    """``text`` with runs of whitespace folded to one space and the ends stripped."""
    return " ".join(text.split())


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
        if _FULL_SHA.fullmatch(word):
            shas.append(word)
    return shas


def _parse_tree(output: bytes) -> "_Tree":
    blobs = {}
    for entry in output.split(b"\0"):
        meta, _, name = entry.partition(b"\t")
        parts = meta.split(b" ")
        if len(parts) == 3 and parts[1] == b"blob":
            blobs[os.fsdecode(name)] = parts[2].decode("ascii")
    return _Tree(paths=frozenset(blobs), blobs=blobs)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass  # it has ended already


def _require_sha(sha: str) -> None:
    if not isinstance(sha, str) or not _FULL_SHA.fullmatch(sha):
        raise BlameFailed(f"{sha!r} is not a full commit sha")


# -- the synchronous core ----------------------------------------------------------------

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A bounded mapping that forgets its least recently used entry; safe across threads."""

    def __init__(self, size: int):
        self._size = max(1, size)
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> Optional[V]:
        """The value of ``key``, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` under ``key``."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()


@dataclass(frozen=True)
class _Tree:
    """The files of one commit: repository-relative path -> blob sha."""

    paths: frozenset[str]
    blobs: Mapping[str, str]


class _CommandFailed(Exception):
    """A git command failed for a reason particular to its arguments."""


class Repository:
    """One git repository on disk, blamed with git's command line through GitPython.

    Thread-safe: it only uses ``Git.execute`` (one process per call, no shared state) and
    locked caches, so any number of worker threads may share one instance.
    """

    def __init__(self, repo_dir: str, git_cli_path: str = "git", timeout: float = 30.0,
                 repo_url: str = "", branch: str = "", network_timeout: float = 600.0):
        self.repo_dir = os.path.realpath(repo_dir)
        self.repo_url = repo_url
        self.branch = branch
        self.timeout = timeout
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
        self._trees: _Lru[str, _Tree] = _Lru(16)
        self._lines: _Lru[str, list[str]] = _Lru(64)
        self._blamed_files: _Lru[tuple[str, str], bool] = _Lru(4096)
        self._whole_files: _Lru[tuple[str, str], dict[int, Blame]] = _Lru(32)
        self._ignore_files: _Lru[str, str] = _Lru(8)
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
        message = redact(err.decode("utf-8", "replace").strip(), self.repo_url)
        if self._closed:
            raise RepositoryUnavailable(f"git {command} was interrupted: flawless is stopping")
        if _REPOSITORY_PROBLEM.search(message):
            raise RepositoryUnavailable(f"git {command} in {self.repo_dir}: {message}")
        raise _CommandFailed(f"git {command} failed: {message or f'exit status {status}'}")

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
                f"cannot fetch {redact(self.repo_url, self.repo_url)}: {failure}") from None

    def _create_empty(self) -> None:
        if os.path.isdir(self.repo_dir) and os.listdir(self.repo_dir):
            raise RepositoryUnavailable(
                f"{self.repo_dir} is neither a git repository nor empty; "
                f"not cloning {redact(self.repo_url, self.repo_url)} into it")
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
        return sha if _FULL_SHA.fullmatch(sha) else None

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

    def _tree(self, sha: str) -> _Tree:
        _require_sha(sha)
        tree = self._trees.get(sha)
        if tree is None:
            try:
                tree = _parse_tree(self._git("ls-tree", "-r", "-z", "--full-tree", sha))
            except _CommandFailed as failure:
                raise RepositoryUnavailable(str(failure)) from None
            self._trees.put(sha, tree)
        return tree

    def paths_at(self, sha: str) -> frozenset[str]:
        """Every file path (repository-relative) of commit ``sha``."""
        return self._tree(sha).paths

    def _blob_lines(self, blob: str) -> list[str]:
        lines = self._lines.get(blob)
        if lines is None:
            try:
                text = self._git("cat-file", "blob", blob).decode("utf-8", "replace")
            except _CommandFailed as failure:
                raise RepositoryUnavailable(str(failure)) from None
            lines = split_lines(text)
            self._lines.put(blob, lines)
        return lines

    def _ignore_revs_file(self, tree: _Tree) -> Optional[str]:
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
            with open(path, "wb") as handle:
                handle.write(present)
        self._ignore_files.put(blob, path)
        return path or None

    def _scratch_dir(self) -> str:
        with self._scratch_lock:
            if self._scratch is None:
                self._scratch = tempfile.mkdtemp(prefix="flawless-blame-")
                weakref.finalize(self, shutil.rmtree, self._scratch, True)
            return self._scratch

    # -- blame -----------------------------------------------------------------------

    def blame_line(self, path: str, line_number: int, sha: str,
                   expected_text: str = "") -> Blame:
        """Who last touched line ``line_number`` of ``path`` at commit ``sha``.

        With ``expected_text``, a stale line number is corrected to the nearest line within
        MOVED_CODE_WINDOW that has that text; without a match the given line is blamed.
        """
        _require_sha(sha)
        if isinstance(line_number, bool) or not isinstance(line_number, int) or line_number < 1:
            raise BlameFailed(f"line number {line_number!r} is not a positive integer")
        tree = self._tree(sha)
        blob = tree.blobs.get(path) if isinstance(path, str) else None
        if blob is None:
            raise BlameFailed(f"{path!r} is not a file of the repository at {sha[:12]}")
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
        blames = whole if whole is not None else self._blame(tree, sha, path, target)
        if target not in blames:
            raise BlameFailed(f"{path} has no line {target} at {sha[:12]}")
        return blames[target]

    def _blame(self, tree: _Tree, sha: str, path: str, line: Optional[int]) -> dict[int, Blame]:
        """Blames of one line of ``path``, or of all its lines when ``line`` is None."""
        # The empty --ignore-revs-file drops what a blame.ignoreRevsFile setting listed:
        # the ignore-revs file of the blamed revision alone decides.
        options = ["--porcelain", "--ignore-revs-file", ""]
        ignore_file = self._ignore_revs_file(tree)
        if ignore_file:
            options += ["--ignore-revs-file", ignore_file]
        if line is not None:
            options += ["-L", f"{line},{line}"]
        # The mailmap of the branch tip: it knows people's current addresses, also for
        # commits older than the mailmap.
        config = (f"mailmap.blob={self._tip_refs[0]}:.mailmap",)
        try:
            output = self._git("blame", *options, sha, "--", path, config=config)
        except _CommandFailed as failure:
            where = path if line is None else f"{path}:{line}"
            raise BlameFailed(f"{where} at {sha[:12]}: {failure}") from None
        return parse_porcelain(output, path, sha)


# -- the Twisted shell -------------------------------------------------------------------

_Key = tuple[str, str, int, str]


class BlameService:
    """Blames lines in a bounded thread pool, caching results and coalescing repeats.

    A cached answer fires at once on the reactor thread; identical requests in flight share
    one git call; excess work waits in the pool's queue.
    """

    def __init__(self, repository: Repository, max_concurrent: int, cache_size: int = 10000,
                 reactor: Any = None):
        if reactor is None:
            from twisted.internet import reactor  # type: ignore[no-redef]
        self.repository = repository
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=max_concurrent, name="flawless-blame")
        # A fetch may take minutes: its own thread keeps every blame slot free meanwhile.
        self._fetch_pool = ThreadPool(minthreads=0, maxthreads=1, name="flawless-fetch")
        self._results: _Lru[_Key, Union[Blame, BlameFailed]] = _Lru(cache_size)
        self._resolved: _Lru[str, str] = _Lru(1024)
        # Revisions that fell back to the tip: (when looked up, tip sha), briefly trusted.
        self._fallbacks: _Lru[Optional[str], tuple[float, str]] = _Lru(1024)
        self._pending: dict[_Key, list[defer.Deferred]] = {}
        self._fetch_loop: Optional[LoopingCall] = None
        self.last_fetch: Optional[float] = None
        self._fetch_error: Optional[str] = None
        self._access_error: Optional[str] = None

    @property
    def last_error(self) -> Optional[str]:
        """The current repository problem for the health page: a failed fetch, or else the
        failure of the latest git call; None when all is well."""
        return self._fetch_error or self._access_error

    def start(self) -> None:
        """Start the worker threads (created on demand, up to max_concurrent)."""
        self._pool.start()
        self._fetch_pool.start()

    def stop(self) -> None:
        """Stop fetching, end the git commands under way (their callers see the repository
        unavailable, so reports stay in the inbox) and join the worker threads."""
        if self._fetch_loop is not None and self._fetch_loop.running:
            self._fetch_loop.stop()
        self.repository.close()
        self._pool.stop()
        self._fetch_pool.stop()

    def _in_pool(self, function: Callable[..., Any], *args: Any) -> defer.Deferred:
        return threads.deferToThreadPool(self._reactor, self._pool, function, *args)

    def _note(self, outcome: Any) -> Any:
        """Keep the latest repository problem for the health page; pass ``outcome`` on."""
        if not isinstance(outcome, Failure):
            self._access_error = None
        elif outcome.check(RepositoryUnavailable):
            self._access_error = outcome.getErrorMessage()
        return outcome

    def resolve(self, revision: Optional[str]) -> defer.Deferred:
        """Deferred (sha, at_requested_revision): see `Repository.resolve_revision`."""
        known = self._resolved.get(revision) if revision else None
        if known is not None:
            return defer.succeed((known, True))
        fallback = self._fallbacks.get(revision)
        if fallback is not None and time.monotonic() - fallback[0] < TIP_TRUSTED_SECONDS:
            return defer.succeed((fallback[1], False))
        resolving = self._in_pool(self.repository.resolve_revision, revision)
        resolving.addBoth(self._note)
        return resolving.addCallback(self._remember, revision)

    def _remember(self, resolved: tuple[str, bool], revision: Optional[str]) -> tuple[str, bool]:
        sha, exact = resolved
        if exact and revision:
            self._resolved.put(revision, sha)  # a sha names the same commit forever
        else:
            # HEAD moves (a deploy, a fetch): its answer is trusted for a moment only, so a
            # burst of reports without a known revision costs one git call, not one each.
            self._fallbacks.put(revision, (time.monotonic(), sha))
        return resolved

    def paths_at(self, sha: str) -> defer.Deferred:
        """Deferred frozenset of the file paths of commit ``sha``."""
        return self._in_pool(self.repository.paths_at, sha).addBoth(self._note)

    def blame(self, path: str, line_number: int, revision: Optional[str],
              expected_text: str = "") -> defer.Deferred:
        """Deferred `Blame` of one line at the report's ``revision`` (HEAD when unknown).

        Fails with BlameFailed for a line that cannot be blamed and RepositoryUnavailable
        when the repository cannot be used right now.
        """
        blaming = self.resolve(revision)
        return blaming.addCallback(self._blame_at, path, line_number, expected_text)

    def _blame_at(self, resolved: tuple[str, bool], path: str, line_number: int,
                  expected_text: str) -> Any:
        sha, exact = resolved
        key = (sha, path, line_number, expected_text)
        cached = self._results.get(key)
        if isinstance(cached, BlameFailed):
            return defer.fail(cached)
        if cached is not None:
            return replace(cached, at_requested_revision=exact)
        waiters = self._pending.get(key)
        if waiters is None:
            waiters = self._pending[key] = []
            running = self._in_pool(self.repository.blame_line, path, line_number, sha,
                                    expected_text)
            running.addBoth(self._note).addBoth(self._settle, key)
        waiter: defer.Deferred = defer.Deferred()
        waiters.append(waiter)
        return waiter.addCallback(lambda blame: replace(blame, at_requested_revision=exact))

    def _settle(self, outcome: Any, key: _Key) -> None:
        waiters = self._pending.pop(key)
        if isinstance(outcome, Failure):
            if outcome.check(BlameFailed):
                self._results.put(key, outcome.value)
            for waiter in waiters:
                waiter.errback(outcome)
        else:
            self._results.put(key, outcome)
            for waiter in waiters:
                waiter.callback(outcome)

    def fetch_now(self) -> defer.Deferred:
        """Fetch repo_url once (cloning when needed); never fails, records the outcome."""
        fetching = threads.deferToThreadPool(self._reactor, self._fetch_pool,
                                             self.repository.fetch)
        return fetching.addCallbacks(self._fetched, self._fetch_failed)

    def _fetched(self, _: None) -> None:
        self._fallbacks.clear()
        self.last_fetch = self._reactor.seconds()
        self._fetch_error = None

    def _fetch_failed(self, failure: Failure) -> None:
        message = redact(failure.getErrorMessage(), self.repository.repo_url)
        self._fetch_error = f"fetch failed: {message}"
        if failure.check(RepositoryUnavailable):
            log.warn("fetching the repository failed: {reason}", reason=message)
        else:
            log.error("fetching the repository failed unexpectedly: {reason}", reason=message)

    def fetch_periodically(self, interval: float) -> None:
        """Fetch repo_url now and every ``interval`` seconds (nothing when it is unset)."""
        if not self.repository.repo_url or self._fetch_loop is not None:
            return
        self._fetch_loop = LoopingCall(self.fetch_now)
        self._fetch_loop.clock = self._reactor
        self._fetch_loop.start(interval, now=True)
