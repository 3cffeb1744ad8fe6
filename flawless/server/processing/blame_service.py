"""The repository for the processor: blames, file lists and fetches off the reactor thread.

Answers are cached (a cached one fires at once on the reactor thread), identical requests in
flight share one git call, and git runs in the bounded ``git`` pool; a fetch runs in a pool
of its own so that a slow one leaves every blame slot free.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Optional, Union

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from flawless.report import NotebookCell
from flawless.server.coalesce import Coalescer
from flawless.server.core.lru import Lru
from flawless.server.core.model import Blame, FixCheck
from flawless.server.core.routing import RepoIndex
from flawless.server.git.notebooks import blame_cell
from flawless.server.git.repository import BlameFailed, Repository, RepositoryUnavailable
from flawless.server.threads import Runner

log = Logger()

TIP_TRUSTED_SECONDS = 2.0       # how long a lookup of HEAD (or the branch) is reused
MAX_CACHED_INDEXES = 16

_Key = tuple[Any, ...]   # (sha, path, what is blamed in it)


class BlameService(service.Service):
    """Blames lines, resolves revisions and indexes trees of one repository."""

    name = "blame"

    def __init__(self, repository: Repository, git: Runner, fetcher: Runner, clock: Any,
                 cache_size: int = 10000, fetch_interval: Optional[float] = None,
                 commit_graph: bool = False):
        self.repository = repository
        self._git = git
        self._fetcher = fetcher
        self._clock = clock
        self._fetch_interval = fetch_interval
        self._commit_graph = commit_graph
        self._results: Lru[_Key, Union[Blame, BlameFailed]] = Lru(cache_size)
        self._resolved: Lru[str, str] = Lru(1024)
        # Revisions that fell back to the tip: (when looked up, tip sha), briefly trusted.
        self._fallbacks: Lru[Optional[str], tuple[float, str]] = Lru(1024)
        self._indexes: Lru[str, RepoIndex] = Lru(MAX_CACHED_INDEXES)
        self._containment: Lru[tuple[str, str], bool] = Lru(cache_size)
        self._blaming = Coalescer()
        self._indexing = Coalescer()
        self._fetch_loop: Optional[task.LoopingCall] = None
        self.last_fetch: Optional[float] = None
        self._fetch_error: Optional[str] = None
        self._access_error: Optional[str] = None

    @property
    def last_error(self) -> Optional[str]:
        """The current repository problem for the health page: a failed fetch, or else the
        failure of the latest git call; None when all is well."""
        return self._fetch_error or self._access_error

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Fetch repo_url now and periodically, when it is set; else index the history of
        repo_dir for fast blames (see Repository.write_commit_graph)."""
        super().startService()
        if self.repository.repo_url and self._fetch_interval:
            self._fetch_loop = task.LoopingCall(self.fetch_now)
            self._fetch_loop.clock = self._clock
            self._fetch_loop.start(self._fetch_interval, now=True)
        elif self._commit_graph:
            self._write_commit_graph()

    def _write_commit_graph(self) -> defer.Deferred:
        writing = self._fetcher.run(self.repository.write_commit_graph)
        return writing.addErrback(lambda failure: log.warn(
            "blames stay slower: {reason}", reason=failure.getErrorMessage()))

    def stopService(self) -> Any:  # noqa: N802 - Twisted API
        """Stop fetching and end the git commands under way (their callers see the repository
        unavailable, so reports stay in the inbox)."""
        super().stopService()
        if self._fetch_loop is not None and self._fetch_loop.running:
            self._fetch_loop.stop()
        self.repository.close()

    def _note(self, outcome: Any) -> Any:
        """Keep the latest repository problem for the health page; pass ``outcome`` on."""
        if not isinstance(outcome, Failure):
            self._access_error = None
        elif outcome.check(RepositoryUnavailable):
            self._access_error = outcome.getErrorMessage()
        return outcome

    def _in_git(self, function: Any, *args: Any) -> defer.Deferred:
        return self._git.run(function, *args).addBoth(self._note)

    # -- revisions and trees --

    def resolved_now(self, revision: Optional[str]) -> Optional[tuple[str, bool]]:
        """(sha, at_requested_revision) when it is known without asking git, else None."""
        known = self._resolved.get(revision) if revision else None
        if known is not None:
            return known, True
        fallback = self._fallbacks.get(revision)
        if fallback is not None and self._clock.seconds() - fallback[0] < TIP_TRUSTED_SECONDS:
            return fallback[1], False
        return None

    def resolve(self, revision: Optional[str]) -> defer.Deferred:
        """Deferred (sha, at_requested_revision): see `Repository.resolve_revision`."""
        known = self.resolved_now(revision)
        if known is not None:
            return defer.succeed(known)
        resolving = self._in_git(self.repository.resolve_revision, revision)
        return resolving.addCallback(self._remember, revision)

    def _remember(self, resolved: tuple[str, bool], revision: Optional[str]) -> tuple[str, bool]:
        sha, exact = resolved
        if exact and revision:
            self._resolved.put(revision, sha)  # a sha names the same commit forever
        else:
            # HEAD moves (a deploy, a fetch): its answer is trusted for a moment only, so a
            # burst of reports without a known revision costs one git call, not one each.
            self._fallbacks.put(revision, (self._clock.seconds(), sha))
        return resolved

    def index_now(self, sha: str) -> Optional[RepoIndex]:
        """The index of commit ``sha`` when it is built already, else None."""
        return self._indexes.get(sha)

    def index_at(self, sha: str) -> defer.Deferred:
        """Deferred :class:`RepoIndex` of the files of commit ``sha``, built once however
        many ask."""
        index = self._indexes.get(sha)
        if index is not None:
            return defer.succeed(index)
        return self._indexing.run(sha, lambda: self._in_git(self._build_index, sha))

    def _build_index(self, sha: str) -> RepoIndex:
        index = RepoIndex.from_paths(self.repository.paths_at(sha))
        self._indexes.put(sha, index)
        return index

    # -- blame --

    def blame(self, path: str, line_number: int, revision: Optional[str],
              expected_text: str = "", function_name: str = "") -> defer.Deferred:
        """Deferred `Blame` of one line (of the function ``function_name``) at the report's
        ``revision`` (HEAD when unknown).

        Fails with BlameFailed for a line that cannot be blamed and RepositoryUnavailable
        when the repository cannot be used right now.
        """
        blaming = self.resolve(revision)
        return blaming.addCallback(self._blame_at,
                                   (path, line_number, expected_text, function_name),
                                   lambda sha: self.repository.blame_line(
                                       path, line_number, sha, expected_text, function_name))

    def blame_cell(self, path: str, cell: NotebookCell,
                   revision: Optional[str]) -> defer.Deferred:
        """Deferred `Blame` of a line reported from a cell of the notebook ``path`` (see
        `flawless.server.git.notebooks.blame_cell`); fails as `blame` does."""
        blaming = self.resolve(revision)
        return blaming.addCallback(self._blame_at, (path, cell.id, cell.line, cell.line_hash),
                                   lambda sha: blame_cell(self.repository, path, cell, sha))

    def blame_now(self, path: str, line_number: int, expected_text: str, function_name: str,
                  resolved: tuple[str, bool]) -> Union[Blame, BlameFailed, None]:
        """The cached outcome of :meth:`blame` at a resolved revision: a Blame, the
        BlameFailed it ended with, or None when git must be asked."""
        return self._cached(resolved, (path, line_number, expected_text, function_name))

    def cell_blame_now(self, path: str, cell: NotebookCell,
                       resolved: tuple[str, bool]) -> Union[Blame, BlameFailed, None]:
        """The cached outcome of :meth:`blame_cell`, as :meth:`blame_now`."""
        return self._cached(resolved, (path, cell.id, cell.line, cell.line_hash))

    def _cached(self, resolved: tuple[str, bool], what: tuple[Any, ...]
                ) -> Union[Blame, BlameFailed, None]:
        sha, exact = resolved
        cached = self._results.get((sha, *what))
        if cached is None or isinstance(cached, BlameFailed):
            return cached
        return replace(cached, at_requested_revision=exact)

    def _blame_at(self, resolved: tuple[str, bool], what: tuple[Any, ...],
                  blame_at: Callable[[str], Blame]) -> Any:
        cached = self._cached(resolved, what)
        if isinstance(cached, BlameFailed):
            return defer.fail(cached)
        if cached is not None:
            return cached
        sha, exact = resolved
        key = (sha, *what)
        blaming = self._blaming.run(key, lambda: self._in_git(blame_at, sha).addBoth(
            self._cache, key))
        return blaming.addCallback(lambda blame: replace(blame, at_requested_revision=exact))

    # -- fixes --

    def commit_info(self, revision: str) -> defer.Deferred:
        """Deferred `CommitInfo` of the commit a hex ``revision`` names, or None."""
        return self._in_git(self.repository.commit_info, revision)

    def check_fix(self, revision: Optional[str], fix_commit: str) -> defer.Deferred:
        """Deferred `FixCheck`: whether the report's ``revision`` contains ``fix_commit``."""
        checking = self.resolve(revision)
        return checking.addCallback(self._check_fix, fix_commit)

    def _check_fix(self, resolved: tuple[str, bool], fix_commit: str) -> Any:
        sha, exact = resolved
        if not exact:
            return FixCheck(fix_commit, None, None)
        known = self._containment.get((sha, fix_commit))
        if known is not None:
            return FixCheck(fix_commit, sha, known)
        checking = self._in_git(self.repository.contains, sha, fix_commit)
        return checking.addCallback(self._checked, sha, fix_commit)

    def _checked(self, contains: Optional[bool], sha: str, fix_commit: str) -> FixCheck:
        if contains is not None:   # a fix commit not fetched yet may come: ask again then
            self._containment.put((sha, fix_commit), contains)
        return FixCheck(fix_commit, sha, contains)

    def fix_log(self, after: Optional[str], since: Optional[float]) -> defer.Deferred:
        """Deferred (tip sha, commits with their Fixes: trailer values) of the commits of
        the branch tip that ``after`` lacks (all since ``since`` when it is None)."""
        return self._in_git(self._fix_log, after, since)

    def _fix_log(self, after: Optional[str], since: Optional[float]) -> tuple[str, list]:
        tip, _ = self.repository.resolve_revision(None)
        if tip == after:
            return tip, []
        if after is not None and self.repository.commit_info(after) is None:
            after = None    # history rewritten and the old tip gone: read it all again
        return tip, self.repository.fix_log(tip, after, None if after else since)

    def _cache(self, outcome: Any, key: _Key) -> Any:
        if not isinstance(outcome, Failure):
            self._results.put(key, outcome)
        elif outcome.check(BlameFailed):
            self._results.put(key, outcome.value)
        return outcome

    # -- fetch --

    def fetch_now(self) -> defer.Deferred:
        """Fetch repo_url once (cloning when needed); never fails, records the outcome."""
        fetching = self._fetcher.run(self.repository.fetch)
        return fetching.addCallbacks(self._fetched, self._fetch_failed)

    def _fetched(self, _: None) -> Optional[defer.Deferred]:
        self._fallbacks.clear()
        self.last_fetch = self._clock.seconds()
        self._fetch_error = None
        return self._write_commit_graph() if self._commit_graph else None

    def _fetch_failed(self, failure: Failure) -> None:
        message = self.repository.redact(failure.getErrorMessage())
        self._fetch_error = f"fetch failed: {message}"
        if failure.check(RepositoryUnavailable):
            log.warn("fetching the repository failed: {reason}", reason=message)
        else:
            log.error("fetching the repository failed unexpectedly: {reason}", reason=message)
