"""What the other stages need from the database: one interface, one backend per module.

Every method blocks: call it through a thread pool (the ``db-write`` pool for anything that
writes, so that one thread writes at a time; the ``db-read`` pool for pages and health).
A backend raises :class:`~flawless.server.storage.records.StorageUnavailable` when the
database refuses a write (disk full, locked, gone): nothing of that write is kept.

Several servers may share one database (PostgreSQL): each is named by ``server_id``; a batch
of the inbox is claimed by one of them at a time, and an outbox entry is leased to the one
delivering it. ``tests/storage/`` runs every method against every backend.
"""

from __future__ import annotations

from typing import Any, Callable, ContextManager, Optional, Protocol, Sequence

from flawless.report import Report
from flawless.server.core.model import ErrorKey, ErrorRecord, ErrorState, Resolution
from flawless.server.storage.records import (ChannelState, Delivery, HeldEntry, InboxItem,
                                             IssueLink, NewEntry, OutboxMail, ServerInfo,
                                             SourceMapFile,
                                             WeekTotals)


class Transaction(Protocol):
    """The writes of one atomic unit of processing: all of them are kept, or none."""

    def error_state(self, key: ErrorKey) -> Optional[ErrorState]:
        """:meth:`error_states` of one error."""

    def error_states(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, ErrorState]:
        """Counts and alert state of the errors with these identities that were seen
        before; where servers share the database, no other transaction changes them until
        this one ends (ask for all of a transaction's errors at once, before writing)."""

    def save_error(self, record: ErrorRecord) -> int:
        """Insert or update an error; return its id. When its latest occurrence moves to a
        later week, the previous last report is kept for its week (:meth:`Storage.
        week_report`); when its developer or known state changes, its weekly counts move to
        the new developer's totals."""

    def save_errors(self, records: Sequence[ErrorRecord]) -> list[int]:
        """:meth:`save_error` of many errors at once; their ids in the same order."""

    def resolutions(self, error_ids: Sequence[int]) -> dict[int, Resolution]:
        """How these errors were resolved and what became of it (those ever resolved)."""

    def save_resolution(self, error_id: int, resolution: Resolution) -> None:
        """Store how the error is resolved, replacing what was stored."""

    def note_fix_trailer(self, error_id: int, fix_commit: str) -> bool:
        """Remember that a Fixes: trailer of ``fix_commit`` names the error; True the first
        time, so that each trailer resolves its error once (a reopened error stays open)."""

    def count_occurrences(self, error_id: int, when: float, occurrences: int) -> None:
        """Add occurrences to the error's week and day counters, and to the week's totals
        of its developer (occurrences, and distinct errors when it is the error's first
        occurrence that week)."""

    def count_many_occurrences(self, counts: Sequence[tuple[int, float, int]]) -> None:
        """:meth:`count_occurrences` of many (error id, when, occurrences) at once."""

    def queue_entry(self, entry: NewEntry, now: float,
                    held_until: Optional[float] = None) -> int:
        """Store an entry for delivery (or, with ``held_until``, for the digest due then);
        return its id."""

    def mark_digested(self, entry_ids: Sequence[int], digest_id: int, now: float) -> int:
        """Record held entries as carried by the digest ``digest_id`` (their bodies go);
        return how many were still held (another server sharing the database may have
        carried some already)."""

    def hour_count(self, channel: str, destination: str, hour_start: float) -> int:
        """Entries admitted to a destination (or ``*``: the whole channel) in an hour."""

    def count_in_hour(self, channel: str, destination: str, hour_start: float) -> None:
        """Add one admitted entry to a destination's (or ``*``'s) count for an hour."""

    def issue_update(self, error_id: int, channel: str) -> Optional[tuple[float, int]]:
        """(when, at which count) an error's issue in ``channel`` was last queued an update."""

    def set_issue_update(self, error_id: int, channel: str, now: float, count: int) -> None:
        """Remember that an update of an error's issue was queued now, at ``count``."""

    def postpone(self, inbox_id: int, attempts: int, next_attempt_at: float,
                 error: str) -> None:
        """Leave a request's reports in the inbox for a later attempt."""

    def remove_from_inbox(self, inbox_id: int) -> None:
        """Mark a request's reports processed (they live on in their errors' counts)."""

    def bump_stat(self, name: str, by: int = 1) -> None:
        """Add to a named counter."""


class Claim(Protocol):
    """Inbox requests taken for processing: applied (and removed) or released."""

    items: Sequence[InboxItem]


class Storage(Protocol):
    """The database of a flawless server (or of several sharing it)."""

    backend: str          # "sqlite", "postgresql"
    server_id: str        # this process, among the servers sharing the database
    lease_seconds: float  # how long an outbox entry taken for delivery stays this server's
    writer_threads: int   # how many threads of the db-write pool are worth having

    def describe(self) -> dict[str, Any]:
        """The database, for /check_health (never a password)."""

    def wakeups(self) -> Optional["Wakeups"]:
        """News from the other servers sharing the database, or None when none can."""

    def close(self) -> None:
        """Let go of the database (its connections)."""

    def room(self) -> Optional[int]:
        """Bytes a write can still use (free on the disk and inside the database), or None
        where the database's disk cannot be seen (PostgreSQL on another machine)."""

    # -- ingest --

    def add_to_inbox(self, payloads: Sequence[tuple[bytes, int]], received_at: float
                     ) -> list[int]:
        """Store accepted requests durably in one transaction; return their inbox ids."""

    # -- processing --

    def claim_inbox(self, now: float, limit: int) -> Claim:
        """Requests whose next attempt is due, oldest first, holding about ``limit``
        reports; no other processor gets them until :meth:`apply` or :meth:`release`.
        An empty claim holds nothing and needs neither."""

    def apply(self, claim: Claim, work: Callable[[Transaction], Any]) -> Any:
        """Run ``work(transaction)`` and commit it with the end of ``claim``; return what
        ``work`` returned. On any failure nothing of it is kept and the claim is released.
        ``work`` may run more than once (when a concurrent server's commit forces a retry):
        it must do nothing but read and write through its transaction. The commit survives
        a crash of the process, and a power loss once a durable write follows it (leasing
        mail in :meth:`due_mail` is one, so nothing it queued leaves the server before)."""

    def error_states(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, ErrorState]:
        """Stored state of these errors (those seen before), read outside any transaction:
        what a plan is worked out from (see plan.py)."""

    def hour_count(self, channel: str, destination: str, hour_start: float) -> int:
        """Entries admitted to a destination in an hour, read outside any transaction (a
        plan's replay checks it is still so)."""

    def issue_update(self, error_id: int, channel: str) -> Optional[tuple[float, int]]:
        """When an error's issue was last queued an update, read outside any transaction."""

    def apply_plan(self, claim: Claim, plan: Any) -> Any:
        """Write a plan worked out from ``claim`` as :meth:`apply` would have, and end the
        claim; raise plan.PlanConflict, writing nothing and keeping the claim (for
        :meth:`apply`), when an error it read changed meanwhile."""

    def retry_postponed(self, now: float) -> None:
        """Make every postponed request due now (what kept them is gone)."""

    def release(self, claim: Claim) -> None:
        """Give the claimed requests back untouched."""

    def transaction(self) -> ContextManager[Transaction]:
        """An atomic write outside processing (a notice to queue)."""

    # -- delivery --

    def due_mail(self, now: float, limit: int) -> list[OutboxMail]:
        """Undelivered entries whose next attempt is due, oldest first, but those held for a
        digest and those of a destination that asked to wait; leased to this server for
        ``lease_seconds`` (entries under another server's lease are left alone). Leasing is
        a durable write: every commit before it survives a power loss."""

    def extend_leases(self, now: float) -> int:
        """Keep this server's leases for another ``lease_seconds``; return how many."""

    def release_leases(self) -> None:
        """Give back every entry this server holds."""

    def mark_started(self, mail_id: int, now: float) -> None:
        """Record that a delivery of the entry begins (``interrupted`` from then on, until
        its outcome is recorded)."""

    def mark_sent(self, mail_id: int, now: float) -> bool:
        """Record a successful delivery so the entry is never sent again; False (nothing
        recorded) when this server no longer holds its lease."""

    def mark_failed(self, mail_id: int, attempts: int, next_attempt_at: float,
                    error: str) -> bool:
        """Record a failed delivery and when to try again, giving the lease back; the
        entry's destination waits until then too. False (nothing recorded) when this server
        no longer holds its lease."""

    def held_due(self, now: float, limit: int) -> list[HeldEntry]:
        """Entries held back by the hourly bounds whose hour is over, by channel and
        destination, oldest first."""

    # -- issue trackers --

    def issue_link(self, channel: str, destination: str,
                   fingerprint: str) -> Optional[IssueLink]:
        """The issue of an error in a tracker, if one is known."""

    def save_issue_links(self, links: Sequence[IssueLink], now: float) -> None:
        """Remember (or correct) the issues of errors."""

    def forget_issue_link(self, link: IssueLink) -> None:
        """Forget an issue that is gone (deleted, or moved away)."""

    def issue_links(self, fingerprint: str) -> list[IssueLink]:
        """Every known issue of one error."""

    # -- the servers sharing the database --

    def heartbeat(self, now: float, started_at: float, version: str) -> None:
        """Tell the other servers this one is alive."""

    def live_servers(self, now: float) -> list[ServerInfo]:
        """The servers whose heartbeat is recent (this one included)."""

    # -- source maps --

    def save_sourcemaps(self, release: str, maps: Sequence[SourceMapFile], now: float) -> None:
        """Store the source maps of one release's build, replacing any of the same URLs."""

    def sourcemap(self, release: str, urls: Sequence[str]) -> Optional[SourceMapFile]:
        """The source map of a script of ``release``, under the first of ``urls`` that has
        one, or None."""

    # -- retention and health --

    def prune(self, before: float) -> int:
        """Forget counts, errors, delivered mail and source maps older than ``before``;
        return errors removed."""

    def inbox_depth(self) -> int:
        """How many accepted reports are not processed yet."""

    def oldest_waiting(self) -> Optional[float]:
        """When the oldest report not processed yet was received, or None."""

    def outbox_depth(self) -> int:
        """How many entries wait for delivery."""

    def channel_states(self) -> list[ChannelState]:
        """Each channel with undelivered entries: how many, held, failing, the last error."""

    def stats(self) -> dict[str, int]:
        """Every named counter."""

    # -- the dashboard --

    def find_error(self, key: ErrorKey) -> Optional[ErrorRecord]:
        """The error with this identity, if seen before."""

    def errors_at_line(self, filename: str, function_name: str,
                       line_number: int) -> list[ErrorRecord]:
        """Errors at one file, function and line number, most recently seen first (ten at
        most)."""

    def week_errors(self, week: str, include_known: bool = True, offset: int = 0,
                    limit: int = 100, query: str = "") -> list[tuple[ErrorRecord, int]]:
        """Errors seen in the week starting ``week``, with their count in that week, most
        frequent first (ties by id): ``limit`` of them from ``offset``. ``query`` keeps
        those whose file, function, line text, exception type, developer name or address
        contains it (case-insensitive), looking at the week's most frequent errors only
        (a bounded number)."""

    def week_totals(self, week: str, include_known: bool = True) -> WeekTotals:
        """The week's occurrences, distinct errors and blamed developers, from kept counts
        (never a sum over the week's errors)."""

    def developer_week_totals(self, week: str, author_email: Optional[str],
                              include_known: bool = True) -> tuple[int, int]:
        """(occurrences, distinct errors) of one developer (None: blamed on nobody) in a
        week, from kept counts."""

    def week_report(self, error_id: int, week: str) -> Optional[Report]:
        """The last report of an error in a past week, when one was kept."""

    def error_week_count(self, error_id: int, week: str) -> int:
        """Occurrences of an error in one week."""

    def resolutions(self, error_ids: Sequence[int]) -> dict[int, Resolution]:
        """How these errors were resolved and what became of it (those ever resolved)."""

    def fixes_to_check(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, Resolution]:
        """The errors among ``keys`` that are resolved by a fix commit, with their
        resolution (whether a report's revision contains the fix is for git to say)."""

    def daily_counts(self, error_id: int, since_day: str) -> list[tuple[str, int]]:
        """(day, count) of one error since a day, oldest first."""

    def deliveries(self, error_id: int, limit: int = 50) -> list[Delivery]:
        """Where the alerts of one error went (or are going), newest first."""

    def author_errors(self, email: str, offset: int = 0, limit: int = 100
                      ) -> list[ErrorRecord]:
        """Errors blamed on ``email`` (case-insensitive), most recently seen first: ``limit``
        of them from ``offset``."""

    def author_weekly_totals(self, email: str, limit: int = 100
                             ) -> list[tuple[str, int, int]]:
        """(week start, occurrences, distinct errors) of the errors blamed on ``email``,
        newest week first, at most ``limit`` weeks, from kept counts."""


class Wakeups(Protocol):
    """Notices from other servers that there is work: ``"inbox"`` (reports stored) or
    ``"outbox"`` (alerts queued). They only wake a server early: it polls all the same."""

    def wait(self, timeout: float) -> list[str]:
        """Block up to ``timeout`` seconds; return the notices that arrived (maybe none)."""

    def close(self) -> None:
        """Stop listening."""
