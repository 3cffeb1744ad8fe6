"""What every SQL backend shares: the statements, and how rows become records.

The statements are written once, in the SQL that SQLite and PostgreSQL both speak, with
``?`` placeholders and named columns (a row is read by column name only). A backend
subclasses :class:`SqlTransaction` and :class:`SqlStorage` and supplies what differs: how a
statement runs (:meth:`SqlTransaction.execute` and ``execute_many``, which may rewrite it
for its dialect), how an inserted row's id comes back, the error a duplicate key raises,
and the row locks (``LOCK_ERRORS``, ``LOCK_ROWS_SKIP_LOCKED``) that let several servers
share one database.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

import msgspec

from flawless.report import Report
from flawless.server.core.calendar import day_of, week_start, week_timestamp
from flawless.server.core.model import ErrorKey, ErrorRecord, ErrorState, Resolution
from flawless.server.storage.plan import Plan, PlanConflict
from flawless.server.storage.records import (ChannelState, Delivery, HeldEntry, IssueLink,
                                             NewEntry, OutboxMail, ServerInfo, SourceMapFile,
                                             StorageUnavailable, WeekTotals, decode_report,
                                             encode_report)

# An outbox entry taken for delivery is leased to its server for this long (by default:
# outbox_lease_seconds); the holder extends the lease while it delivers, so another server
# takes it over this long after the holder died.
LEASE_SECONDS = 30.0
# A server is alive while its heartbeat is this recent; rows silent for a day are removed.
ALIVE_SECONDS = 30.0
FORGET_SERVERS_SECONDS = 86400.0
MAX_ERROR_TEXT = 1000
STATES_PER_QUERY = 300   # three parameters each: well under SQLite's limit of 32766
IDS_PER_QUERY = 900
# a week's filter looks at this many of its most frequent errors, so its work is bounded
FILTER_SCAN_LIMIT = 20000

ERROR_COLUMNS = (
    "id", "filename", "function_name", "text", "line_number", "exception_type", "blamed",
    "author_name", "author_email", "commit_sha", "commit_summary", "commit_timestamp",
    "blame_revision", "blame_at_requested", "count", "first_seen", "last_seen", "last_report",
    "known", "alerted_at", "recipients", "explanation",
)
SAVED_COLUMNS = ERROR_COLUMNS[1:]
_SELECT_ERRORS = f"SELECT {', '.join(ERROR_COLUMNS)} FROM errors"
_UPDATE_ERROR = f"UPDATE errors SET {', '.join(f'{column} = ?' for column in SAVED_COLUMNS)} " \
                "WHERE id = ?"
_INSERT_ERROR = f"INSERT INTO errors ({', '.join(SAVED_COLUMNS)}) " \
                f"VALUES ({', '.join('?' * len(SAVED_COLUMNS))})"
_JSON = msgspec.json.Encoder()
RESOLUTION_COLUMNS = (
    "resolved_at", "source", "fix_commit", "fix_author_name", "fix_author_email",
    "regressed_at", "regressed_in", "old_deployments", "old_deployment_revision",
    "old_deployment_seen",
)


def resolution_from_row(row: Any) -> Resolution:
    """The resolution of an ``error_resolutions`` row (read by column name)."""
    return Resolution(**{column: row[column] for column in RESOLUTION_COLUMNS})


@dataclass(frozen=True)
class TableRows:
    """The rows of one table, moving from one database to another."""

    table: str
    columns: tuple[str, ...]
    rows: Iterable[tuple[Any, ...]]


def new_server_id() -> str:
    """A name for this process among the servers sharing a database (host, pid, random)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def error_from_row(row: Any) -> ErrorRecord:
    """The record of an ``errors`` row (read by column name)."""
    blame_at_requested = row["blame_at_requested"]
    return ErrorRecord(
        error_id=int(row["id"]),
        key=ErrorKey(row["filename"], row["function_name"], row["text"]),
        line_number=row["line_number"], exception_type=row["exception_type"],
        blamed=bool(row["blamed"]), author_name=row["author_name"],
        author_email=row["author_email"], commit_sha=row["commit_sha"],
        commit_summary=row["commit_summary"], commit_timestamp=row["commit_timestamp"],
        blame_revision=row["blame_revision"],
        blame_at_requested=None if blame_at_requested is None else bool(blame_at_requested),
        count=row["count"], first_seen=row["first_seen"], last_seen=row["last_seen"],
        last_report=decode_report(row["last_report"]), known=bool(row["known"]),
        alerted_at=row["alerted_at"], recipients=tuple(json.loads(row["recipients"] or "[]")),
        explanation=tuple(json.loads(row["explanation"] or "[]")),
    )


def saved_values(record: ErrorRecord) -> tuple[Any, ...]:
    """The values of :data:`SAVED_COLUMNS` for ``record``."""
    return (
        record.key.filename, record.key.function_name, record.key.text, record.line_number,
        record.exception_type, int(record.blamed), record.author_name, record.author_email,
        record.commit_sha, record.commit_summary, record.commit_timestamp,
        record.blame_revision,
        None if record.blame_at_requested is None else int(record.blame_at_requested),
        record.count, record.first_seen, record.last_seen, encode_report(record.last_report),
        int(record.known), record.alerted_at, _JSON.encode(record.recipients).decode(),
        _JSON.encode(record.explanation).decode(),
    )


def migrate(version: int, migrations: Sequence[str], execute: Callable[[str], Any],
            where: str) -> None:
    """Run the statements taking a schema from ``version`` to ``len(migrations)`` (none
    holds a ";"); refuse a schema newer than this flawless knows."""
    if version > len(migrations):
        raise StorageUnavailable(f"{where} has schema version {version}, newer than this "
                                 f"flawless knows ({len(migrations)}): upgrade flawless")
    for number in range(version, len(migrations)):
        for statement in migrations[number].split(";"):
            if statement.strip():
                execute(statement)


def placeholders(count: int) -> str:
    """``?, ?, ...`` for ``count`` values."""
    return ", ".join("?" * count)


class SqlTransaction:
    """The writes of one atomic unit (see :class:`~.interface.Transaction`)."""

    LOCK_ERRORS = ""   # appended to the SELECT of errors (``e``) a transaction will update
    DUPLICATE_KEY: tuple[type[Exception], ...] = ()   # what inserting a stored key raises

    def execute(self, sql: str, *args: Any) -> Any:
        """Run one statement inside the transaction; return its cursor."""
        raise NotImplementedError

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement once per row of values; return the rows it changed."""
        raise NotImplementedError

    def insert(self, sql: str, *args: Any) -> int:
        """Run one INSERT into a table with an ``id`` column; return the new row's id."""
        return self.insert_many(sql, [args])[0]

    def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        """Run one INSERT into a table with an ``id`` column once per row of values;
        return the new rows' ids in the same order."""
        raise NotImplementedError

    def announce(self, what: str) -> None:
        """Tell the other servers sharing the database, once this commits, that there is
        work (``inbox`` or ``outbox``); nobody to tell by default."""

    def error_state(self, key: ErrorKey) -> Optional[ErrorState]:
        """:meth:`error_states` of one error."""
        return self.error_states([key]).get(key)

    def error_states(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, ErrorState]:
        """Counts and alert state of the errors with these identities that were seen
        before; where servers share the database, they stay locked to this transaction."""
        return self.read_error_states(keys, self.LOCK_ERRORS)

    def read_error_states(self, keys: Sequence[ErrorKey], lock: str = ""
                          ) -> dict[ErrorKey, ErrorState]:
        """:meth:`error_states`, the rows locked by ``lock`` (none by default). Rows are
        locked in the order of their ids, the order every server updates them in."""
        ordered = sorted(set(keys))
        states = {}
        for start in range(0, len(ordered), STATES_PER_QUERY):
            chunk = ordered[start:start + STATES_PER_QUERY]
            # A join, not a row-value IN: SQLite would scan every error for that.
            rows = self.execute(
                "SELECT e.id, e.filename, e.function_name, e.text, e.count, e.first_seen, "
                "e.last_seen, e.alerted_at, e.recipients FROM "
                f"(VALUES {', '.join(['(?, ?, ?)'] * len(chunk))}) AS k JOIN errors e "
                "ON e.filename = k.column1 AND e.function_name = k.column2 "
                "AND e.text = k.column3 ORDER BY e.id" + lock,
                *(part for key in chunk
                  for part in (key.filename, key.function_name, key.text))).fetchall()
            for row in rows:
                states[ErrorKey(row["filename"], row["function_name"], row["text"])] = \
                    ErrorState(int(row["id"]), row["count"], row["first_seen"],
                               row["last_seen"], row["alerted_at"],
                               tuple(json.loads(row["recipients"] or "[]")))
        return states

    def save_error(self, record: ErrorRecord) -> int:
        """Insert or update an error; return its id."""
        return self.save_errors([record])[0]

    def save_errors(self, records: Sequence[ErrorRecord]) -> list[int]:
        """:meth:`save_error` of many errors at once; their ids in the same order."""
        self._update_errors([record for record in records if record.error_id], None)
        return self._with_inserted(records)

    def save_checked(self, records: Sequence[ErrorRecord], plan: Plan) -> list[int]:
        """:meth:`save_errors` of a plan: each stored error must still have the count the
        plan read, and a new one must still be new; else PlanConflict."""
        self._update_errors([record for record in records if record.error_id], plan)
        try:
            return self._with_inserted(records)
        except self.DUPLICATE_KEY as error:
            raise PlanConflict(f"an error was stored meanwhile: {error}") from None

    def _update_errors(self, records: Sequence[ErrorRecord], plan: Optional[Plan]) -> None:
        """Rewrite stored errors, in the order of their ids; with a plan, only those still
        at the count it read. When an error's latest occurrence moves to a later week, the
        last report of the earlier week is kept; when its developer or known state changes,
        its weekly counts move to the new developer's totals."""
        records = sorted(records, key=lambda record: record.error_id)
        before = self._stored(record.error_id for record in records)
        self._keep_week_reports(records, before)
        if plan is None:
            self.execute_many(_UPDATE_ERROR, [saved_values(record) + (record.error_id,)
                                              for record in records])
        else:
            changed = self.execute_many(
                _UPDATE_ERROR + " AND count = ?",
                [saved_values(record) + (record.error_id, plan.read[record.key].count)
                 for record in records])
            if changed != len(records):
                raise PlanConflict(f"{len(records) - changed} errors changed meanwhile")
        self._move_week_totals([(record, before[record.error_id]) for record in records
                                if record.error_id in before and before[record.error_id][1:]
                                != (record.author_email, int(record.known))])

    def _stored(self, error_ids: Iterable[int]) -> dict[int, tuple[float, Optional[str], int]]:
        """(last seen, developer's address, known) of stored errors, by id."""
        ids, found = list(error_ids), {}
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start:start + IDS_PER_QUERY]
            for row in self.execute("SELECT id, last_seen, author_email, known FROM errors "
                                    f"WHERE id IN ({placeholders(len(chunk))})", *chunk):
                found[int(row["id"])] = (row["last_seen"], row["author_email"],
                                         int(row["known"]))
        return found

    def _keep_week_reports(self, records: Sequence[ErrorRecord],
                           before: dict[int, tuple[float, Optional[str], int]]) -> None:
        """Keep the last report of an error's week when its latest occurrence moves on."""
        self.execute_many(
            "INSERT INTO week_reports (error_id, week_start, last_seen, report) "
            "SELECT id, ?, last_seen, last_report FROM errors WHERE id = ? "
            "ON CONFLICT (error_id, week_start) DO UPDATE SET "
            "last_seen = excluded.last_seen, report = excluded.report",
            [(week_start(before[record.error_id][0]), record.error_id)
             for record in records if record.error_id in before
             and week_start(before[record.error_id][0]) != week_start(record.last_seen)])

    def _move_week_totals(self, moves: Sequence[tuple[ErrorRecord, tuple[float, Optional[str],
                                                                          int]]]) -> None:
        """Move the weekly counts of errors blamed anew (or made known) to their new
        developer's totals."""
        for record, (_, author, known) in moves:
            weeks = self.execute("SELECT week_start, count FROM error_weeks WHERE error_id = ?",
                                 record.error_id).fetchall()
            self.execute_many(
                "UPDATE week_authors SET count = count - ?, errors = errors - 1 "
                "WHERE week_start = ? AND author = LOWER(?) AND known = ?",
                [(row["count"], row["week_start"], author or "", known) for row in weeks])
            self._add_week_totals([(row["week_start"], record.author_email, int(record.known),
                                    row["count"], 1) for row in weeks])

    def _add_week_totals(self, totals: Sequence[tuple[str, Optional[str], int, int, int]]
                         ) -> None:
        """Add (week, developer's address, known, occurrences, distinct errors) to the
        weeks' totals (in one order for every server: their rows are shared)."""
        self.execute_many(
            "INSERT INTO week_authors (week_start, author, known, count, errors) "
            "VALUES (?, LOWER(?), ?, ?, ?) ON CONFLICT (week_start, author, known) DO UPDATE "
            "SET count = week_authors.count + excluded.count, "
            "errors = week_authors.errors + excluded.errors",
            sorted((week, author or "", known, count, errors)
                   for week, author, known, count, errors in totals))

    def _with_inserted(self, records: Sequence[ErrorRecord]) -> list[int]:
        """The ids of ``records``, inserting those that have none (in the order of their
        keys, the order every server inserts them in)."""
        new = sorted((record for record in records if not record.error_id),
                     key=lambda record: record.key)
        inserted = dict(zip((record.key for record in new), self.insert_many(
            _INSERT_ERROR, [saved_values(record) for record in new])))
        return [record.error_id or inserted[record.key] for record in records]

    def resolutions(self, error_ids: Sequence[int]) -> dict[int, Resolution]:
        """How these errors were resolved and what became of it (those ever resolved)."""
        found = {}
        ids = list(error_ids)
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start:start + IDS_PER_QUERY]
            for row in self.execute(
                    f"SELECT error_id, {', '.join(RESOLUTION_COLUMNS)} FROM error_resolutions "
                    f"WHERE error_id IN ({placeholders(len(chunk))})", *chunk):
                found[int(row["error_id"])] = resolution_from_row(row)
        return found

    def save_resolution(self, error_id: int, resolution: Resolution) -> None:
        """Store how the error is resolved, replacing what was stored."""
        self.execute(
            f"INSERT INTO error_resolutions (error_id, {', '.join(RESOLUTION_COLUMNS)}) "
            f"VALUES ({placeholders(len(RESOLUTION_COLUMNS) + 1)}) ON CONFLICT (error_id) "
            "DO UPDATE SET " + ", ".join(f"{column} = excluded.{column}"
                                         for column in RESOLUTION_COLUMNS),
            error_id, *(getattr(resolution, column) for column in RESOLUTION_COLUMNS))

    def note_fix_trailer(self, error_id: int, fix_commit: str) -> bool:
        """Remember that a Fixes: trailer of ``fix_commit`` names the error; True the first
        time, so that each trailer resolves its error once (a reopened error stays open)."""
        return self.execute(
            "INSERT INTO fix_trailers (error_id, fix_commit) VALUES (?, ?) "
            "ON CONFLICT (error_id, fix_commit) DO NOTHING", error_id, fix_commit
        ).rowcount == 1

    def count_occurrences(self, error_id: int, when: float, occurrences: int) -> None:
        """Add occurrences to the error's week and day counters."""
        self.count_many_occurrences([(error_id, when, occurrences)])

    def count_many_occurrences(self, counts: Sequence[tuple[int, float, int]]) -> None:
        """:meth:`count_occurrences` of many (error id, when, occurrences) at once; they
        count in their developers' totals of the week too."""
        self._count_week_totals(counts)
        self.execute_many(
            "INSERT INTO error_weeks (error_id, week_start, count, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (week_start, error_id) DO UPDATE SET "
            "count = error_weeks.count + excluded.count, last_seen = excluded.last_seen",
            [(error_id, week_start(when), occurrences, when, when)
             for error_id, when, occurrences in counts])
        self.execute_many(
            "INSERT INTO error_days (error_id, day, count) VALUES (?, ?, ?) "
            "ON CONFLICT (error_id, day) DO UPDATE SET count = error_days.count + excluded.count",
            [(error_id, day_of(when), occurrences) for error_id, when, occurrences in counts])

    def _count_week_totals(self, counts: Sequence[tuple[int, float, int]]) -> None:
        """Add occurrences to their developers' totals of the week (before the week counts
        are written: an error's first occurrence of a week adds a distinct error)."""
        pairs = list({(week_start(when), error_id) for error_id, when, _ in counts})
        seen: set[tuple[str, int]] = set()
        for start in range(0, len(pairs), STATES_PER_QUERY):
            chunk = pairs[start:start + STATES_PER_QUERY]
            seen.update((row["week_start"], int(row["error_id"])) for row in self.execute(
                "SELECT w.week_start AS week_start, w.error_id AS error_id FROM "
                f"(VALUES {', '.join(['(?, ?)'] * len(chunk))}) AS k JOIN error_weeks w "
                "ON w.week_start = k.column1 AND w.error_id = k.column2",
                *(part for pair in chunk for part in pair)))
        stored = self._stored({error_id for error_id, _, _ in counts})
        totals: dict[tuple[str, Optional[str], int], list[int]] = {}
        for error_id, when, occurrences in counts:
            week = week_start(when)
            _, author, known = stored[error_id]
            total = totals.setdefault((week, author, known), [0, 0])
            total[0] += occurrences
            if (week, error_id) not in seen:
                seen.add((week, error_id))
                total[1] += 1
        self._add_week_totals([(week, author, known, count, errors)
                               for (week, author, known), (count, errors) in totals.items()])

    def queue_entry(self, entry: NewEntry, now: float,
                    held_until: Optional[float] = None) -> int:
        """Store an entry for delivery (or, with ``held_until``, for the digest due then);
        return its id."""
        if held_until is None:
            self.announce("outbox")
        return self.insert(
            "INSERT INTO outbox (error_id, created_at, message, recipients, channel, "
            "destination, message_id, summary, held_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            entry.error_id, now, entry.message, json.dumps(list(entry.recipients)),
            entry.channel, entry.destination, entry.message_id, entry.summary, held_until)

    def mark_digested(self, entry_ids: Sequence[int], digest_id: int, now: float) -> int:
        """Record held entries as carried by the digest ``digest_id`` (their bodies go);
        return how many were still held (another server may have carried some already)."""
        return self.execute_many(
            "UPDATE outbox SET sent_at = ?, digest_id = ?, message = ? "
            "WHERE id = ? AND sent_at IS NULL", [(now, digest_id, b"", entry_id)
                                                 for entry_id in entry_ids])

    def hour_count(self, channel: str, destination: str, hour_start: float) -> int:
        """Entries admitted to a destination (or ``*``: the whole channel) in an hour."""
        row = self.execute(
            "SELECT count FROM delivery_hours WHERE channel = ? AND destination = ? "
            "AND hour_start = ?", channel, destination, hour_start).fetchone()
        return int(row["count"]) if row else 0

    def count_in_hour(self, channel: str, destination: str, hour_start: float) -> None:
        """Add one admitted entry to a destination's (or ``*``'s) count for an hour."""
        self.execute(
            "INSERT INTO delivery_hours (channel, destination, hour_start, count) "
            "VALUES (?, ?, ?, 1) ON CONFLICT (channel, destination, hour_start) "
            "DO UPDATE SET count = delivery_hours.count + 1", channel, destination, hour_start)

    def issue_update(self, error_id: int, channel: str) -> Optional[tuple[float, int]]:
        """(when, at which count) an error's issue in ``channel`` was last queued an update."""
        row = self.execute(
            "SELECT updated_at, count FROM issue_updates WHERE error_id = ? AND channel = ?",
            error_id, channel).fetchone()
        return (row["updated_at"], int(row["count"])) if row else None

    def set_issue_update(self, error_id: int, channel: str, now: float, count: int) -> None:
        """Remember that an update of an error's issue was queued now, at ``count``."""
        self.execute(
            "INSERT INTO issue_updates (error_id, channel, updated_at, count) VALUES "
            "(?, ?, ?, ?) ON CONFLICT (error_id, channel) DO UPDATE SET "
            "updated_at = excluded.updated_at, count = excluded.count",
            error_id, channel, now, count)

    def postpone(self, inbox_id: int, attempts: int, next_attempt_at: float,
                 error: str) -> None:
        """Leave a request's reports in the inbox for a later attempt."""
        self.execute(
            "UPDATE inbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
            attempts, next_attempt_at, error[:MAX_ERROR_TEXT], inbox_id)

    def remove_from_inbox(self, inbox_id: int) -> None:
        """Mark a request's reports processed (they live on in their errors' counts)."""
        self.execute("DELETE FROM inbox WHERE id = ?", inbox_id)

    def bump_stat(self, name: str, by: int = 1) -> None:
        """Add to a named counter."""
        self.execute(
            "INSERT INTO stats (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = stats.value + excluded.value", name, by)


class SqlStorage:
    """The queries of :class:`~.interface.Storage` that every SQL backend shares.

    ``server_id`` names this process: it holds the outbox leases it takes (for
    ``lease_seconds``) and its heartbeat row.
    """

    LOCK_ROWS_SKIP_LOCKED = ""   # appended to a SELECT taking rows no other server holds
    backend = "sql"

    def __init__(self, server_id: Optional[str] = None, lease_seconds: float = LEASE_SECONDS):
        self.server_id = server_id or new_server_id()
        self.lease_seconds = lease_seconds

    def _reading(self) -> AbstractContextManager[SqlTransaction]:
        """Statements outside any transaction (each one commits by itself)."""
        raise NotImplementedError

    def _query(self, sql: str, *args: Any) -> list[Any]:
        """Run one read outside any transaction; return its rows."""
        with self._reading() as reader:
            return reader.execute(sql, *args).fetchall()

    def transaction(self) -> AbstractContextManager[SqlTransaction]:
        """One atomic write; raises StorageUnavailable when the database refuses it."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The database, for /check_health (never a password)."""
        raise NotImplementedError

    def wakeups(self) -> Optional[Any]:
        """News from other servers sharing the database: none by default."""
        return None

    def close(self) -> None:
        """Let go of the database (nothing to do by default)."""

    # -- ingest --

    def add_to_inbox(self, payloads: Sequence[tuple[bytes, int]], received_at: float
                     ) -> list[int]:
        """Store accepted requests durably in one transaction; return their inbox ids.

        Each payload is a JSON-RPC body whose valid ``record_error`` calls are to be
        processed, with the number of reports it holds.
        """
        with self.transaction() as transaction:
            transaction.announce("inbox")
            return transaction.insert_many(
                "INSERT INTO inbox (received_at, payload, reports) VALUES (?, ?, ?)",
                [(received_at, payload, reports) for payload, reports in payloads])

    @staticmethod
    def _enough_requests(rows: Sequence[Any], limit: int) -> list[int]:
        """The ids of the first ``rows`` (id, reports) holding about ``limit`` reports (at
        least one request)."""
        chosen, total = [], 0
        for row in rows:
            chosen.append(int(row["id"]))
            total += row["reports"]
            if total >= limit:
                break
        return chosen

    # -- processing --

    def error_states(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, ErrorState]:
        """Stored state of these errors (those seen before), read outside any transaction:
        what a plan is worked out from (see plan.py)."""
        with self._reading() as reader:
            return reader.read_error_states(keys)

    def hour_count(self, channel: str, destination: str, hour_start: float) -> int:
        """Entries admitted to a destination in an hour, read outside any transaction."""
        with self._reading() as reader:
            return reader.hour_count(channel, destination, hour_start)

    def issue_update(self, error_id: int, channel: str) -> Optional[tuple[float, int]]:
        """When an error's issue was last queued an update, read outside any transaction."""
        with self._reading() as reader:
            return reader.issue_update(error_id, channel)

    def retry_postponed(self, now: float) -> None:
        """Make every postponed request due now (what kept them is gone)."""
        with self.transaction() as transaction:
            transaction.execute("UPDATE inbox SET next_attempt_at = ? WHERE next_attempt_at > ?",
                                now, now)

    # -- delivery --

    def due_mail(self, now: float, limit: int) -> list[OutboxMail]:
        """Undelivered entries whose next attempt is due, oldest first, but those held for a
        digest and those of a destination that asked to wait; leased to this server until
        ``now + lease_seconds`` (entries another live lease holds are left alone). The lease
        is a durable write: whatever queued the entries survives a power loss before they
        leave."""
        with self.transaction() as transaction:
            rows = transaction.execute(
                "SELECT id, message, recipients, attempts, channel, destination, message_id, "
                "started_at FROM outbox o WHERE sent_at IS NULL AND held_until IS NULL "
                "AND next_attempt_at <= ? AND (locked_by IS NULL OR locked_by = ? "
                "OR locked_until < ?) AND NOT EXISTS (SELECT 1 FROM destination_holds h "
                "WHERE h.channel = o.channel AND h.destination = o.destination "
                "AND h.held_until > ?) ORDER BY id LIMIT ?" + self.LOCK_ROWS_SKIP_LOCKED,
                now, self.server_id, now, now, limit).fetchall()
            if rows:
                transaction.execute(
                    "UPDATE outbox SET locked_by = ?, locked_until = ? "
                    f"WHERE id IN ({placeholders(len(rows))})",
                    self.server_id, now + self.lease_seconds, *(row["id"] for row in rows))
        return [OutboxMail(int(row["id"]), bytes(row["message"]),
                           tuple(json.loads(row["recipients"])), row["attempts"],
                           row["channel"], row["destination"], row["message_id"],
                           row["started_at"] is not None)
                for row in rows]

    def extend_leases(self, now: float) -> int:
        """Keep the entries this server is delivering leased until ``now + lease_seconds``;
        return how many it holds."""
        with self.transaction() as transaction:
            return transaction.execute(
                "UPDATE outbox SET locked_until = ? WHERE locked_by = ? AND sent_at IS NULL",
                now + self.lease_seconds, self.server_id).rowcount

    def release_leases(self, of_anyone: bool = False) -> None:
        """Give back every entry this server holds (or, ``of_anyone``, every entry held),
        so others need not wait for the leases to run out."""
        with self.transaction() as transaction:
            transaction.execute("UPDATE outbox SET locked_by = NULL, locked_until = NULL "
                                "WHERE sent_at IS NULL AND locked_by IS NOT NULL"
                                + ("" if of_anyone else " AND locked_by = ?"),
                                *(() if of_anyone else (self.server_id,)))

    def mark_started(self, mail_id: int, now: float) -> None:
        """Record that a delivery of the entry begins (this server's lease): if its outcome
        is never recorded (a crash), the next attempt knows it may have reached the far
        end."""
        with self.transaction() as transaction:
            transaction.execute("UPDATE outbox SET started_at = ? WHERE id = ? AND locked_by = ?",
                                now, mail_id, self.server_id)

    def mark_sent(self, mail_id: int, now: float) -> bool:
        """Record a successful delivery so the entry is never sent again; only the lease
        holder may (return False when another server took the entry over).

        The delivered message itself is dropped (the row keeps when and to whom): nothing
        reads it again, and a flood of alerts must not keep its mail on disk for weeks."""
        with self.transaction() as transaction:
            return transaction.execute(
                "UPDATE outbox SET sent_at = ?, last_error = NULL, message = ?, "
                "locked_by = NULL, locked_until = NULL WHERE id = ? AND locked_by = ?",
                now, b"", mail_id, self.server_id).rowcount == 1

    def mark_failed(self, mail_id: int, attempts: int, next_attempt_at: float,
                    error: str) -> bool:
        """Record a failed delivery and when to try again, and give the lease back; the
        entry's destination waits until then too (its entries keep their order, and a far
        end that is down or asked to wait is not tried once per entry). Only the lease
        holder may (return False when another server took the entry over)."""
        with self.transaction() as transaction:
            if transaction.execute(
                    "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, "
                    "started_at = NULL, locked_by = NULL, locked_until = NULL "
                    "WHERE id = ? AND locked_by = ?", attempts, next_attempt_at,
                    error[:MAX_ERROR_TEXT], mail_id, self.server_id).rowcount != 1:
                return False
            transaction.execute(
                "INSERT INTO destination_holds (channel, destination, held_until) "
                "SELECT channel, destination, ? FROM outbox WHERE id = ? "
                "ON CONFLICT (channel, destination) DO UPDATE SET "
                "held_until = excluded.held_until", next_attempt_at, mail_id)
            return True

    def held_due(self, now: float, limit: int) -> list[HeldEntry]:
        """Entries held back by the hourly bounds whose hour is over, by channel and
        destination, oldest first."""
        return [HeldEntry(int(row["id"]), row["channel"], row["destination"], row["summary"],
                          row["created_at"])
                for row in self._query(
                    "SELECT id, channel, destination, summary, created_at FROM outbox "
                    "WHERE held_until <= ? AND sent_at IS NULL "
                    "ORDER BY channel, destination, id LIMIT ?", now, limit)]

    # -- issue trackers --

    def issue_link(self, channel: str, destination: str,
                   fingerprint: str) -> Optional[IssueLink]:
        """The issue of an error in a tracker, if one is known."""
        rows = self._query("SELECT number, url FROM issue_links WHERE channel = ? AND "
                           "destination = ? AND fingerprint = ?", channel, destination,
                           fingerprint)
        return IssueLink(channel, destination, fingerprint, int(rows[0]["number"]),
                         rows[0]["url"]) if rows else None

    def save_issue_links(self, links: Sequence[IssueLink], now: float) -> None:
        """Remember (or correct) the issues of errors."""
        with self.transaction() as transaction:
            transaction.execute_many(
                "INSERT INTO issue_links (channel, destination, fingerprint, number, url, "
                "linked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel, destination, "
                "fingerprint) DO UPDATE SET number = excluded.number, url = excluded.url, "
                "linked_at = excluded.linked_at",
                [(link.channel, link.destination, link.fingerprint, link.number, link.url, now)
                 for link in links])

    def forget_issue_link(self, link: IssueLink) -> None:
        """Forget an issue that is gone (deleted, or moved away)."""
        with self.transaction() as transaction:
            transaction.execute("DELETE FROM issue_links WHERE channel = ? AND destination = ? "
                                "AND fingerprint = ? AND number = ?", link.channel,
                                link.destination, link.fingerprint, link.number)

    def issue_links(self, fingerprint: str) -> list[IssueLink]:
        """Every known issue of one error."""
        return [IssueLink(row["channel"], row["destination"], fingerprint, int(row["number"]),
                          row["url"])
                for row in self._query("SELECT channel, destination, number, url FROM "
                                       "issue_links WHERE fingerprint = ? ORDER BY channel",
                                       fingerprint)]

    # -- source maps --

    def save_sourcemaps(self, release: str, maps: Sequence[SourceMapFile], now: float) -> None:
        """Store the source maps of one release's build, replacing any of the same URLs."""
        with self.transaction() as transaction:
            for item in maps:
                transaction.execute("DELETE FROM sourcemaps WHERE release = ? AND url = ?",
                                    release, item.url)
                transaction.execute(
                    "INSERT INTO sourcemaps (release, url, map, generated, uploaded_at) "
                    "VALUES (?, ?, ?, ?, ?)", release, item.url, item.map, item.generated, now)

    def sourcemap(self, release: str, urls: Sequence[str]) -> Optional[SourceMapFile]:
        """The source map of a script of ``release``, under the first of ``urls`` that has
        one, or None."""
        for url in urls:
            rows = self._query("SELECT url, map, generated FROM sourcemaps WHERE release = ? "
                               "AND url = ?", release, url)
            if rows:
                row = rows[0]
                return SourceMapFile(row["url"], bytes(row["map"]),
                                     None if row["generated"] is None else bytes(row["generated"]))
        return None

    # -- the servers sharing the database --

    def heartbeat(self, now: float, started_at: float, version: str) -> None:
        """Tell the other servers this one is alive; forget servers silent for a day."""
        with self.transaction() as transaction:
            transaction.execute(
                "INSERT INTO servers (server_id, hostname, pid, version, started_at, seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (server_id) DO UPDATE SET "
                "seen_at = excluded.seen_at", self.server_id, socket.gethostname()[:100],
                os.getpid(), version, started_at, now)
            transaction.execute("DELETE FROM servers WHERE seen_at < ?",
                                now - FORGET_SERVERS_SECONDS)

    def live_servers(self, now: float) -> list[ServerInfo]:
        """The servers whose heartbeat is recent, longest running first."""
        return [ServerInfo(row["server_id"], row["hostname"], int(row["pid"]), row["version"],
                           row["started_at"], row["seen_at"])
                for row in self._query(
                    "SELECT server_id, hostname, pid, version, started_at, seen_at FROM servers "
                    "WHERE seen_at >= ? ORDER BY started_at, server_id", now - ALIVE_SECONDS)]

    # -- retention and health --

    def prune(self, before: float) -> int:
        """Forget counts, errors, delivered mail and source maps older than ``before``;
        return errors removed."""
        week, day = week_start(before), day_of(before)
        # An error goes once all its weeks have gone: last seen before the first week kept
        # (one seen later in that week still has its week and day counted).
        gone = week_timestamp(week)
        with self.transaction() as transaction:
            transaction.execute("DELETE FROM error_weeks WHERE week_start < ?", week)
            transaction.execute("DELETE FROM week_authors WHERE week_start < ?", week)
            transaction.execute("DELETE FROM week_reports WHERE week_start < ?", week)
            transaction.execute("DELETE FROM error_days WHERE day < ?", day)
            transaction.execute("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?",
                                before)
            transaction.execute("UPDATE outbox SET error_id = NULL WHERE error_id IN "
                                "(SELECT id FROM errors WHERE last_seen < ?)", gone)
            for table in ("error_resolutions", "fix_trailers", "issue_updates"):
                transaction.execute(f"DELETE FROM {table} WHERE error_id IN "
                                    "(SELECT id FROM errors WHERE last_seen < ?)", gone)
            transaction.execute("DELETE FROM delivery_hours WHERE hour_start < ?", before)
            transaction.execute("DELETE FROM destination_holds WHERE held_until < ?", before)
            transaction.execute("DELETE FROM sourcemaps WHERE uploaded_at < ?", before)
            return int(transaction.execute("DELETE FROM errors WHERE last_seen < ?",
                                           gone).rowcount)

    def inbox_depth(self) -> int:
        """How many accepted reports are not processed yet."""
        return int(self._query("SELECT COALESCE(SUM(reports), 0) AS n FROM inbox")[0]["n"])

    def oldest_waiting(self) -> Optional[float]:
        """When the oldest report not processed yet was received, or None."""
        rows = self._query("SELECT received_at FROM inbox ORDER BY id LIMIT 1")
        return rows[0]["received_at"] if rows else None

    def outbox_depth(self) -> int:
        """How many mails wait for delivery."""
        return int(self._query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL"
                               )[0]["n"])

    def channel_states(self) -> list[ChannelState]:
        """Each channel with undelivered entries: how many, held, failing, the last error."""
        rows = self._query(
            "SELECT channel, COUNT(*) AS pending, "
            "SUM(CASE WHEN held_until IS NOT NULL THEN 1 ELSE 0 END) AS held, "
            "SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS failing, "
            "MAX(CASE WHEN attempts > 0 THEN id END) AS last_failing "
            "FROM outbox WHERE sent_at IS NULL GROUP BY channel ORDER BY channel")
        states = []
        for row in rows:
            error = None
            if row["last_failing"] is not None:
                error = self._query("SELECT last_error FROM outbox WHERE id = ?",
                                    row["last_failing"])[0]["last_error"]
            states.append(ChannelState(row["channel"], int(row["pending"]), int(row["held"]),
                                       int(row["failing"]), error))
        return states

    def stats(self) -> dict[str, int]:
        """Every named counter."""
        return {row["name"]: int(row["value"])
                for row in self._query("SELECT name, value FROM stats")}

    # -- the dashboard --

    def find_error(self, key: ErrorKey) -> Optional[ErrorRecord]:
        """The error with this identity, if seen before."""
        rows = self._query(f"{_SELECT_ERRORS} WHERE filename = ? AND function_name = ? AND "
                           "text = ?", key.filename, key.function_name, key.text)
        return error_from_row(rows[0]) if rows else None

    def errors_at_line(self, filename: str, function_name: str,
                       line_number: int) -> list[ErrorRecord]:
        """Errors at one file, function and line number, most recently seen first (finds an
        error whose source line changed since a link to it was made)."""
        return [error_from_row(row) for row in self._query(
            f"{_SELECT_ERRORS} WHERE filename = ? AND function_name = ? AND line_number = ? "
            "ORDER BY last_seen DESC, id LIMIT 10", filename, function_name, line_number)]

    def week_errors(self, week: str, include_known: bool = True, offset: int = 0,
                    limit: int = 100, query: str = "") -> list[tuple[ErrorRecord, int]]:
        """Errors seen in the week starting ``week``, with their count in that week, most
        frequent first: ``limit`` of them from ``offset``. ``query`` keeps those whose file,
        function, line, exception type or developer contains it (case-insensitive), among
        the week's FILTER_SCAN_LIMIT most frequent errors."""
        columns = ", ".join("e." + column for column in ERROR_COLUMNS)
        conditions, arguments = [], [week]
        window = ""
        if query:
            window = "ORDER BY count DESC, error_id LIMIT ?"
            arguments.append(FILTER_SCAN_LIMIT)
            pattern = "%" + query.replace("\\", "\\\\").replace(
                "%", "\\%").replace("_", "\\_") + "%"
            fields = ("e.filename", "e.function_name", "e.text", "e.exception_type",
                      "e.author_name", "e.author_email")
            conditions.append("(" + " OR ".join(f"LOWER(COALESCE({field}, '')) LIKE LOWER(?) "
                                                "ESCAPE '\\'" for field in fields) + ")")
            arguments += [pattern] * len(fields)
        if not include_known:
            conditions.append("e.known = 0")
        rows = self._query(
            f"SELECT {columns}, w.count AS week_count FROM (SELECT error_id, count "
            f"FROM error_weeks WHERE week_start = ? {window}) w JOIN errors e "
            "ON e.id = w.error_id " + ("WHERE " + " AND ".join(conditions) if conditions else "")
            + " ORDER BY w.count DESC, w.error_id LIMIT ? OFFSET ?", *arguments, limit, offset)
        return [(error_from_row(row), int(row["week_count"])) for row in rows]

    def week_totals(self, week: str, include_known: bool = True) -> WeekTotals:
        """The week's occurrences, distinct errors and blamed developers, from kept counts."""
        row = self._query(
            "SELECT COALESCE(SUM(count), 0) AS occurrences, COALESCE(SUM(errors), 0) AS errors, "
            "COUNT(DISTINCT CASE WHEN author <> '' AND count > 0 THEN author END) AS developers "
            "FROM week_authors WHERE week_start = ?"
            + ("" if include_known else " AND known = 0"), week)[0]
        return WeekTotals(int(row["occurrences"]), int(row["errors"]), int(row["developers"]))

    def developer_week_totals(self, week: str, author_email: Optional[str],
                              include_known: bool = True) -> tuple[int, int]:
        """(occurrences, distinct errors) of one developer (None: blamed on nobody) in a
        week."""
        row = self._query(
            "SELECT COALESCE(SUM(count), 0) AS occurrences, COALESCE(SUM(errors), 0) AS errors "
            "FROM week_authors WHERE week_start = ? AND author = LOWER(?)"
            + ("" if include_known else " AND known = 0"), week, author_email or "")[0]
        return int(row["occurrences"]), int(row["errors"])

    def week_report(self, error_id: int, week: str) -> Optional[Report]:
        """The last report of an error in a past week (None when none was kept)."""
        rows = self._query("SELECT report FROM week_reports WHERE error_id = ? AND "
                           "week_start = ?", error_id, week)
        return decode_report(rows[0]["report"]) if rows else None

    def error_week_count(self, error_id: int, week: str) -> int:
        """Occurrences of an error in one week."""
        rows = self._query("SELECT count FROM error_weeks WHERE week_start = ? AND "
                           "error_id = ?", week, error_id)
        return int(rows[0]["count"]) if rows else 0

    def resolutions(self, error_ids: Sequence[int]) -> dict[int, Resolution]:
        """How these errors were resolved and what became of it (those ever resolved)."""
        with self._reading() as reader:
            return reader.resolutions(error_ids)

    def fixes_to_check(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, Resolution]:
        """The errors among ``keys`` that are resolved by a fix commit, with their
        resolution (whether a report's revision contains the fix is for git to say)."""
        if not self._query("SELECT 1 AS one FROM error_resolutions WHERE resolved_at IS NOT "
                           "NULL AND fix_commit IS NOT NULL LIMIT 1"):
            return {}
        columns = ", ".join("r." + column for column in RESOLUTION_COLUMNS)
        found = {}
        for key in keys:
            rows = self._query(
                f"SELECT {columns} FROM errors e JOIN error_resolutions r ON r.error_id = e.id "
                "WHERE e.filename = ? AND e.function_name = ? AND e.text = ? "
                "AND r.resolved_at IS NOT NULL AND r.fix_commit IS NOT NULL",
                key.filename, key.function_name, key.text)
            if rows:
                found[key] = resolution_from_row(rows[0])
        return found

    def daily_counts(self, error_id: int, since_day: str) -> list[tuple[str, int]]:
        """(day, count) of one error since a day, oldest first."""
        return [(row["day"], int(row["count"])) for row in self._query(
            "SELECT day, count FROM error_days WHERE error_id = ? AND day >= ? ORDER BY day",
            error_id, since_day)]

    def deliveries(self, error_id: int, limit: int = 50) -> list[Delivery]:
        """Where the alerts of one error went (or are going), newest first."""
        return [Delivery(row["channel"], row["destination"], row["created_at"], row["sent_at"],
                         int(row["attempts"]), row["last_error"], row["held_until"],
                         row["digest_id"])
                for row in self._query(
                    "SELECT channel, destination, created_at, sent_at, attempts, last_error, "
                    "held_until, digest_id FROM outbox WHERE error_id = ? "
                    "ORDER BY id DESC LIMIT ?", error_id, limit)]

    def author_errors(self, email: str, offset: int = 0, limit: int = 100
                      ) -> list[ErrorRecord]:
        """Errors blamed on ``email`` (case-insensitive), most recently seen first: ``limit``
        of them from ``offset``."""
        return [error_from_row(row) for row in self._query(
            f"{_SELECT_ERRORS} WHERE lower(author_email) = lower(?) "
            "ORDER BY last_seen DESC, id LIMIT ? OFFSET ?", email, limit, offset)]

    def author_weekly_totals(self, email: str, limit: int = 100
                             ) -> list[tuple[str, int, int]]:
        """(week start, occurrences, distinct errors) of the errors blamed on ``email``,
        newest week first, at most ``limit`` weeks, from kept counts."""
        return [(row["week_start"], int(row["occurrences"]), int(row["errors"]))
                for row in self._query(
                    "SELECT week_start, SUM(count) AS occurrences, SUM(errors) AS errors "
                    "FROM week_authors WHERE author = LOWER(?) GROUP BY week_start "
                    "HAVING SUM(count) > 0 ORDER BY week_start DESC LIMIT ?", email, limit)]
