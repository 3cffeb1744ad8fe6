"""Turns stored reports into counted, blamed, alerted errors.

Reads the inbox in batches, routes each report (pure), blames the culprit line (git, in
the blame pool), then in ONE database transaction per batch: updates the error and its
week and day counts, decides whether to alert (pure), queues the rendered mail, and
removes the report from the inbox. A crash anywhere leaves either the report in the inbox
or its whole effect stored, never half of it, so no report is lost and no alert doubled.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Any, Callable, Optional, Union

from twisted.application import service
from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from flawless.report import Report
from flawless.server import alerting, mail, routing
from flawless.server.alerting import AlertSettings, Decision
from flawless.server.blame import Blame, BlameFailed, BlameService, RepositoryUnavailable
from flawless.server.routing import RepoIndex, Route, RoutingSettings
from flawless.server.rules import Rules
from flawless.server.routing import ErrorKey
from flawless.server.store import ErrorRecord, ErrorState, InboxItem, Store, day_of

log = Logger()

BATCH_SIZE = 200
IDLE_POLL_SECONDS = 1.0
MAX_RETRY_SECONDS = 600.0
MAX_CACHED_INDEXES = 16
INGEST_FIRST_FACTOR = 3.0
BUSY_MIN_DELAY = 0.05
EMPTY_INDEX = RepoIndex.from_paths(())


@dataclass(frozen=True)
class Occurrence:
    """A routed, blamed report ready to be counted."""

    report: Report
    route: Route
    blame: Optional[Blame]


@dataclass(frozen=True)
class Dropped:
    """A report dropped by a rule (whitelist or ignored exception)."""

    reason: str


@dataclass(frozen=True)
class Postponed:
    """A report that cannot be processed now (repository unavailable)."""

    reason: str


Prepared = Union[Occurrence, Dropped, Postponed]


def retry_delay(attempts: int) -> float:
    """Backoff before the next attempt at a postponed report: doubling, jittered, bounded."""
    return min(MAX_RETRY_SECONDS, 2.0 ** min(attempts, 12)) * random.uniform(0.5, 1.0)


class Processor(service.Service):
    """The loop from inbox to errors and outbox."""

    def __init__(self, store: Store, pool: ThreadPool, blamer: Optional[BlameService],
                 rules: Callable[[], Rules], routing_settings: RoutingSettings,
                 alert_settings: AlertSettings, sender: str, base_url: str,
                 on_mail_queued: Callable[[], None],
                 ingest_busy: Callable[[], bool] = lambda: False,
                 reactor=None):  # type: ignore[no-untyped-def]
        if reactor is None:
            from twisted.internet import reactor  # type: ignore[no-redef]
        self._reactor = reactor
        self._store = store
        self._pool = pool
        self._blamer = blamer
        self._rules = rules
        self._routing_settings = routing_settings
        self._alert_settings = alert_settings
        self._sender = sender
        self.base_url = base_url  # set again by the server once its dashboard port is bound
        self._on_mail_queued = on_mail_queued
        self._ingest_busy = ingest_busy
        self._batch_seconds = 0.0
        self._later: Any = None
        self._indexes: OrderedDict[str, RepoIndex] = OrderedDict()
        self._index_waiters: dict[str, list[defer.Deferred]] = {}
        self._running: Optional[defer.Deferred] = None
        self._again = False
        self._poll: Optional[task.LoopingCall] = None
        self.processed = 0
        self.last_error: Optional[str] = None

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Start polling the inbox (reports left from a previous run are processed first)."""
        super().startService()
        self._poll = task.LoopingCall(self.wake)
        self._poll.clock = self._reactor
        self._poll.start(IDLE_POLL_SECONDS, now=True)

    def stopService(self) -> defer.Deferred:  # noqa: N802 - Twisted API
        """Stop polling and wait for the batch in progress."""
        super().stopService()
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        running = self._running
        if running is None:
            return defer.succeed(None)
        done: defer.Deferred = defer.Deferred()
        running.addBoth(lambda result: (done.callback(None), result)[1])
        return done

    def wake(self) -> None:
        """Process the inbox now (or right after the batch in progress)."""
        if not self.running:
            return
        if self._running is not None:
            self._again = True
            return
        self._again = False
        self._running = defer.ensureDeferred(self._process_due())
        self._running.addErrback(self._log_failure)
        self._running.addBoth(self._finished)

    def wake_soon(self) -> None:
        """New reports are stored: process them now, or, while requests arrive fast, a
        little later in one larger batch."""
        if self._running is not None:
            self._again = True
        elif not self._ingest_busy():
            self.wake()
        elif self._later is None or not self._later.active():
            self._later = self._reactor.callLater(BUSY_MIN_DELAY, self.wake)

    def _log_failure(self, failure) -> None:  # type: ignore[no-untyped-def]
        self.last_error = failure.getErrorMessage()
        log.failure("processing the inbox failed", failure)

    def _finished(self, more: object) -> None:
        self._running = None
        if self._again or more is True:
            # Acknowledging reports comes first: while requests keep arriving, processing
            # takes a bounded share of the CPU (it catches up as soon as they pause).
            delay = max(BUSY_MIN_DELAY, INGEST_FIRST_FACTOR * self._batch_seconds) \
                if self._ingest_busy() else 0
            if self._later is None or not self._later.active():
                self._later = self._reactor.callLater(delay, self.wake)

    def _db(self, function, *args):  # type: ignore[no-untyped-def]
        return threads.deferToThreadPool(self._reactor, self._pool, function, *args)

    async def _process_due(self) -> bool:
        started = time.monotonic()
        items = await self._db(self._store.due_inbox, time.time(), BATCH_SIZE)
        if not items:
            return False
        batch = [(item, await defer.gatherResults(
            [defer.ensureDeferred(self._prepare(report)) for report in item.reports],
            consumeErrors=True)) for item in items]
        rules = self._rules()
        queued = await self._db(self._apply, batch, rules)
        self.processed += sum(isinstance(entry, (Occurrence, Dropped))
                              for _, prepared in batch for entry in prepared)
        if queued:
            self._on_mail_queued()
        self._batch_seconds = time.monotonic() - started
        return True

    async def _index(self, sha: str) -> RepoIndex:
        """The repository index at ``sha``; built once, off the reactor, however many ask."""
        index = self._indexes.get(sha)
        if index is not None:
            self._indexes.move_to_end(sha)
            return index
        waiters = self._index_waiters.get(sha)
        if waiters is not None:
            waiter: defer.Deferred = defer.Deferred()
            waiters.append(waiter)
            return await waiter
        self._index_waiters[sha] = []
        assert self._blamer is not None
        try:
            paths = await self._blamer.paths_at(sha)
            index = await threads.deferToThread(RepoIndex.from_paths, paths)
        except Exception as error:
            for waiter in self._index_waiters.pop(sha):
                waiter.errback(error)
            raise
        self._indexes[sha] = index
        while len(self._indexes) > MAX_CACHED_INDEXES:
            self._indexes.popitem(last=False)
        for waiter in self._index_waiters.pop(sha):
            waiter.callback(index)
        return index

    async def _prepare(self, report: Report) -> Prepared:
        rules = self._rules()
        try:
            if self._blamer is None:
                index = EMPTY_INDEX
            else:
                sha, _ = await self._blamer.resolve(report.revision)
                index = await self._index(sha)
            route = routing.route(report, index, rules, self._routing_settings)
            if route.dropped_reason is not None:
                return Dropped(route.dropped_reason)
            blamed = route.blamed
            if blamed is None or self._blamer is None or blamed.repo_path is None:
                return Occurrence(report, route, None)
            try:
                blame = await self._blamer.blame(blamed.repo_path, blamed.frame.line_number,
                                                 report.revision, blamed.frame.text)
            except BlameFailed as failure:
                log.warn("cannot blame {path}:{line}: {reason}", path=blamed.repo_path,
                         line=blamed.frame.line_number, reason=str(failure))
                route = replace(route, explanation=route.explanation + (
                    f"git blame failed ({failure}); sent to the default contact",))
                return Occurrence(report, route, None)
            if not route.key.text and blame.line_text.strip():
                # The client could not read its source line: the repository's text of the
                # blamed line keeps errors on different lines of one function apart.
                route = replace(route, key=replace(route.key,
                                                   text=routing.fold_whitespace(blame.line_text)))
            return Occurrence(report, route, blame)
        except RepositoryUnavailable as unavailable:
            self.last_error = f"repository unavailable: {unavailable}"
            log.warn("repository unavailable, reports kept for later: {reason}",
                     reason=str(unavailable))
            return Postponed(str(unavailable))

    # -- the database transaction (runs in the database thread) --------------------------

    def _apply(self, batch: list[tuple[InboxItem, list[Prepared]]], rules: Rules) -> int:
        """Count, decide and queue mail for a batch of requests in one transaction."""
        now = time.time()
        tallies: dict[ErrorKey, _Tally] = {}
        with self._store.transaction() as connection:
            for item, prepared in batch:
                postponed = [entry for entry in prepared if isinstance(entry, Postponed)]
                if postponed:  # all of a request's reports are processed together, or none
                    attempts = item.attempts + 1
                    self._store.postpone(connection, item.inbox_id, attempts,
                                         now + retry_delay(attempts), postponed[0].reason)
                    continue
                for entry in prepared:
                    if isinstance(entry, Dropped):
                        self._store.bump_stat(connection,
                                              "dropped: " + entry.reason.split(":")[0])
                    else:
                        assert isinstance(entry, Occurrence)
                        self._tally(connection, tallies, entry, item.received_at, rules, now)
                self._store.remove_from_inbox(connection, item.inbox_id)
            return sum(self._save(connection, tally, now) for tally in tallies.values())

    def _tally(self, connection: sqlite3.Connection, tallies: dict[ErrorKey, _Tally],
               occurrence: Occurrence, when: float, rules: Rules, now: float) -> None:
        report, route, blame = occurrence.report, occurrence.route, occurrence.blame
        tally = tallies.get(route.key)
        if tally is None:
            tally = _Tally(self._store.error_state(connection, route.key), when)
            tallies[route.key] = tally
        count_before = tally.count
        tally.count += report.error_count
        decision = alerting.decide(
            route, blame.author_email if blame else None,
            blame.commit_timestamp if blame else None, count_before, tally.count,
            tally.alerted_at is not None, report.error_threshold, rules, self._alert_settings)
        tally.latest = occurrence
        tally.decision = decision
        tally.first_seen = min(tally.first_seen, when)
        tally.last_seen = max(tally.last_seen, when)
        day = tally.days.setdefault(day_of(when), [when, 0])
        day[1] += report.error_count
        if decision.alert and decision.recipients:
            tally.alerted_at = now
            tally.recipients = tuple(recipient.email for recipient in decision.recipients)
            tally.alerts.append((occurrence, decision, tally.count))
        for address, reason in decision.rejected:
            log.warn("recipient {address!r} dropped for {path}: {reason}", address=address,
                     path=route.key.filename, reason=reason)
        if decision.rejected and self._alert_settings.default_contact:
            lines = [f"{address}: {reason}" for address, reason in decision.rejected]
            tally.notes.append(mail.render_note(
                f"flawless dropped invalid recipients for {route.key.filename}", lines,
                [self._alert_settings.default_contact], self._sender))

    def _save(self, connection: sqlite3.Connection, tally: _Tally, now: float) -> int:
        """Write one error's new state and counts, and queue its mail; return mails queued."""
        error_id = self._store.save_error(connection, tally.record())
        for when, occurrences in tally.days.values():
            self._store.count_occurrences(connection, error_id, when, occurrences)
        messages = [mail.render_alert(mail.Alert(
            report=occurrence.report, route=occurrence.route, blame=occurrence.blame,
            decision=decision, count=count, first_seen=tally.first_seen,
            last_seen=tally.last_seen, base_url=self.base_url, error_id=error_id),
            self._sender) for occurrence, decision, count in tally.alerts]
        for message in messages + tally.notes:
            self._store.queue_mail(connection, error_id, now, mail.message_bytes(message),
                                   mail.message_recipients(message))
        return len(messages) + len(tally.notes)


class _Tally:
    """One error's state while a batch is applied: stored state plus this batch's occurrences."""

    def __init__(self, state: Optional[ErrorState], when: float):
        self.error_id = state.error_id if state else 0
        self.count = state.count if state else 0
        self.first_seen = state.first_seen if state else when
        self.last_seen = state.last_seen if state else when
        self.alerted_at = state.alerted_at if state else None
        self.recipients: tuple[str, ...] = state.recipients if state else ()
        self.days: dict[str, list] = {}
        self.alerts: list[tuple[Occurrence, Decision, int]] = []
        self.notes: list[EmailMessage] = []
        self.latest: Optional[Occurrence] = None
        self.decision: Optional[Decision] = None

    def record(self) -> ErrorRecord:
        """The error as it is to be stored, from its latest occurrence."""
        assert self.latest is not None and self.decision is not None
        report, route, blame = self.latest.report, self.latest.route, self.latest.blame
        blamed = route.blamed
        frame = blamed.frame if blamed else report.traceback[-1]
        explanation = route.explanation + (self.decision.reason,) + tuple(
            f"{recipient.email}: {recipient.reason}" for recipient in self.decision.recipients)
        return ErrorRecord(
            error_id=self.error_id,
            key=route.key,
            line_number=frame.line_number,
            exception_type=report.exception_type,
            blamed=blame is not None,
            author_name=blame.author_name if blame else None,
            author_email=blame.author_email if blame else None,
            commit_sha=blame.commit_sha if blame else None,
            commit_summary=blame.commit_summary if blame else None,
            commit_timestamp=blame.commit_timestamp if blame else None,
            blame_revision=blame.revision if blame else None,
            blame_at_requested=blame.at_requested_revision if blame else None,
            count=self.count,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            last_report=report,
            known=route.known_error is not None,
            alerted_at=self.alerted_at,
            recipients=self.recipients,
            explanation=explanation,
        )
