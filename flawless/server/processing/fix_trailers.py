"""Reads ``Fixes: <error link>`` trailers from the repository's commits and marks the errors
they name resolved by that commit.

Every ``interval`` seconds the branch tip is looked up; when it moved, the commits it brought
are read (the first time: every commit since ``horizon`` seconds ago) and each error a trailer
links to is resolved, once per trailer: an error reopened since, or regressed, stays open.
A trailer naming an error this server has not recorded yet (it reached another server
first) waits, the newest MAX_WAITING of them, and applies once the error is recorded.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from flawless.server.core.fixes import error_links
from flawless.server.core.model import CommitInfo, ErrorKey, Resolution
from flawless.server.processing.blame_service import BlameService
from flawless.server.storage.interface import Storage
from flawless.server.threads import Runner

log = Logger()

MAX_WAITING = 1000


class FixTrailerService(service.Service):
    """Marks errors resolved by the commits whose messages say they fix them."""

    name = "fix-trailers"

    def __init__(self, blamer: BlameService, storage: Storage, writer: Runner, clock: Any,
                 interval: float, horizon: Optional[float] = None):
        self._blamer = blamer
        self._storage = storage
        self._writer = writer
        self._clock = clock
        self._interval = interval
        self._horizon = horizon
        self._loop: Optional[task.LoopingCall] = None
        self.scanned: Optional[str] = None      # the tip whose commits are all read
        self.last_error: Optional[str] = None
        # trailers naming errors not recorded yet, oldest commit first
        self._waiting: list[tuple[CommitInfo, ErrorKey]] = []

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Read the trailers now and whenever the tip moves."""
        super().startService()
        self._loop = task.LoopingCall(self.scan)
        self._loop.clock = self._clock
        self._loop.start(self._interval, now=True)

    def stopService(self) -> Any:  # noqa: N802 - Twisted API
        """Stop looking."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def scan(self) -> defer.Deferred:
        """Read the commits the tip brought; never fails (a failure is logged and kept)."""
        scanning = defer.ensureDeferred(self._scan())
        return scanning.addErrback(self._failed)

    async def _scan(self) -> None:
        since = None if self._horizon is None else self._clock.seconds() - self._horizon
        tip, commits = await self._blamer.fix_log(self.scanned, since)
        fixes = self._waiting + [(commit, key) for commit, values in reversed(commits)
                                 for key in error_links(values)]
        if fixes:
            resolved, self._waiting = await self._writer.run(self._resolve, fixes,
                                                             self._clock.seconds())
            if resolved:
                log.info("{count} errors resolved by Fixes: trailers up to {tip}",
                         count=resolved, tip=tip[:12])
        self.scanned = tip
        self.last_error = None

    def _resolve(self, fixes: list[tuple[CommitInfo, ErrorKey]], now: float
                 ) -> tuple[int, list[tuple[CommitInfo, ErrorKey]]]:
        """Resolve each named error by its commit, the oldest commit first (so that the
        newest fix of an error is the one in force); return how many were resolved, and
        the trailers whose errors are not recorded yet."""
        resolved = 0
        waiting = []
        with self._storage.transaction() as transaction:
            for commit, key in fixes:
                state = transaction.error_state(key)
                if state is None:
                    waiting.append((commit, key))
                    continue
                if not transaction.note_fix_trailer(state.error_id, commit.sha):
                    continue
                transaction.save_resolution(state.error_id, Resolution(
                    resolved_at=now, source=f"a Fixes: trailer in {commit.sha[:12]}",
                    fix_commit=commit.sha, fix_author_name=commit.author_name,
                    fix_author_email=commit.author_email))
                resolved += 1
        return resolved, waiting[-MAX_WAITING:]

    def _failed(self, failure: Any) -> None:
        self.last_error = failure.getErrorMessage()
        log.warn("reading Fixes: trailers failed, trying again later: {reason}",
                 reason=self.last_error)
