"""Turns stored reports into counted, blamed, alerted errors.

Claims inbox requests in batches, routes each report (pure), blames the culprit line (git,
in the git pool), then in ONE database transaction per batch: updates each error and its
week and day counts, decides whether to alert (pure), queues the rendered mail, and removes
the requests from the inbox. A crash anywhere leaves either a request in the inbox or its
whole effect stored, never half of it, so no report is lost and no alert doubled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Any, Callable, Optional, Union

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from flawless.backoff import backoff_delay
from flawless.report import Frame, Report
from flawless.server.core import alerting, routing
from flawless.server.core.cell_frames import blame_note, frame_line, notebook_cell
from flawless.server.core.lru import Lru
from flawless.server.core.model import (AlertSettings, Blame, ErrorKey, FixCheck, Occurrence,
                                        Route, RoutedFrame, Rules, RoutingSettings)
from flawless.server.core.tally import ErrorTally
from flawless.server.core.text import fold_whitespace
from flawless.server.delivery import render
from flawless.server.delivery.queueing import AlertQueue
from flawless.server.git.repository import BlameFailed, RepositoryUnavailable
from flawless.server.processing.blame_service import BlameService
from flawless.server.processing.sourcemaps import Mapped, SourceMapResolver
from flawless.server.storage.interface import Claim, Storage, Transaction
from flawless.server.storage.plan import PlanConflict, PlanningTransaction
from flawless.server.storage.records import InboxItem
from flawless.server.threads import Runner

log = Logger()

BATCH_SIZE = 200
MAX_BATCH_SIZE = 3200
IDLE_POLL_SECONDS = 1.0
FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 600.0
EMPTY_INDEX = routing.RepoIndex.from_paths(())
ROUTES_CACHED = 10000
WAIT_FOR_GIT_SECONDS = 0.05
# Reports prepared at once (each holds its report until git answers): a request waiting for
# git is claimed again every WAIT_FOR_GIT_SECONDS, and repeats of one error need one answer.
MAX_PREPARING = 256
# A request that has waited long for git is looked at again less often (a quarter of its
# wait, up to this), so that a backlog waiting for many blames leaves the CPU to git.
MAX_WAIT_RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Dropped:
    """A report dropped by a rule (whitelist or ignored exception)."""

    reason: str


@dataclass(frozen=True)
class Postponed:
    """A report that cannot be processed now (repository unavailable)."""

    reason: str


@dataclass(frozen=True)
class Waiting:
    """A report whose blame git has not answered yet: its request is looked at again soon."""


WAITING = Waiting()
Prepared = Union[Occurrence, Dropped, Postponed, Waiting]


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
                 alerts: AlertQueue, on_mail_queued: Callable[[], None], clock: Any,
                 sourcemaps: Optional[SourceMapResolver] = None):
        self._storage = storage
        self._reader = reader
        self._writer = writer
        self._blamer = blamer
        self._rules = rules
        self._routing_settings = routing_settings
        self._alert_settings = alert_settings
        self._alerts = alerts
        self._on_mail_queued = on_mail_queued
        self._clock = clock
        self._sourcemaps = sourcemaps
        self._later: Any = None
        self._batch_size = BATCH_SIZE
        self._repository_down = False
        self._running: Optional[defer.Deferred] = None
        self._again = False
        self._routes: Lru[tuple, tuple[Rules, Route]] = Lru(ROUTES_CACHED)
        self._preparing: set[tuple] = set()   # the needs being prepared
        self._recipients = alerting.RecipientsMemo(ROUTES_CACHED)
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
        """New reports are stored: process them now, or right after the batch in progress."""
        self.wake()

    def _log_failure(self, failure) -> None:  # type: ignore[no-untyped-def]
        self.last_error = failure.getErrorMessage()
        log.failure("processing the inbox failed", failure)

    def _finished(self, more: object) -> None:
        self._running = None
        if self.running and (self._again or more is True):
            # The next batch is started from the reactor's queue, after the requests that
            # arrived meanwhile: acknowledging and processing take turns, so neither starves
            # (while processing lags, answers wait for the database thread it shares).
            self._later = self._clock.callLater(0, self.wake)

    async def _process_due(self) -> bool:
        if self._repository_down:
            await self._probe_repository()
        claim: Claim = await self._reader.run(self._storage.claim_inbox, self._clock.seconds(),
                                              self._batch_size)
        if not claim.items:
            return False
        # A backlog is worked off in larger batches (fewer writes per report); a trickle in
        # small ones (an alert waits for its whole batch).
        full = sum(len(item.reports) for item in claim.items) >= self._batch_size
        self._batch_size = min(MAX_BATCH_SIZE, self._batch_size * 2) if full else BATCH_SIZE
        rules = self._rules()
        try:
            # Repeats of known errors are settled from the caches at once; what needs git
            # is waited for a moment, and a request still waiting then is looked at again a
            # moment later, so that new errors never hold up the batch.
            entries: list[list[Optional[Prepared]]] = [
                [self._prepare_now(report, rules) for report in item.reports]
                for item in claim.items]
            await self._settle([(entry_list, column, report)
                                for item, entry_list in zip(claim.items, entries)
                                for column, (report, entry)
                                in enumerate(zip(item.reports, entry_list)) if entry is None],
                               rules)
        except BaseException:
            await self._reader.run(self._storage.release, claim)
            raise
        batch = [(item, [WAITING if entry is None else entry for entry in entry_list])
                 for item, entry_list in zip(claim.items, entries)]
        try:
            batch = await self._check_fixes(batch)
        except BaseException:
            await self._reader.run(self._storage.release, claim)
            raise
        queued = await self._write(claim, batch, rules)
        done = sum(isinstance(entry, (Occurrence, Dropped))
                   for _, prepared in batch for entry in prepared)
        self.processed += done
        log.debug("processed {done} reports of {requests} requests", done=done,
                  requests=len(batch))
        if queued:
            self._on_mail_queued()
        if any(WAITING in prepared for _, prepared in batch):
            self._clock.callLater(WAIT_FOR_GIT_SECONDS, self.wake)
        return True

    async def _probe_repository(self) -> None:
        """While the repository is unavailable, ask git (at most every few seconds: HEAD's
        lookup is trusted that long) whether it is back; once it is, the reports kept for
        it are due at once instead of at the end of their backoff."""
        assert self._blamer is not None
        try:
            await self._blamer.resolve(None)
        except RepositoryUnavailable:
            return
        self._repository_down = False
        await self._writer.run(self._storage.retry_postponed, self._clock.seconds())

    async def _settle(self, pending: list[tuple[list[Optional[Prepared]], int, Report]],
                      rules: Rules) -> None:
        """Fill in each pending entry with what becomes of its report, as far as git
        answers within WAIT_FOR_GIT_SECONDS (the rest stay None; git goes on, its answers
        cached); raise what preparing one of them raised.

        One report of each need (revision and routing inputs) is prepared at a time, and at
        most MAX_PREPARING in all: its repeats, and what is over the bound, stay None and are
        settled from the caches when their request is claimed again."""
        done: list[tuple[list[Optional[Prepared]], int, Prepared]] = []
        started = []
        for entries, column, report in pending:
            need = _need(report)
            if need in self._preparing or len(self._preparing) >= MAX_PREPARING:
                continue
            preparation = defer.ensureDeferred(self._prepare(report, rules))
            self._preparing.add(need)
            preparation.addBoth(self._prepared, need)
            started.append(preparation.addCallback(
                lambda outcome, entries=entries, column=column: done.append(
                    (entries, column, outcome))))
        if not started:
            return
        preparing = defer.gatherResults(started, consumeErrors=True)
        deadline: defer.Deferred = defer.Deferred()
        timer = self._clock.callLater(WAIT_FOR_GIT_SECONDS, deadline.callback, None)
        try:
            await defer.DeferredList([preparing, deadline], fireOnOneCallback=True,
                                     fireOnOneErrback=True, consumeErrors=True)
        finally:
            if timer.active():
                timer.cancel()
        preparing.addErrback(self._log_failure)  # a late failure: the request waits
        for entries, column, outcome in list(done):
            entries[column] = outcome

    def _prepared(self, outcome: Any, need: tuple) -> Any:
        self._preparing.discard(need)
        return outcome

    async def _write(self, claim: Claim, batch: list[tuple[InboxItem, list[Prepared]]],
                     rules: Rules) -> int:
        """Count, decide and queue mail for the batch; return the mails queued. The work is
        planned in a reader thread and written in a short transaction, so that the database
        thread stays free for acknowledging reports; if an error changed meanwhile, it is
        done again within one transaction."""
        planning = PlanningTransaction(self._storage.error_states, self._storage.hour_count,
                                       self._storage.issue_update, self._storage.resolutions)
        planning.plan.result = await self._reader.run(self._apply, planning, batch, rules)
        try:
            return await self._writer.run(self._storage.apply_plan, claim, planning.plan)
        except PlanConflict as conflict:
            log.info("processing again within one transaction: {why}", why=str(conflict))
            return await self._writer.run(
                self._storage.apply, claim,
                lambda transaction: self._apply(transaction, batch, rules))

    def _prepare_now(self, report: Report, rules: Rules) -> Optional[Prepared]:
        """What becomes of ``report`` when everything it needs is cached, else None."""
        mapped = self._sourcemaps.resolve_now(report) if self._sourcemaps is not None \
            else Mapped(report)
        if mapped is None:
            return None
        report = mapped.report
        if self._blamer is None:
            return self._outcome(report, self._route(report, EMPTY_INDEX, "", rules), None,
                                 mapped)
        resolved = self._blamer.resolved_now(report.revision)
        index = self._blamer.index_now(resolved[0]) if resolved is not None else None
        if resolved is None or index is None:
            return None
        route = self._route(report, index, resolved[0], rules)
        blamed = _to_blame(route)
        if blamed is None:
            return self._outcome(report, route, None, mapped)
        cell = notebook_cell(blamed.frame)
        assert blamed.repo_path is not None
        blame = self._blamer.blame_now(blamed.repo_path, blamed.frame.line_number,
                                       blamed.frame.text, blamed.frame.function_name,
                                       resolved) if cell is None \
            else self._blamer.cell_blame_now(blamed.repo_path, cell, resolved)
        return None if blame is None else self._outcome(report, route, blame, mapped)

    async def _prepare(self, report: Report, rules: Rules) -> Prepared:
        """What becomes of ``report``, asking git (and the stored source maps) for what is
        not cached."""
        mapped = await self._sourcemaps.resolve(report) if self._sourcemaps is not None \
            else Mapped(report)
        report = mapped.report
        if self._blamer is None:
            return self._outcome(report, self._route(report, EMPTY_INDEX, "", rules), None,
                                 mapped)
        try:
            sha, _ = await self._blamer.resolve(report.revision)
            route = self._route(report, await self._blamer.index_at(sha), sha, rules)
            blamed = _to_blame(route)
            blame: Union[Blame, BlameFailed, None] = None
            if blamed is not None:
                assert blamed.repo_path is not None
                cell = notebook_cell(blamed.frame)
                try:
                    blame = await (self._blamer.blame(blamed.repo_path, blamed.frame.line_number,
                                                      report.revision, blamed.frame.text,
                                                      blamed.frame.function_name)
                                   if cell is None else
                                   self._blamer.blame_cell(blamed.repo_path, cell,
                                                           report.revision))
                except BlameFailed as failure:
                    blame = failure
            return self._outcome(report, route, blame, mapped)
        except RepositoryUnavailable as unavailable:
            self._repository_down = True
            self.last_error = f"repository unavailable: {unavailable}"
            log.warn("repository unavailable, reports kept for later: {reason}",
                     reason=str(unavailable))
            return Postponed(str(unavailable))

    @staticmethod
    def _outcome(report: Report, route: Route, blame: Union[Blame, BlameFailed, None],
                 mapped: Mapped) -> Prepared:
        if route.dropped_reason is not None:
            return Dropped(route.dropped_reason)
        if mapped.notes:
            route = replace(route, explanation=mapped.notes + route.explanation)
        blamed = route.blamed
        if isinstance(blame, Blame) and blamed is not None and \
                (route.blamed_exception, route.blamed_index) in mapped.from_maps and \
                not map_agrees_with_repository(blamed.frame, blame):
            return Occurrence(report, replace(route, explanation=route.explanation + (
                f"not blamed: line {blamed.frame.line_number} of {blamed.repo_path} in the "
                f"source map ({blamed.frame.text.strip()!r}) is not the repository's at "
                f"{blame.revision[:12]} ({blame.line_text.strip()!r}); sent to the "
                "default contact",)), None)
        if isinstance(blame, BlameFailed):
            assert blamed is not None
            log.warn("cannot blame {path}:{line}: {reason}", path=blamed.repo_path,
                     line=frame_line(blamed.frame), reason=str(blame))
            return Occurrence(report, replace(route, explanation=route.explanation + (
                f"git blame failed ({blame}); sent to the default contact",)), None)
        if blame is not None and blame.explanation:
            route = replace(route, explanation=route.explanation + blame.explanation)
        cell = notebook_cell(blamed.frame) if blamed is not None else None
        if blame is not None and cell is not None:
            route = replace(route, explanation=route.explanation + (blame_note(blame, cell),))
        elif blame is not None and not route.key.text and blame.line_text.strip():
            # The client could not read its source line: the repository's text of the
            # blamed line keeps errors on different lines of one function apart.
            route = replace(route, key=replace(route.key, text=fold_whitespace(blame.line_text)))
        return Occurrence(report, route, blame)

    def _route(self, report: Report, index: routing.RepoIndex, sha: str, rules: Rules) -> Route:
        """:func:`routing.route`, reused for the repeats of an error (same inputs, same tree,
        same rules object): the frames of a reused route are those of the report first
        routed, their locals another occurrence's (see Route)."""
        key = (sha, routing.route_inputs(report))
        cached = self._routes.get(key)
        if cached is not None and cached[0] is rules:
            return cached[1]
        route = routing.route(report, index, rules, self._routing_settings)
        self._routes.put(key, (rules, route))
        return route

    async def _check_fixes(self, batch: list[tuple[InboxItem, list[Prepared]]]
                           ) -> list[tuple[InboxItem, list[Prepared]]]:
        """Each occurrence of an error resolved by a fix commit, told whether its report's
        revision contains that commit (a regression) or not (an old deployment)."""
        keys = list({entry.route.key for _, prepared in batch for entry in prepared
                     if isinstance(entry, Occurrence)})
        fixed = await self._reader.run(self._storage.fixes_to_check, keys) if keys else {}
        if not fixed:
            return batch
        checked = []
        for item, prepared in batch:
            entries: list[Prepared] = []
            for entry in prepared:
                resolution = fixed.get(entry.route.key) \
                    if isinstance(entry, Occurrence) else None
                if resolution is not None and resolution.fix_commit is not None:
                    assert isinstance(entry, Occurrence)
                    entry = replace(entry, fix_check=await self._check_fix(
                        entry.report.revision, resolution.fix_commit))
                entries.append(entry)
            checked.append((item, entries))
        return checked

    async def _check_fix(self, revision: Optional[str], fix_commit: str) -> FixCheck:
        if self._blamer is None:
            return FixCheck(fix_commit, None, None)
        return await self._blamer.check_fix(revision, fix_commit)

    # -- the database transaction (runs in the database writer's thread) --

    def _apply(self, transaction: Transaction,
               batch: list[tuple[InboxItem, list[Prepared]]], rules: Rules) -> int:
        """Count, decide and queue alerts for a batch of requests; return the outbox entries
        due now."""
        now = self._clock.seconds()
        counted: list[tuple[Occurrence, float]] = []
        dropped: Counter[str] = Counter()
        for item, prepared in batch:
            if WAITING in prepared:  # all of a request's reports are processed together
                transaction.postpone(item.inbox_id, item.attempts,
                                     now + recheck_delay(now - item.received_at),
                                     "waiting for git")
                continue
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
                    dropped["dropped: " + entry.reason.split(":")[0]] += 1
                else:
                    assert isinstance(entry, Occurrence)
                    counted.append((entry, item.received_at))
            transaction.remove_from_inbox(item.inbox_id)
        for name, count in sorted(dropped.items()):   # one order for every server
            transaction.bump_stat(name, count)
        states = transaction.error_states(list({occurrence.route.key: None
                                                for occurrence, _ in counted}))
        resolutions = transaction.resolutions([state.error_id for state in states.values()])
        tallies: dict[ErrorKey, ErrorTally] = {}
        for occurrence, when in counted:
            tally = tallies.get(occurrence.route.key)
            if tally is None:
                state = states.get(occurrence.route.key)
                tally = tallies[occurrence.route.key] = ErrorTally(
                    state, when, resolutions.get(state.error_id) if state else None)
            tally.add(occurrence, when, now, rules, self._alert_settings, self._recipients)
        ids = transaction.save_errors([tally.record() for tally in tallies.values()])
        for error_id, tally in zip(ids, tallies.values()):
            if tally.resolution_changed and tally.resolution is not None:
                transaction.save_resolution(error_id, tally.resolution)
        transaction.count_many_occurrences([
            (error_id, when, int(occurrences))
            for error_id, tally in zip(ids, tallies.values())
            for when, occurrences in tally.days.values()])
        return sum(self._save(transaction, error_id, tally, rules, now)
                   for error_id, tally in zip(ids, tallies.values()))

    def _save(self, transaction: Transaction, error_id: int, tally: ErrorTally, rules: Rules,
              now: float) -> int:
        """Queue the alerts of one error on their channels (and a note about rejected
        recipients); return the outbox entries due now."""
        return (self._alerts.queue_error(transaction, tally, error_id, rules, now)
                + self._alerts.queue_notes(transaction, self._rejection_notes(tally), now))

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
                                   [contact], self._alerts.composer.sender)]


def recheck_delay(waited: float) -> float:
    """How soon a request that has waited ``waited`` seconds for git is claimed again."""
    return min(MAX_WAIT_RECHECK_SECONDS, max(WAIT_FOR_GIT_SECONDS, waited / 4))


def _need(report: Report) -> tuple:
    """What preparing ``report`` asks of git and the source maps: reports with equal needs
    are answered by the same cached blames."""
    return (report.revision, routing.route_inputs(report),
            tuple(frame.column_number for frame in report.traceback))


def _to_blame(route: Route) -> Optional[RoutedFrame]:
    """The frame of the repository ``route`` needs blamed, if any."""
    blamed = route.blamed
    if route.dropped_reason is not None or blamed is None or blamed.repo_path is None:
        return None
    return blamed
