"""Group commit of accepted reports: many requests, one database transaction.

Each request waits for the commit that holds its reports, so an answer of
``{"accepted": true}`` always means the report is on disk; requests that arrive while a
commit is running are gathered into the next one, which keeps durability cheap under load.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.application import service
from twisted.internet import defer

from flawless.server.storage.interface import Storage
from flawless.server.threads import Runner

MAX_REPORTS_PER_COMMIT = 5000


class InboxWriter(service.Service):
    """Stores accepted reports in the inbox, committing concurrent requests together.

    Stopping waits until every report handed to :meth:`accept` is committed (or failed).
    """

    name = "inbox"

    def __init__(self, storage: Storage, writer: Runner, clock: Any,
                 on_stored: Optional[Callable[[], None]] = None):
        self._storage = storage
        self._writer = writer
        self._clock = clock
        self._on_stored = on_stored
        self._waiting: list[tuple[bytes, int, defer.Deferred]] = []
        self._committing: Optional[defer.Deferred] = None

    def accept(self, payload: bytes, reports: int) -> defer.Deferred:
        """Store one request's ``payload`` (a JSON-RPC body holding ``reports`` valid
        reports); the Deferred fires with its inbox id once committed."""
        waiter: defer.Deferred = defer.Deferred()
        self._waiting.append((payload, reports, waiter))
        if self._committing is None:
            self._commit_waiting()
        return waiter

    def _commit_waiting(self) -> None:
        batch, total = [], 0
        while self._waiting and (not batch or total < MAX_REPORTS_PER_COMMIT):
            batch.append(self._waiting.pop(0))
            total += batch[-1][1]
        committing = self._writer.run(self._storage.add_to_inbox,
                                      [(payload, reports) for payload, reports, _ in batch],
                                      self._clock.seconds())
        self._committing = committing
        committing.addCallbacks(self._answer, self._fail, callbackArgs=(batch,),
                                errbackArgs=(batch,))

    def _answer(self, ids: list[int], batch: list) -> None:
        for inbox_id, (_, _, waiter) in zip(ids, batch):
            waiter.callback(inbox_id)
        self._next()
        if self._on_stored is not None:
            self._on_stored()

    def _fail(self, failure, batch: list) -> None:  # type: ignore[no-untyped-def]
        for _, _, waiter in batch:
            waiter.errback(failure)
        self._next()

    def _next(self) -> None:
        self._committing = None
        if self._waiting:
            self._commit_waiting()

    def stopService(self) -> defer.Deferred:  # noqa: N802 - Twisted API
        """Fire once every report handed to :meth:`accept` so far is committed (or failed)."""
        super().stopService()
        if self._committing is None and not self._waiting:
            return defer.succeed(None)
        last = self._waiting[-1][2] if self._waiting else self._committing
        done: defer.Deferred = defer.Deferred()
        assert last is not None
        last.addBoth(lambda result: (done.callback(None), result)[1])
        return done
