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

from flawless.server.core.model import ErrorKey, ErrorRecord, ErrorState
from flawless.server.storage.records import InboxItem, OutboxMail, ServerInfo


class Transaction(Protocol):
    """The writes of one atomic unit of processing: all of them are kept, or none."""

    def error_states(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, ErrorState]:
        """Counts and alert state of the errors with these identities that were seen
        before; where servers share the database, no other transaction changes them until
        this one ends (ask for all of a transaction's errors at once, before writing)."""

    def save_error(self, record: ErrorRecord) -> int:
        """Insert or update an error; return its id."""

    def save_errors(self, records: Sequence[ErrorRecord]) -> list[int]:
        """:meth:`save_error` of many errors at once; their ids in the same order."""

    def count_occurrences(self, error_id: int, when: float, occurrences: int) -> None:
        """Add occurrences to the error's week and day counters."""

    def count_many_occurrences(self, counts: Sequence[tuple[int, float, int]]) -> None:
        """:meth:`count_occurrences` of many (error id, when, occurrences) at once."""

    def queue_mail(self, error_id: Optional[int], now: float, message: bytes,
                   recipients: Sequence[str]) -> int:
        """Store a rendered mail for delivery; return its id."""

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

    def apply_plan(self, claim: Claim, plan: Any) -> Any:
        """Write a plan worked out from ``claim`` as :meth:`apply` would have, and end the
        claim; raise plan.PlanConflict, writing nothing and keeping the claim (for
        :meth:`apply`), when an error it read changed meanwhile."""

    def release(self, claim: Claim) -> None:
        """Give the claimed requests back untouched."""

    def transaction(self) -> ContextManager[Transaction]:
        """An atomic write outside processing (a notice to queue)."""

    # -- delivery --

    def due_mail(self, now: float, limit: int) -> list[OutboxMail]:
        """Undelivered mail whose next attempt is due, oldest first, leased to this server
        for ``lease_seconds`` (entries under another server's lease are left alone).
        Leasing is a durable write: every commit before it survives a power loss."""

    def extend_leases(self, now: float) -> int:
        """Keep this server's leases for another ``lease_seconds``; return how many."""

    def release_leases(self) -> None:
        """Give back every entry this server holds."""

    def mark_sent(self, mail_id: int, now: float) -> bool:
        """Record a successful delivery so the mail is never sent again; False (nothing
        recorded) when this server no longer holds its lease."""

    def mark_failed(self, mail_id: int, attempts: int, next_attempt_at: float,
                    error: str) -> bool:
        """Record a failed delivery and when to try again, giving the lease back; False
        (nothing recorded) when this server no longer holds its lease."""

    # -- the servers sharing the database --

    def heartbeat(self, now: float, started_at: float, version: str) -> None:
        """Tell the other servers this one is alive."""

    def live_servers(self, now: float) -> list[ServerInfo]:
        """The servers whose heartbeat is recent (this one included)."""

    # -- retention and health --

    def prune(self, before: float) -> int:
        """Forget counts, errors and delivered mail older than ``before``; return errors
        removed."""

    def inbox_depth(self) -> int:
        """How many accepted reports are not processed yet."""

    def oldest_waiting(self) -> Optional[float]:
        """When the oldest report not processed yet was received, or None."""

    def outbox_depth(self) -> int:
        """How many mails wait for delivery."""

    def stats(self) -> dict[str, int]:
        """Every named counter."""

    # -- the dashboard --

    def find_error(self, key: ErrorKey) -> Optional[ErrorRecord]:
        """The error with this identity, if seen before."""

    def errors_at_line(self, filename: str, function_name: str,
                       line_number: int) -> list[ErrorRecord]:
        """Errors at one file, function and line number, most recently seen first."""

    def week_errors(self, week: str, include_known: bool = True
                    ) -> list[tuple[ErrorRecord, int]]:
        """The errors seen in the week starting ``week``, with their count in that week."""

    def daily_counts(self, error_id: int, since_day: str) -> list[tuple[str, int]]:
        """(day, count) of one error since a day, oldest first."""

    def author_errors(self, email: str, limit: int = 500) -> list[ErrorRecord]:
        """Every error blamed on ``email`` (case-insensitive), most recently seen first."""

    def author_weekly_totals(self, email: str) -> list[tuple[str, int]]:
        """(week start, occurrences) of the errors blamed on ``email``, newest first."""


class Wakeups(Protocol):
    """Notices from other servers that there is work: ``"inbox"`` (reports stored) or
    ``"outbox"`` (alerts queued). They only wake a server early: it polls all the same."""

    def wait(self, timeout: float) -> list[str]:
        """Block up to ``timeout`` seconds; return the notices that arrived (maybe none)."""

    def close(self) -> None:
        """Stop listening."""
