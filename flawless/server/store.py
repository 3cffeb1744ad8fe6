"""SQLite persistence: the inbox of accepted reports, errors with weekly and daily counts,
the outbox of rendered mail, and small statistics.

Every method is synchronous and must run off the reactor thread. Writes happen on one
connection owned by one thread (the server's single database thread); reads for the
dashboard use their own connections (WAL mode lets them run beside the writer).
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

from flawless.report import InvalidReport, Report, parse_report, report_to_dict
from flawless.server.routing import ErrorKey

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    payload BLOB NOT NULL,
    reports INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS inbox_due ON inbox (next_attempt_at, id);
-- Counting waiting reports must not read the payloads: SQLite would follow every one.
CREATE INDEX IF NOT EXISTS inbox_reports ON inbox (reports);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY,
    filename TEXT NOT NULL,
    function_name TEXT NOT NULL,
    text TEXT NOT NULL,
    line_number INTEGER NOT NULL,
    exception_type TEXT NOT NULL,
    blamed INTEGER NOT NULL,
    author_name TEXT,
    author_email TEXT,
    commit_sha TEXT,
    commit_summary TEXT,
    commit_timestamp REAL,
    blame_revision TEXT,
    blame_at_requested INTEGER,
    count INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    last_report TEXT NOT NULL,
    known INTEGER NOT NULL DEFAULT 0,
    alerted_at REAL,
    recipients TEXT,
    explanation TEXT NOT NULL DEFAULT '[]',
    UNIQUE (filename, function_name, text)
);
CREATE INDEX IF NOT EXISTS errors_author ON errors (author_email);
CREATE TABLE IF NOT EXISTS error_weeks (
    error_id INTEGER NOT NULL REFERENCES errors (id),
    week_start TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (week_start, error_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS error_days (
    error_id INTEGER NOT NULL REFERENCES errors (id),
    day TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (error_id, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    error_id INTEGER,
    created_at REAL NOT NULL,
    message BLOB NOT NULL,
    recipients TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    sent_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sent_at, next_attempt_at);
CREATE TABLE IF NOT EXISTS stats (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""


class StorageUnavailable(Exception):
    """The database cannot take writes right now (disk full, locked, read-only)."""


@dataclass(frozen=True)
class InboxItem:
    """One accepted request's reports, waiting to be processed together."""

    inbox_id: int
    received_at: float
    reports: tuple[Report, ...]
    attempts: int


@dataclass(frozen=True)
class ErrorState:
    """What processing needs to know of an error already stored."""

    error_id: int
    count: int
    first_seen: float
    last_seen: float
    alerted_at: Optional[float]
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class ErrorRecord:
    """One error (grouped by file, function and line text) with its counts and blame."""

    error_id: int
    key: ErrorKey
    line_number: int
    exception_type: str
    blamed: bool
    author_name: Optional[str]
    author_email: Optional[str]
    commit_sha: Optional[str]
    commit_summary: Optional[str]
    commit_timestamp: Optional[float]
    blame_revision: Optional[str]
    blame_at_requested: Optional[bool]
    count: int
    first_seen: float
    last_seen: float
    last_report: Report
    known: bool
    alerted_at: Optional[float]
    recipients: tuple[str, ...]
    explanation: tuple[str, ...]


@dataclass(frozen=True)
class OutboxMail:
    """A rendered email waiting for delivery."""

    mail_id: int
    message: bytes
    recipients: tuple[str, ...]
    attempts: int


def week_start(timestamp: float) -> str:
    """The Monday (UTC) of the week holding ``timestamp``, as YYYY-MM-DD."""
    day = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).date()
    return (day - datetime.timedelta(days=day.weekday())).isoformat()


def day_of(timestamp: float) -> str:
    """The UTC day holding ``timestamp``, as YYYY-MM-DD."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).date().isoformat()


def reports_in_payload(payload: bytes) -> tuple[Report, ...]:
    """The valid reports of a stored JSON-RPC body (its ``record_error`` calls)."""
    body = json.loads(payload)
    reports = []
    for call in (body if isinstance(body, list) else [body]):
        if not isinstance(call, dict) or call.get("method") != "record_error":
            continue
        params = call.get("params")
        data = params.get("report") if isinstance(params, dict) else \
            params[0] if isinstance(params, list) and len(params) == 1 else None
        try:
            reports.append(parse_report(data))
        except InvalidReport:
            continue  # answered with an error when it arrived; nothing to process
    return tuple(reports)


def encode_report(report: Report) -> str:
    """The stored form of a report: its wire JSON."""
    return json.dumps(report_to_dict(report), separators=(",", ":"), ensure_ascii=False)


def decode_report(text: str) -> Report:
    """Read back a report stored by :func:`encode_report`."""
    return parse_report(json.loads(text))


_ERROR_COLUMNS = (
    "id, filename, function_name, text, line_number, exception_type, blamed, author_name, "
    "author_email, commit_sha, commit_summary, commit_timestamp, blame_revision, "
    "blame_at_requested, count, first_seen, last_seen, last_report, known, alerted_at, "
    "recipients, explanation"
)


def _error_from_row(row: Sequence[Any]) -> ErrorRecord:
    return ErrorRecord(
        error_id=row[0], key=ErrorKey(row[1], row[2], row[3]), line_number=row[4],
        exception_type=row[5], blamed=bool(row[6]), author_name=row[7], author_email=row[8],
        commit_sha=row[9], commit_summary=row[10], commit_timestamp=row[11],
        blame_revision=row[12],
        blame_at_requested=None if row[13] is None else bool(row[13]),
        count=row[14], first_seen=row[15], last_seen=row[16],
        last_report=decode_report(row[17]), known=bool(row[18]), alerted_at=row[19],
        recipients=tuple(json.loads(row[20] or "[]")),
        explanation=tuple(json.loads(row[21] or "[]")),
    )


class Store:
    """The SQLite database of one flawless server."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        with self._connect() as connection:
            connection.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None,
                                     check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed report survives power loss too, and group commit keeps it cheap.
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    @property
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (one per thread)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write; raises StorageUnavailable when the database refuses it."""
        connection = self.connection
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise StorageUnavailable(str(error)) from error
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        try:
            connection.execute("COMMIT")
        except sqlite3.OperationalError as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise StorageUnavailable(str(error)) from error

    # -- inbox ---------------------------------------------------------------------------

    def add_to_inbox(self, payloads: Sequence[tuple[bytes, int]], received_at: float
                     ) -> list[int]:
        """Store accepted requests durably in one transaction; return their inbox ids.

        Each payload is a JSON-RPC body whose valid ``record_error`` calls are to be
        processed, with the number of reports it holds.
        """
        try:
            with self.transaction() as connection:
                return [int(connection.execute(
                    "INSERT INTO inbox (received_at, payload, reports) VALUES (?, ?, ?)",
                    (received_at, payload, reports)).lastrowid or 0)
                    for payload, reports in payloads]
        except sqlite3.Error as error:
            raise StorageUnavailable(str(error)) from error

    def due_inbox(self, now: float, limit: int) -> list[InboxItem]:
        """Unprocessed requests whose next attempt is due, oldest first, holding about
        ``limit`` reports (at least one request)."""
        items: list[InboxItem] = []
        total = 0
        for row in self.connection.execute(
                "SELECT id, received_at, payload, attempts, reports FROM inbox "
                "WHERE next_attempt_at <= ? ORDER BY id", (now,)):
            items.append(InboxItem(row[0], row[1], reports_in_payload(row[2]), row[3]))
            total += row[4]
            if total >= limit:
                break
        return items

    def inbox_depth(self) -> int:
        """How many accepted reports are not processed yet."""
        return int(self.connection.execute(
            "SELECT COALESCE(SUM(reports), 0) FROM inbox").fetchone()[0])

    def postpone(self, connection: sqlite3.Connection, inbox_id: int, attempts: int,
                 next_attempt_at: float, error: str) -> None:
        """Leave a request's reports in the inbox for a later attempt."""
        connection.execute(
            "UPDATE inbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
            (attempts, next_attempt_at, error[:1000], inbox_id))

    def remove_from_inbox(self, connection: sqlite3.Connection, inbox_id: int) -> None:
        """Mark a request's reports processed (they live on in their errors' counts)."""
        connection.execute("DELETE FROM inbox WHERE id = ?", (inbox_id,))

    # -- errors --------------------------------------------------------------------------

    def find_error(self, key: ErrorKey,
                   connection: Optional[sqlite3.Connection] = None) -> Optional[ErrorRecord]:
        """The error with this identity, if seen before."""
        row = (connection or self.connection).execute(
            f"SELECT {_ERROR_COLUMNS} FROM errors WHERE filename = ? AND function_name = ? "
            "AND text = ?", (key.filename, key.function_name, key.text)).fetchone()
        return _error_from_row(row) if row else None

    def error_state(self, connection: sqlite3.Connection, key: ErrorKey
                    ) -> Optional[ErrorState]:
        """Counts and alert state of the error with this identity, if seen before."""
        row = connection.execute(
            "SELECT id, count, first_seen, last_seen, alerted_at, recipients FROM errors "
            "WHERE filename = ? AND function_name = ? AND text = ?",
            (key.filename, key.function_name, key.text)).fetchone()
        if row is None:
            return None
        return ErrorState(row[0], row[1], row[2], row[3], row[4],
                          tuple(json.loads(row[5] or "[]")))

    def get_error(self, error_id: int) -> Optional[ErrorRecord]:
        """The error with this id."""
        row = self.connection.execute(
            f"SELECT {_ERROR_COLUMNS} FROM errors WHERE id = ?", (error_id,)).fetchone()
        return _error_from_row(row) if row else None

    def save_error(self, connection: sqlite3.Connection, record: ErrorRecord) -> int:
        """Insert or update an error; return its id."""
        values = (
            record.key.filename, record.key.function_name, record.key.text, record.line_number,
            record.exception_type, int(record.blamed), record.author_name, record.author_email,
            record.commit_sha, record.commit_summary, record.commit_timestamp,
            record.blame_revision,
            None if record.blame_at_requested is None else int(record.blame_at_requested),
            record.count, record.first_seen, record.last_seen, encode_report(record.last_report),
            int(record.known), record.alerted_at, json.dumps(list(record.recipients)),
            json.dumps(list(record.explanation)),
        )
        if record.error_id:
            connection.execute(
                "UPDATE errors SET filename=?, function_name=?, text=?, line_number=?, "
                "exception_type=?, blamed=?, author_name=?, author_email=?, commit_sha=?, "
                "commit_summary=?, commit_timestamp=?, blame_revision=?, blame_at_requested=?, "
                "count=?, first_seen=?, last_seen=?, last_report=?, known=?, alerted_at=?, "
                "recipients=?, explanation=? WHERE id=?", values + (record.error_id,))
            return record.error_id
        cursor = connection.execute(
            f"INSERT INTO errors ({_ERROR_COLUMNS.split(', ', 1)[1]}) VALUES "
            f"({', '.join('?' * len(values))})", values)
        return int(cursor.lastrowid or 0)

    def count_occurrences(self, connection: sqlite3.Connection, error_id: int, when: float,
                          occurrences: int) -> None:
        """Add occurrences to the error's week and day counters."""
        connection.execute(
            "INSERT INTO error_weeks (error_id, week_start, count, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (week_start, error_id) DO UPDATE SET "
            "count = count + excluded.count, last_seen = excluded.last_seen",
            (error_id, week_start(when), occurrences, when, when))
        connection.execute(
            "INSERT INTO error_days (error_id, day, count) VALUES (?, ?, ?) "
            "ON CONFLICT (error_id, day) DO UPDATE SET count = count + excluded.count",
            (error_id, day_of(when), occurrences))

    def week_errors(self, week: str, include_known: bool = True
                    ) -> list[tuple[ErrorRecord, int]]:
        """The errors seen in the week starting ``week``, with their count in that week."""
        rows = self.connection.execute(
            f"SELECT {', '.join('e.' + c for c in _ERROR_COLUMNS.split(', '))}, w.count "
            "FROM error_weeks w JOIN errors e ON e.id = w.error_id WHERE w.week_start = ? "
            + ("" if include_known else "AND e.known = 0 ") + "ORDER BY w.count DESC",
            (week,)).fetchall()
        return [(_error_from_row(row[:-1]), int(row[-1])) for row in rows]

    def daily_counts(self, error_id: int, since_day: str) -> list[tuple[str, int]]:
        """(day, count) of one error since a day, oldest first."""
        return [(row[0], int(row[1])) for row in self.connection.execute(
            "SELECT day, count FROM error_days WHERE error_id = ? AND day >= ? ORDER BY day",
            (error_id, since_day))]

    # -- outbox --------------------------------------------------------------------------

    def queue_mail(self, connection: sqlite3.Connection, error_id: Optional[int], now: float,
                   message: bytes, recipients: Sequence[str]) -> int:
        """Store a rendered mail for delivery."""
        cursor = connection.execute(
            "INSERT INTO outbox (error_id, created_at, message, recipients) VALUES (?, ?, ?, ?)",
            (error_id, now, message, json.dumps(list(recipients))))
        return int(cursor.lastrowid or 0)

    def due_mail(self, now: float, limit: int) -> list[OutboxMail]:
        """Undelivered mail whose next attempt is due, oldest first."""
        rows = self.connection.execute(
            "SELECT id, message, recipients, attempts FROM outbox WHERE sent_at IS NULL AND "
            "next_attempt_at <= ? ORDER BY id LIMIT ?", (now, limit)).fetchall()
        return [OutboxMail(row[0], bytes(row[1]), tuple(json.loads(row[2])), row[3])
                for row in rows]

    def mark_sent(self, mail_id: int, now: float) -> None:
        """Record a successful delivery so the mail is never sent again.

        The delivered message itself is dropped (the row keeps when and to whom): nothing
        reads it again, and a flood of alerts must not keep its mail on disk for weeks."""
        with self.transaction() as connection:
            connection.execute("UPDATE outbox SET sent_at = ?, last_error = NULL, "
                               "message = X'' WHERE id = ?", (now, mail_id))

    def mark_failed(self, mail_id: int, attempts: int, next_attempt_at: float,
                    error: str) -> None:
        """Record a failed delivery and when to try again."""
        with self.transaction() as connection:
            connection.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? "
                "WHERE id = ?", (attempts, next_attempt_at, error[:1000], mail_id))

    def outbox_depth(self) -> int:
        """How many mails wait for delivery."""
        return int(self.connection.execute(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])

    # -- retention -----------------------------------------------------------------------

    def prune(self, before: float) -> int:
        """Forget counts, errors and delivered mail older than ``before``; return errors removed."""
        week, day = week_start(before), day_of(before)
        with self.transaction() as connection:
            connection.execute("DELETE FROM error_weeks WHERE week_start < ?", (week,))
            connection.execute("DELETE FROM error_days WHERE day < ?", (day,))
            connection.execute("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?",
                               (before,))
            connection.execute(
                "UPDATE outbox SET error_id = NULL WHERE error_id IN "
                "(SELECT id FROM errors WHERE last_seen < ?)", (before,))
            cursor = connection.execute("DELETE FROM errors WHERE last_seen < ?", (before,))
            return cursor.rowcount

    # -- statistics ----------------------------------------------------------------------

    def bump_stat(self, connection: sqlite3.Connection, name: str, by: int = 1) -> None:
        """Add to a named counter."""
        connection.execute(
            "INSERT INTO stats (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (name, by))

    def stats(self) -> dict[str, int]:
        """Every named counter."""
        return {row[0]: int(row[1]) for row in self.connection.execute(
            "SELECT name, value FROM stats")}

    # -- dashboard queries ---------------------------------------------------------------

    def author_errors(self, email: str, limit: int = 500) -> list[ErrorRecord]:
        """Every error blamed on ``email`` (case-insensitive), most recently seen first."""
        rows = self.connection.execute(
            f"SELECT {_ERROR_COLUMNS} FROM errors WHERE author_email = ? COLLATE NOCASE "
            "ORDER BY last_seen DESC LIMIT ?", (email, limit)).fetchall()
        return [_error_from_row(row) for row in rows]

    def author_weekly_totals(self, email: str) -> list[tuple[str, int]]:
        """(week start, occurrences) of the errors blamed on ``email``, newest week first."""
        return [(row[0], int(row[1])) for row in self.connection.execute(
            "SELECT w.week_start, SUM(w.count) FROM error_weeks w JOIN errors e "
            "ON e.id = w.error_id WHERE e.author_email = ? COLLATE NOCASE "
            "GROUP BY w.week_start ORDER BY w.week_start DESC", (email,))]

    def errors_at_line(self, filename: str, function_name: str,
                       line_number: int) -> list[ErrorRecord]:
        """Errors at one file, function and line number, most recently seen first (finds an
        error whose source line changed since a link to it was made)."""
        rows = self.connection.execute(
            f"SELECT {_ERROR_COLUMNS} FROM errors WHERE filename = ? AND function_name = ? "
            "AND line_number = ? ORDER BY last_seen DESC", (filename, function_name,
                                                            line_number)).fetchall()
        return [_error_from_row(row) for row in rows]
