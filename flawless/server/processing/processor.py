"""Turns stored reports into counted, blamed, alerted errors.

Claims inbox requests in batches, routes each report (pure), blames the culprit line (git,
in the git pool), then in ONE database transaction per batch: updates each error and its
week and day counts, decides whether to alert (pure), queues the rendered mail, and removes
the requests from the inbox. A crash anywhere leaves either a request in the inbox or its
whole effect stored, never half of it, so no report is lost and no alert doubled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Any, Callable, Optional, Union

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from flawless.backoff import backoff_delay
from flawless.report import Frame, Report
from flawless.server.core import routing
from flawless.server.core.model import (AlertSettings, Blame, ErrorKey, Occurrence, Rules,
                                        RoutingSettings)
from flawless.server.core.tally import ErrorTally
from flawless.server.core.text import fold_whitespace
from flawless.server.delivery import render
from flawless.server.git.repository import BlameFailed, RepositoryUnavailable
from flawless.server.processing.blame_service import BlameService
from flawless.server.processing.sourcemaps import Resolution, SourceMapResolver
from flawless.server.storage.interface import Claim, Storage, Transaction
from flawless.server.storage.records import InboxItem
from flawless.server.threads import Runner

log = Logger()

BATCH_SIZE = 200
IDLE_POLL_SECONDS = 1.0
FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 600.0
INGEST_FIRST_FACTOR = 3.0
BUSY_MIN_DELAY = 0.05
EMPTY_INDEX = routing.RepoIndex.from_paths(())


@dataclass(frozen=True)
class Dropped:
    """A report dropped by a rule (whitelist or ignored exception)."""

    reason: str


@dataclass(frozen=True)
class Postponed:
    """A report that cannot be processed now (repository unavailable)."""

    reason: str


Prepared = Union[Occurrence, Dropped, Postponed]


def map_agrees_with_repository(frame: Frame, blame: Blame) -> bool:
    """Whether a line a source map resolved is the repository's line at the blamed revision
    (the map's ``sourcesContent`` text, at the same line number): a map of another build
    must not blame whoever wrote what is there now."""
    text = fold_whitespace(frame.text)
    return bool(text) and blame.line_number == frame.line_number and \
        text == fold_whitespace(blame.line_text)


class Processor(service.Service):
    """The loop from inbox to errors and outbox."""

    name = "processor"

    def __init__(self, storage: Storage, reader: Runner, writer: Runner,
                 blamer: Optional[BlameService], rules: Callable[[], Rules],
                 routing_settings: RoutingSettings, alert_settings: AlertSettings,
                 sender: str, base_url: Callable[[], str], on_mail_queued: Callable[[], None],
                 clock: Any, ingest_busy: Callable[[], bool] = lambda: False,
                 sourcemaps: Optional[SourceMapResolver] = None):
        self._storage = storage
        self._reader = reader
        self._writer = writer
        self._blamer = blamer
        self._rules = rules
        self._routing_settings = routing_settings
        self._alert_settings = alert_settings
        self._sender = sender
        self._base_url = base_url
        self._on_mail_queued = on_mail_queued
        self._clock = clock
        self._ingest_busy = ingest_busy
        self._sourcemaps = sourcemaps
        self._batch_seconds = 0.0
        self._later: Any = None
        self._running: Optional[defer.Deferred] = None
        self._again = False
        self._poll = task.LoopingCall(self.wake)
        self._poll.clock = clock
        self.processed = 0
        self.last_error: Optional[str] = None

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Start polling the inbox (reports left from a previous run are processed first)."""
        super().startService()
        self._poll.start(IDLE_POLL_SECONDS, now=True)

    def stopService(self) -> defer.Deferred:  # noqa: N802 - Twisted API
        """Stop polling and wait for the batch in progress."""
        super().stopService()
        if self._poll.running:
            self._poll.stop()
        if self._later is not None and self._later.active():
            self._later.cancel()
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
            self._later = self._clock.callLater(BUSY_MIN_DELAY, self.wake)

    def _log_failure(self, failure) -> None:  # type: ignore[no-untyped-def]
        self.last_error = failure.getErrorMessage()
        log.failure("processing the inbox failed", failure)

    def _finished(self, more: object) -> None:
        self._running = None
        if not self.running:
            return
        if self._again or more is True:
            # Acknowledging reports comes first: while requests keep arriving, processing
            # takes a bounded share of the CPU (it catches up as soon as they pause).
            delay = max(BUSY_MIN_DELAY, INGEST_FIRST_FACTOR * self._batch_seconds) \
                if self._ingest_busy() else 0
            if self._later is None or not self._later.active():
                self._later = self._clock.callLater(delay, self.wake)

    async def _process_due(self) -> bool:
        started = self._clock.seconds()
        claim: Claim = await self._reader.run(self._storage.claim_inbox, started, BATCH_SIZE)
        if not claim.items:
            return False
        try:
            batch = [(item, await defer.gatherResults(
                [defer.ensureDeferred(self._prepare(report)) for report in item.reports],
                consumeErrors=True)) for item in claim.items]
        except BaseException:
            await self._reader.run(self._storage.release, claim)
            raise
        rules = self._rules()
        queued = await self._writer.run(self._storage.apply, claim,
                                        lambda transaction: self._apply(transaction, batch,
                                                                        rules))
        self.processed += sum(isinstance(entry, (Occurrence, Dropped))
                              for _, prepared in batch for entry in prepared)
        if queued:
            self._on_mail_queued()
        self._batch_seconds = self._clock.seconds() - started
        return True

    async def _prepare(self, report: Report) -> Prepared:
        rules = self._rules()
        resolution = Resolution(report)
        if self._sourcemaps is not None:
            resolution = await self._sourcemaps.resolve(report)
            report = resolution.report
        try:
            if self._blamer is None:
                index = EMPTY_INDEX
            else:
                sha, _ = await self._blamer.resolve(report.revision)
                index = await self._blamer.index_at(sha)
            route = routing.route(report, index, rules, self._routing_settings)
            if resolution.notes:
                route = replace(route, explanation=resolution.notes + route.explanation)
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
            if route.blamed_index in resolution.from_maps and \
                    not map_agrees_with_repository(blamed.frame, blame):
                route = replace(route, explanation=route.explanation + (
                    f"not blamed: line {blamed.frame.line_number} of {blamed.repo_path} in the "
                    f"source map ({blamed.frame.text.strip()!r}) is not the repository's at "
                    f"{blame.revision[:12]} ({blame.line_text.strip()!r}); sent to the "
                    "default contact",))
                return Occurrence(report, route, None)
            if not route.key.text and blame.line_text.strip():
                # The client could not read its source line: the repository's text of the
                # blamed line keeps errors on different lines of one function apart.
                route = replace(route, key=replace(route.key,
                                                   text=fold_whitespace(blame.line_text)))
            return Occurrence(report, route, blame)
        except RepositoryUnavailable as unavailable:
            self.last_error = f"repository unavailable: {unavailable}"
            log.warn("repository unavailable, reports kept for later: {reason}",
                     reason=str(unavailable))
            return Postponed(str(unavailable))

    # -- the database transaction (runs in the database writer's thread) --

    def _apply(self, transaction: Transaction,
               batch: list[tuple[InboxItem, list[Prepared]]], rules: Rules) -> int:
        """Count, decide and queue mail for a batch of requests; return mails queued."""
        now = self._clock.seconds()
        tallies: dict[ErrorKey, ErrorTally] = {}
        for item, prepared in batch:
            postponed = [entry for entry in prepared if isinstance(entry, Postponed)]
            if postponed:  # all of a request's reports are processed together, or none
                attempts = item.attempts + 1
                transaction.postpone(item.inbox_id, attempts,
                                     now + backoff_delay(attempts, FIRST_RETRY_SECONDS,
                                                         MAX_RETRY_SECONDS),
                                     postponed[0].reason)
                continue
            for entry in prepared:
                if isinstance(entry, Dropped):
                    transaction.bump_stat("dropped: " + entry.reason.split(":")[0])
                    continue
                assert isinstance(entry, Occurrence)
                tally = tallies.get(entry.route.key)
                if tally is None:
                    tally = tallies[entry.route.key] = ErrorTally(
                        transaction.error_state(entry.route.key), item.received_at)
                tally.add(entry, item.received_at, now, rules, self._alert_settings)
            transaction.remove_from_inbox(item.inbox_id)
        return sum(self._save(transaction, tally, now) for tally in tallies.values())

    def _save(self, transaction: Transaction, tally: ErrorTally, now: float) -> int:
        """Write one error's new state and counts, and queue its mail; return mails queued."""
        error_id = transaction.save_error(tally.record())
        for when, occurrences in tally.days.values():
            transaction.count_occurrences(error_id, when, int(occurrences))
        messages = [render.render_alert(render.Alert(
            report=occurrence.report, route=occurrence.route, blame=occurrence.blame,
            decision=decision, count=count, first_seen=tally.first_seen,
            last_seen=tally.last_seen, base_url=self._base_url(), error_id=error_id),
            self._sender, now) for occurrence, decision, count in tally.alerts]
        messages += self._rejection_notes(tally)
        for message in messages:
            transaction.queue_mail(error_id, now, render.message_bytes(message),
                                   render.message_recipients(message))
        return len(messages)

    def _rejection_notes(self, tally: ErrorTally) -> list[EmailMessage]:
        """A note to the default contact about recipients dropped as invalid, if any."""
        if not tally.rejected:
            return []
        path = tally.record().key.filename
        for address, reason in tally.rejected:
            log.warn("recipient {address!r} dropped for {path}: {reason}", address=address,
                     path=path, reason=reason)
        contact = self._alert_settings.default_contact
        if not contact:
            return []
        return [render.render_note(f"flawless dropped invalid recipients for {path}",
                                   [f"{address}: {reason}" for address, reason in tally.rejected],
                                   [contact], self._sender)]
