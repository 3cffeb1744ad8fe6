"""What the other stages need from the database: one interface, one backend per module.

Every method blocks: call it through a thread pool (the ``db-write`` pool for anything that
writes, so that one thread writes at a time; the ``db-read`` pool for pages and health).
A backend raises :class:`~flawless.server.storage.records.StorageUnavailable` when the
database refuses a write (disk full, locked, gone): nothing of that write is kept.
"""

from __future__ import annotations

from typing import Any, ContextManager, Optional, Protocol, Sequence

from flawless.server.core.model import ErrorKey, ErrorRecord, ErrorState
from flawless.server.storage.records import InboxItem, OutboxMail, SourceMapFile


class Transaction(Protocol):
    """The writes of one atomic unit of processing: all of them are kept, or none."""

    def error_state(self, key: ErrorKey) -> Optional[ErrorState]:
        """Counts and alert state of the error with this identity, if seen before."""

    def save_error(self, record: ErrorRecord) -> int:
        """Insert or update an error; return its id."""

    def count_occurrences(self, error_id: int, when: float, occurrences: int) -> None:
        """Add occurrences to the error's week and day counters."""

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

    # -- ingest --

    def add_to_inbox(self, payloads: Sequence[tuple[bytes, int]], received_at: float
                     ) -> list[int]:
        """Store accepted requests durably in one transaction; return their inbox ids."""

    # -- processing --

    def claim_inbox(self, now: float, limit: int) -> Claim:
        """Requests whose next attempt is due, oldest first, holding about ``limit``
        reports; no other processor gets them until :meth:`apply` or :meth:`release`."""

    def apply(self, claim: Claim, work: Any) -> Any:
        """Run ``work(transaction)`` and commit it with the end of ``claim``; return what
        ``work`` returned. On any failure nothing of it is kept and the claim is released."""

    def release(self, claim: Claim) -> None:
        """Give the claimed requests back untouched."""

    def transaction(self) -> ContextManager[Transaction]:
        """An atomic write outside processing (a notice to queue)."""

    # -- delivery --

    def due_mail(self, now: float, limit: int) -> list[OutboxMail]:
        """Undelivered mail whose next attempt is due, oldest first."""

    def mark_sent(self, mail_id: int, now: float) -> None:
        """Record a successful delivery so the mail is never sent again."""

    def mark_failed(self, mail_id: int, attempts: int, next_attempt_at: float,
                    error: str) -> None:
        """Record a failed delivery and when to try again."""

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
