"""The embedded backend: one SQLite file in ``data_dir_path`` (WAL, ``synchronous=FULL``).

Each thread has its own connection; the server writes from one thread only (the ``db-write``
pool), so writers never wait on SQLite's lock, while pages read beside them. The schema is
versioned (``PRAGMA user_version``) and brought up to date by :data:`MIGRATIONS` at open.

A full disk must not strand accepted reports: a request is refused unless the room left
for the database (free on the disk, or inside the file) would still hold the whole inbox
once more (what processing it writes) plus ``min_free_bytes`` (for the write-ahead log),
so what was accepted can always be processed. After a write that failed for want of space
the write-ahead log is checkpointed and truncated, and once checkpointed it never keeps
more than :data:`WAL_KEPT_BYTES` on disk.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import msgspec

from flawless.report import Report
from flawless.server.core.calendar import day_of, week_start, week_timestamp
from flawless.server.core.model import ErrorKey, ErrorRecord, ErrorState, Resolution
from flawless.server.storage.plan import Plan, PlanConflict, replay
from flawless.server.storage.records import (ChannelState, Delivery, HeldEntry, InboxItem,
                                             IssueLink, NewEntry, OutboxMail, SourceMapFile,
                                             StorageUnavailable, WeekTotals, decode_report,
                                             encode_report,
                                             reports_in_payload)

# Each migration takes the schema from its index to the next version; never edit one that
# has shipped, append a new one.
MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema (IF NOT EXISTS: databases made before versions were recorded)
    """
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
    """,
    # 2: author lookups compare without case, so must the index; pruning and the pages
    # find an error's weeks by error id.
    """
    DROP INDEX IF EXISTS errors_author;
    CREATE INDEX IF NOT EXISTS errors_author ON errors (author_email COLLATE NOCASE);
    CREATE INDEX IF NOT EXISTS error_weeks_error ON error_weeks (error_id);
    """,
    # 3: claiming a batch reads ids and report counts in id order from this index alone:
    # in the table they lie after each request's payload, whose overflow pages SQLite
    # would otherwise walk for every row.
    """
    CREATE INDEX IF NOT EXISTS inbox_claim ON inbox (id, next_attempt_at, reports);
    """,
    # 4: channels. Each outbox entry names its channel and destination; entries over the
    # hourly bounds are held for a digest; a destination that asked to wait is held; an
    # error's issue in a tracker, and when its issue was last updated, are remembered.
    """
    ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';
    ALTER TABLE outbox ADD COLUMN destination TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN message_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN summary TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE outbox ADD COLUMN held_until REAL;
    ALTER TABLE outbox ADD COLUMN digest_id INTEGER;
    ALTER TABLE outbox ADD COLUMN started_at REAL;
    CREATE INDEX outbox_held ON outbox (held_until);
    CREATE INDEX outbox_error ON outbox (error_id);
    CREATE TABLE destination_holds (
        channel TEXT NOT NULL,
        destination TEXT NOT NULL,
        held_until REAL NOT NULL,
        PRIMARY KEY (channel, destination)
    );
    CREATE TABLE delivery_hours (
        channel TEXT NOT NULL,
        destination TEXT NOT NULL,
        hour_start REAL NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (channel, destination, hour_start)
    );
    CREATE TABLE issue_updates (
        error_id INTEGER NOT NULL,
        channel TEXT NOT NULL,
        updated_at REAL NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (error_id, channel)
    );
    CREATE TABLE issue_links (
        channel TEXT NOT NULL,
        destination TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        number INTEGER NOT NULL,
        url TEXT NOT NULL,
        linked_at REAL NOT NULL,
        PRIMARY KEY (channel, destination, fingerprint)
    );
    CREATE INDEX issue_links_fingerprint ON issue_links (fingerprint)
    """,
    # 5: pages whose work does not grow with the data. Each week's totals per developer,
    # kept as occurrences are counted (a page never sums a week's errors); a week's errors
    # in order of their count; a developer's errors by when last seen; the last report of
    # each error in each past week (a link to an old week shows that week's occurrence).
    """
    CREATE TABLE IF NOT EXISTS week_authors (
        week_start TEXT NOT NULL,
        author TEXT NOT NULL,
        known INTEGER NOT NULL,
        count INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        PRIMARY KEY (week_start, author, known)
    );
    INSERT OR IGNORE INTO week_authors (week_start, author, known, count, errors)
        SELECT w.week_start, LOWER(COALESCE(e.author_email, '')), e.known, SUM(w.count),
               COUNT(*)
        FROM error_weeks w JOIN errors e ON e.id = w.error_id
        GROUP BY w.week_start, LOWER(COALESCE(e.author_email, '')), e.known;
    CREATE INDEX IF NOT EXISTS week_authors_author ON week_authors (author, week_start);
    CREATE INDEX IF NOT EXISTS error_weeks_by_count ON error_weeks (week_start, count DESC,
                                                                    error_id);
    DROP INDEX IF EXISTS errors_author;
    CREATE INDEX IF NOT EXISTS errors_author ON errors (author_email COLLATE NOCASE,
                                                        last_seen DESC);
    CREATE TABLE IF NOT EXISTS week_reports (
        error_id INTEGER NOT NULL REFERENCES errors (id),
        week_start TEXT NOT NULL,
        last_seen REAL NOT NULL,
        report TEXT NOT NULL,
        PRIMARY KEY (error_id, week_start)
    );
    """,
    # 6: fixes by revision. An error marked resolved (and by which commit), what became of
    # it; and the Fixes: trailers already applied, so that each applies once.
    """
    CREATE TABLE IF NOT EXISTS error_resolutions (
        error_id INTEGER PRIMARY KEY REFERENCES errors (id),
        resolved_at REAL,
        source TEXT NOT NULL,
        fix_commit TEXT,
        fix_author_name TEXT,
        fix_author_email TEXT,
        regressed_at REAL,
        regressed_in TEXT,
        old_deployments INTEGER NOT NULL DEFAULT 0,
        old_deployment_revision TEXT,
        old_deployment_seen REAL
    );
    CREATE TABLE IF NOT EXISTS fix_trailers (
        error_id INTEGER NOT NULL REFERENCES errors (id),
        fix_commit TEXT NOT NULL,
        PRIMARY KEY (error_id, fix_commit)
    ) WITHOUT ROWID;
    """,
    # 7: the source maps of browser builds (flawless sourcemaps), by release and script URL
    """
    CREATE TABLE IF NOT EXISTS sourcemaps (
        release TEXT NOT NULL,
        url TEXT NOT NULL,
        map BLOB NOT NULL,
        generated BLOB,
        uploaded_at REAL NOT NULL,
        PRIMARY KEY (release, url)
    );
    CREATE INDEX IF NOT EXISTS sourcemaps_uploaded ON sourcemaps (uploaded_at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# a week's filter looks at this many of its most frequent errors, so its work is bounded
FILTER_SCAN_LIMIT = 20000
WAL_KEPT_BYTES = 4 * 1024 * 1024   # what a checkpointed write-ahead log keeps on disk
INBOX_RECOUNT_SECONDS = 1.0        # the inbox's size is counted anew at most this often
SQLITE_FULL = 13

_ERROR_COLUMNS = (
    "id, filename, function_name, text, line_number, exception_type, blamed, author_name, "
    "author_email, commit_sha, commit_summary, commit_timestamp, blame_revision, "
    "blame_at_requested, count, first_seen, last_seen, last_report, known, alerted_at, "
    "recipients, explanation"
)
_SAVED_COLUMNS = _ERROR_COLUMNS.split(", ", 1)[1]
_JSON = msgspec.json.Encoder()
STATES_PER_QUERY = 300   # three parameters each: well under SQLite's limit of 32766
IDS_PER_QUERY = 900


def _error_from_row(row: sqlite3.Row) -> ErrorRecord:
    blame_at_requested = row["blame_at_requested"]
    return ErrorRecord(
        error_id=row["id"],
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


_RESOLUTION_COLUMNS = (
    "resolved_at, source, fix_commit, fix_author_name, fix_author_email, regressed_at, "
    "regressed_in, old_deployments, old_deployment_revision, old_deployment_seen"
)


def _resolution_from_row(row: sqlite3.Row) -> Resolution:
    return Resolution(**{column: row[column] for column in _RESOLUTION_COLUMNS.split(", ")})


def _saved_values(record: ErrorRecord) -> tuple[Any, ...]:
    """The values of :data:`_SAVED_COLUMNS` for ``record``."""
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


class SqliteTransaction:
    """The writes of one atomic unit, on the writing thread's connection."""

    def __init__(self, connection: sqlite3.Connection):
        self._connection = connection

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        """Run one statement of this backend inside the transaction."""
        return self._connection.execute(sql, args)

    def error_state(self, key: ErrorKey) -> Optional[ErrorState]:
        """Counts and alert state of the error with this identity, if seen before."""
        return self.error_states([key]).get(key)

    def error_states(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, ErrorState]:
        """:meth:`error_state` of many errors at once (those seen before)."""
        states = {}
        for start in range(0, len(keys), STATES_PER_QUERY):
            chunk = keys[start:start + STATES_PER_QUERY]
            # A join, not a row-value IN: SQLite would scan every error for that.
            rows = self._connection.execute(
                "SELECT e.id, e.filename, e.function_name, e.text, e.count, e.first_seen, "
                "e.last_seen, e.alerted_at, e.recipients FROM "
                f"(VALUES {', '.join(['(?, ?, ?)'] * len(chunk))}) AS k JOIN errors e "
                "ON e.filename = k.column1 AND e.function_name = k.column2 "
                "AND e.text = k.column3",
                [part for key in chunk for part in (key.filename, key.function_name, key.text)])
            for row in rows:
                states[ErrorKey(row["filename"], row["function_name"], row["text"])] = ErrorState(
                    row["id"], row["count"], row["first_seen"], row["last_seen"],
                    row["alerted_at"], tuple(json.loads(row["recipients"] or "[]")))
        return states

    def save_error(self, record: ErrorRecord) -> int:
        """Insert or update an error; return its id.

        When its latest occurrence moves to a later week, the last report of the earlier
        week is kept for that week; when its developer or its known state changes, its
        weekly counts move to the new developer's totals."""
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
        except sqlite3.IntegrityError as error:
            raise PlanConflict(f"an error was stored meanwhile: {error}") from None

    def _update_errors(self, records: Sequence[ErrorRecord], plan: Optional[Plan]) -> None:
        """Rewrite stored errors; with a plan, only those still at the count it read."""
        before = self._stored(record.error_id for record in records)
        self._keep_week_reports(records, before)
        assignments = ", ".join(f"{column} = ?" for column in _SAVED_COLUMNS.split(", "))
        if plan is None:
            self._connection.executemany(f"UPDATE errors SET {assignments} WHERE id = ?",
                                         [_saved_values(record) + (record.error_id,)
                                          for record in records])
        else:
            cursor = self._connection.executemany(
                f"UPDATE errors SET {assignments} WHERE id = ? AND count = ?",
                [_saved_values(record) + (record.error_id, plan.read[record.key].count)
                 for record in records])
            if cursor.rowcount != len(records):
                raise PlanConflict(f"{len(records) - cursor.rowcount} errors changed meanwhile")
        self._move_week_totals([(record, before[record.error_id]) for record in records
                                if record.error_id in before and before[record.error_id][1:]
                                != (record.author_email, int(record.known))])

    def _stored(self, error_ids: Iterable[int]) -> dict[int, tuple[float, Optional[str], int]]:
        """(last seen, developer's address, known) of stored errors, by id."""
        ids, found = list(error_ids), {}
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start:start + IDS_PER_QUERY]
            for row in self._connection.execute(
                    "SELECT id, last_seen, author_email, known FROM errors WHERE id IN "
                    f"({', '.join('?' * len(chunk))})", chunk):
                found[row["id"]] = (row["last_seen"], row["author_email"], row["known"])
        return found

    def _keep_week_reports(self, records: Sequence[ErrorRecord],
                           before: dict[int, tuple[float, Optional[str], int]]) -> None:
        """Keep the last report of an error's week when its latest occurrence moves on."""
        moved = [(week_start(before[record.error_id][0]), record.error_id)
                 for record in records if record.error_id in before
                 and week_start(before[record.error_id][0]) != week_start(record.last_seen)]
        self._connection.executemany(
            "INSERT INTO week_reports (error_id, week_start, last_seen, report) "
            "SELECT id, ?, last_seen, last_report FROM errors WHERE id = ? "
            "ON CONFLICT (error_id, week_start) DO UPDATE SET "
            "last_seen = excluded.last_seen, report = excluded.report", moved)

    def _move_week_totals(self, moves: Sequence[tuple[ErrorRecord, tuple[float, Optional[str],
                                                                          int]]]) -> None:
        """Move the weekly counts of errors blamed anew (or made known) to their new
        developer's totals."""
        for record, (_, author, known) in moves:
            weeks = self._connection.execute(
                "SELECT week_start, count FROM error_weeks WHERE error_id = ?",
                (record.error_id,)).fetchall()
            self._connection.executemany(
                "UPDATE week_authors SET count = count - ?, errors = errors - 1 "
                "WHERE week_start = ? AND author = LOWER(?) AND known = ?",
                [(row["count"], row["week_start"], author or "", known) for row in weeks])
            self._add_week_totals([(row["week_start"], record.author_email, int(record.known),
                                    row["count"], 1) for row in weeks])

    def _add_week_totals(self, totals: Sequence[tuple[str, Optional[str], int, int, int]]
                         ) -> None:
        """Add (week, developer's address, known, occurrences, distinct errors) to the
        weeks' totals."""
        self._connection.executemany(
            "INSERT INTO week_authors (week_start, author, known, count, errors) "
            "VALUES (?, LOWER(?), ?, ?, ?) ON CONFLICT (week_start, author, known) DO UPDATE "
            "SET count = count + excluded.count, errors = errors + excluded.errors",
            [(week, author or "", known, count, errors)
             for week, author, known, count, errors in totals])

    def _with_inserted(self, records: Sequence[ErrorRecord]) -> list[int]:
        """The ids of ``records``, inserting those that have none."""
        insert = f"INSERT INTO errors ({_SAVED_COLUMNS}) VALUES " \
                 f"({', '.join('?' * len(_SAVED_COLUMNS.split(', ')))})"
        return [record.error_id or int(
            self._connection.execute(insert, _saved_values(record)).lastrowid or 0)
            for record in records]

    def resolutions(self, error_ids: Sequence[int]) -> dict[int, Resolution]:
        """How these errors were resolved and what became of it (those ever resolved)."""
        found = {}
        for start in range(0, len(error_ids), IDS_PER_QUERY):
            chunk = error_ids[start:start + IDS_PER_QUERY]
            for row in self._connection.execute(
                    f"SELECT error_id, {_RESOLUTION_COLUMNS} FROM error_resolutions WHERE "
                    f"error_id IN ({', '.join('?' * len(chunk))})", list(chunk)):
                found[row["error_id"]] = _resolution_from_row(row)
        return found

    def save_resolution(self, error_id: int, resolution: Resolution) -> None:
        """Store how the error is resolved, replacing what was stored."""
        columns = _RESOLUTION_COLUMNS.split(", ")
        values = [getattr(resolution, column) for column in columns]
        self._connection.execute(
            f"INSERT INTO error_resolutions (error_id, {_RESOLUTION_COLUMNS}) VALUES "
            f"({', '.join('?' * (len(columns) + 1))}) ON CONFLICT (error_id) DO UPDATE SET "
            + ", ".join(f"{column} = excluded.{column}" for column in columns),
            (error_id, *values))

    def note_fix_trailer(self, error_id: int, fix_commit: str) -> bool:
        """Remember that a Fixes: trailer of ``fix_commit`` names the error; True the first
        time, so that each trailer resolves its error once (a reopened error stays open)."""
        cursor = self._connection.execute(
            "INSERT INTO fix_trailers (error_id, fix_commit) VALUES (?, ?) "
            "ON CONFLICT (error_id, fix_commit) DO NOTHING", (error_id, fix_commit))
        return cursor.rowcount == 1

    def count_occurrences(self, error_id: int, when: float, occurrences: int) -> None:
        """Add occurrences to the error's week and day counters, and to its developer's
        totals of the week."""
        self.count_many_occurrences([(error_id, when, occurrences)])

    def count_many_occurrences(self, counts: Sequence[tuple[int, float, int]]) -> None:
        """:meth:`count_occurrences` of many (error id, when, occurrences) at once."""
        self._count_week_totals(counts)
        self._connection.executemany(
            "INSERT INTO error_weeks (error_id, week_start, count, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (week_start, error_id) DO UPDATE SET "
            "count = count + excluded.count, last_seen = excluded.last_seen",
            [(error_id, week_start(when), occurrences, when, when)
             for error_id, when, occurrences in counts])
        self._connection.executemany(
            "INSERT INTO error_days (error_id, day, count) VALUES (?, ?, ?) "
            "ON CONFLICT (error_id, day) DO UPDATE SET count = count + excluded.count",
            [(error_id, day_of(when), occurrences) for error_id, when, occurrences in counts])

    def _count_week_totals(self, counts: Sequence[tuple[int, float, int]]) -> None:
        """Add occurrences to their developers' totals of the week (before the week counts
        are written: an error's first occurrence of a week adds a distinct error)."""
        weeks = {(week_start(when), error_id) for error_id, when, _ in counts}
        seen: set[tuple[str, int]] = set()
        pairs = list(weeks)
        for start in range(0, len(pairs), STATES_PER_QUERY):
            chunk = pairs[start:start + STATES_PER_QUERY]
            seen.update((row[0], row[1]) for row in self._connection.execute(
                "SELECT w.week_start, w.error_id FROM "
                f"(VALUES {', '.join(['(?, ?)'] * len(chunk))}) AS k JOIN error_weeks w "
                "ON w.week_start = k.column1 AND w.error_id = k.column2",
                [part for pair in chunk for part in pair]))
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
        cursor = self._connection.execute(
            "INSERT INTO outbox (error_id, created_at, message, recipients, channel, "
            "destination, message_id, summary, held_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.error_id, now, entry.message, json.dumps(list(entry.recipients)),
             entry.channel, entry.destination, entry.message_id, entry.summary, held_until))
        return int(cursor.lastrowid or 0)

    def mark_digested(self, entry_ids: Sequence[int], digest_id: int, now: float) -> None:
        """Record held entries as carried by the digest ``digest_id`` (their bodies go)."""
        self._connection.executemany(
            "UPDATE outbox SET sent_at = ?, digest_id = ?, message = X'' WHERE id = ?",
            [(now, digest_id, entry_id) for entry_id in entry_ids])

    def hour_count(self, channel: str, destination: str, hour_start: float) -> int:
        """Entries admitted to a destination (or ``*``: the whole channel) in an hour."""
        row = self._connection.execute(
            "SELECT count FROM delivery_hours WHERE channel = ? AND destination = ? "
            "AND hour_start = ?", (channel, destination, hour_start)).fetchone()
        return int(row["count"]) if row else 0

    def count_in_hour(self, channel: str, destination: str, hour_start: float) -> None:
        """Add one admitted entry to a destination's (or ``*``'s) count for an hour."""
        self._connection.execute(
            "INSERT INTO delivery_hours (channel, destination, hour_start, count) "
            "VALUES (?, ?, ?, 1) ON CONFLICT (channel, destination, hour_start) "
            "DO UPDATE SET count = count + 1", (channel, destination, hour_start))

    def issue_update(self, error_id: int, channel: str) -> Optional[tuple[float, int]]:
        """(when, at which count) an error's issue in ``channel`` was last queued an update."""
        row = self._connection.execute(
            "SELECT updated_at, count FROM issue_updates WHERE error_id = ? AND channel = ?",
            (error_id, channel)).fetchone()
        return (row["updated_at"], int(row["count"])) if row else None

    def set_issue_update(self, error_id: int, channel: str, now: float, count: int) -> None:
        """Remember that an update of an error's issue was queued now, at ``count``."""
        self._connection.execute(
            "INSERT INTO issue_updates (error_id, channel, updated_at, count) VALUES "
            "(?, ?, ?, ?) ON CONFLICT (error_id, channel) DO UPDATE SET "
            "updated_at = excluded.updated_at, count = excluded.count",
            (error_id, channel, now, count))

    def postpone(self, inbox_id: int, attempts: int, next_attempt_at: float,
                 error: str) -> None:
        """Leave a request's reports in the inbox for a later attempt."""
        self._connection.execute(
            "UPDATE inbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
            (attempts, next_attempt_at, error[:1000], inbox_id))

    def remove_from_inbox(self, inbox_id: int) -> None:
        """Mark a request's reports processed (they live on in their errors' counts)."""
        self._connection.execute("DELETE FROM inbox WHERE id = ?", (inbox_id,))

    def bump_stat(self, name: str, by: int = 1) -> None:
        """Add to a named counter."""
        self._connection.execute(
            "INSERT INTO stats (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (name, by))


@dataclass(frozen=True)
class SqliteClaim:
    """Inbox requests taken for processing. One server owns a SQLite file, and its one
    processor takes one batch at a time, so taking them needs no lock."""

    items: tuple[InboxItem, ...]


class SqliteStorage:
    """The SQLite database of one flawless server (see :class:`~.interface.Storage`)."""

    def __init__(self, path: str, min_free_bytes: int = 0):
        self.path = path
        self.min_free_bytes = min_free_bytes
        self._inbox_bytes = 0           # as last counted, plus what was added since
        self._inbox_counted_at = float("-inf")
        self._local = threading.local()
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None,
                                     check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed report survives power loss too, and group commit keeps it cheap.
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
        return connection

    def room(self) -> int:
        """Bytes a write can use: free on the disk, plus free pages inside the file."""
        disk = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        connection = self._connection
        pages = connection.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        return disk.f_bavail * disk.f_frsize + pages * page_size

    def _after_failed_write(self, error: sqlite3.Error) -> None:
        """When a write failed for want of space, move the write-ahead log into the file
        and truncate it: it holds frames of the failed write and of earlier ones, and
        left as it is it could keep the disk full for good."""
        if getattr(error, "sqlite_errorcode", None) != SQLITE_FULL and \
                "full" not in str(error):
            return
        try:
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass   # still no room: the next failed write tries again

    def _migrate(self) -> None:
        try:
            with self.transaction() as transaction:
                version = transaction.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StorageUnavailable(
                        f"{self.path} has schema version {version}, newer than this flawless "
                        f"knows ({SCHEMA_VERSION}): upgrade flawless")
                for number in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[number].split(";"):  # no ";" inside one
                        if statement.strip():
                            transaction.execute(statement)
                transaction.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as error:
            raise StorageUnavailable(f"cannot open {self.path}: {error}") from error
        except StorageUnavailable as error:
            if "schema version" in str(error):
                raise
            raise StorageUnavailable(f"cannot open {self.path}: {error}") from error

    @property
    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (one per thread)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def _query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self._connection.execute(sql, args).fetchall()

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[SqliteTransaction]:
        """One atomic write; raises StorageUnavailable when the database refuses it.

        A durable one is on disk when it returns (synchronous=FULL: it survives power loss);
        any other one survives the process being killed, and is made durable by the next
        durable one (they share the write-ahead log, which that one syncs)."""
        connection = self._connection
        try:
            level = "FULL" if durable else "NORMAL"
            if getattr(self._local, "synchronous", "FULL") != level:
                connection.execute(f"PRAGMA synchronous={level}")
                self._local.synchronous = level
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StorageUnavailable(str(error)) from error
        try:
            yield SqliteTransaction(connection)
        except BaseException as failure:
            connection.execute("ROLLBACK")
            if isinstance(failure, sqlite3.Error) and \
                    not isinstance(failure, sqlite3.IntegrityError):
                self._after_failed_write(failure)
                raise StorageUnavailable(str(failure)) from failure
            raise
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            self._after_failed_write(error)
            raise StorageUnavailable(str(error)) from error

    # -- ingest --

    def add_to_inbox(self, payloads: Sequence[tuple[bytes, int]], received_at: float
                     ) -> list[int]:
        """Store accepted requests durably in one transaction; return their inbox ids.

        Each payload is a JSON-RPC body whose valid ``record_error`` calls are to be
        processed, with the number of reports it holds.
        """
        incoming = sum(len(payload) for payload, _ in payloads)
        if self.min_free_bytes:
            self._check_room(incoming, received_at)
        with self.transaction() as transaction:
            ids = [int(transaction.execute(
                "INSERT INTO inbox (received_at, payload, reports) VALUES (?, ?, ?)",
                received_at, payload, reports).lastrowid or 0)
                for payload, reports in payloads]
        self._inbox_bytes += incoming
        return ids

    def _check_room(self, incoming: int, now: float) -> None:
        """Refuse ``incoming`` bytes unless the inbox with them could still be processed."""
        if now - self._inbox_counted_at >= INBOX_RECOUNT_SECONDS:
            self._inbox_bytes = int(self._query(
                "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM inbox")[0][0])
            self._inbox_counted_at = now
        room, needed = self.room(), self.min_free_bytes + self._inbox_bytes + incoming
        if room < needed:
            raise StorageUnavailable(
                f"{room} bytes are free for the database, and processing the reports waiting "
                f"with these would leave less than min_free_disk_bytes: new reports wait "
                "until there is room")

    # -- processing --

    def claim_inbox(self, now: float, limit: int) -> SqliteClaim:
        """Requests whose next attempt is due, oldest first, holding about ``limit`` reports
        (at least one request)."""
        chosen, total = [], 0
        # Each request holds at least one report: ``limit`` rows are always enough.
        for row in self._query("SELECT id, reports FROM inbox INDEXED BY inbox_claim "
                               "WHERE next_attempt_at <= ? ORDER BY id LIMIT ?",
                               now, max(1, limit)):
            chosen.append(row["id"])
            total += row["reports"]
            if total >= limit:
                break
        if not chosen:
            return SqliteClaim(())
        rows = self._query("SELECT id, received_at, payload, attempts FROM inbox WHERE id IN "
                           f"({', '.join('?' * len(chosen))}) ORDER BY id", *chosen)
        return SqliteClaim(tuple(InboxItem(row["id"], row["received_at"],
                                           reports_in_payload(row["payload"]), row["attempts"])
                                 for row in rows))

    def error_states(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, ErrorState]:
        """Stored state of these errors (those seen before), read outside any transaction."""
        return SqliteTransaction(self._connection).error_states(keys)

    def hour_count(self, channel: str, destination: str, hour_start: float) -> int:
        """Entries admitted to a destination in an hour, read outside any transaction."""
        return SqliteTransaction(self._connection).hour_count(channel, destination, hour_start)

    def issue_update(self, error_id: int, channel: str) -> Optional[tuple[float, int]]:
        """When an error's issue was last queued an update, read outside any transaction."""
        return SqliteTransaction(self._connection).issue_update(error_id, channel)

    def apply_plan(self, claim: SqliteClaim, plan: Plan) -> Any:
        """Write ``plan`` (worked out from ``claim``) as :meth:`apply` would have; raises
        PlanConflict, writing nothing, when an error changed since the plan read it."""
        with self.transaction(durable=False) as transaction:
            return replay(plan, transaction, transaction.save_checked)

    def apply(self, claim: SqliteClaim, work: Callable[[SqliteTransaction], Any]) -> Any:
        """Run ``work(transaction)`` atomically; return its result. It is not synced to disk
        at once: a crash of the process cannot undo it, and what it queues is delivered only
        after :meth:`make_durable`, so a power loss cannot undo it after its effect left."""
        with self.transaction(durable=False) as transaction:
            return work(transaction)

    def make_durable(self) -> None:
        """Sync every transaction committed so far to disk (a durable write of its own)."""
        with self.transaction() as transaction:
            transaction.bump_stat("durability barriers")

    def retry_postponed(self, now: float) -> None:
        """Make every postponed request due now (what kept them is gone)."""
        with self.transaction() as transaction:
            transaction.execute("UPDATE inbox SET next_attempt_at = ? WHERE next_attempt_at > ?",
                                now, now)

    def release(self, claim: SqliteClaim) -> None:
        """Nothing to give back: a SQLite claim holds no lock."""

    # -- delivery --

    def due_mail(self, now: float, limit: int) -> list[OutboxMail]:
        """Undelivered entries whose next attempt is due, oldest first, but those held for a
        digest and those of a destination that asked to wait."""
        return [OutboxMail(row["id"], bytes(row["message"]), tuple(json.loads(row["recipients"])),
                           row["attempts"], row["channel"], row["destination"],
                           row["message_id"], row["started_at"] is not None)
                for row in self._query(
                    "SELECT id, message, recipients, attempts, channel, destination, message_id, "
                    "started_at FROM outbox o WHERE sent_at IS NULL AND held_until IS NULL "
                    "AND next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM destination_holds h "
                    "WHERE h.channel = o.channel AND h.destination = o.destination "
                    "AND h.held_until > ?) ORDER BY id LIMIT ?", now, now, limit)]

    def mark_started(self, mail_id: int, now: float) -> None:
        """Record that a delivery of the entry begins: if its outcome is never recorded (a
        crash), the next attempt knows it may have reached the far end."""
        with self.transaction() as transaction:
            transaction.execute("UPDATE outbox SET started_at = ? WHERE id = ?", now, mail_id)

    def mark_sent(self, mail_id: int, now: float) -> None:
        """Record a successful delivery so the mail is never sent again.

        The delivered message itself is dropped (the row keeps when and to whom): nothing
        reads it again, and a flood of alerts must not keep its mail on disk for weeks."""
        with self.transaction() as transaction:
            transaction.execute(
                "UPDATE outbox SET sent_at = ?, last_error = NULL, message = X'' WHERE id = ?",
                now, mail_id)

    def mark_failed(self, mail_id: int, attempts: int, next_attempt_at: float,
                    error: str) -> None:
        """Record a failed delivery and when to try again; the entry's destination waits
        until then too (its entries keep their order, and a far end that is down or asked
        to wait is not tried once per entry)."""
        with self.transaction() as transaction:
            transaction.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, "
                "started_at = NULL WHERE id = ?", attempts, next_attempt_at, error[:1000],
                mail_id)
            transaction.execute(
                "INSERT INTO destination_holds (channel, destination, held_until) "
                "SELECT channel, destination, ? FROM outbox WHERE id = ? "
                "ON CONFLICT (channel, destination) DO UPDATE SET "
                "held_until = excluded.held_until", next_attempt_at, mail_id)

    def held_due(self, now: float, limit: int) -> list[HeldEntry]:
        """Entries held back by the hourly bounds whose hour is over, by channel and
        destination, oldest first."""
        return [HeldEntry(row["id"], row["channel"], row["destination"], row["summary"],
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
            for link in links:
                transaction.execute(
                    "INSERT INTO issue_links (channel, destination, fingerprint, number, url, "
                    "linked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel, destination, "
                    "fingerprint) DO UPDATE SET number = excluded.number, url = excluded.url, "
                    "linked_at = excluded.linked_at", link.channel, link.destination,
                    link.fingerprint, link.number, link.url, now)

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

    # -- retention and health --

    def prune(self, before: float) -> int:
        """Forget counts, errors and delivered mail older than ``before``; return errors
        removed."""
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
            transaction.execute("DELETE FROM sourcemaps WHERE uploaded_at < ?", before)
            transaction.execute("UPDATE outbox SET error_id = NULL WHERE error_id IN "
                                "(SELECT id FROM errors WHERE last_seen < ?)", gone)
            for table in ("error_resolutions", "fix_trailers", "issue_updates"):
                transaction.execute(f"DELETE FROM {table} WHERE error_id IN "
                                    "(SELECT id FROM errors WHERE last_seen < ?)", gone)
            transaction.execute("DELETE FROM delivery_hours WHERE hour_start < ?", before)
            transaction.execute("DELETE FROM destination_holds WHERE held_until < ?", before)
            return transaction.execute("DELETE FROM errors WHERE last_seen < ?",
                                       gone).rowcount

    def inbox_depth(self) -> int:
        """How many accepted reports are not processed yet."""
        return int(self._query("SELECT COALESCE(SUM(reports), 0) FROM inbox")[0][0])

    def oldest_waiting(self) -> Optional[float]:
        """When the oldest report not processed yet was received, or None."""
        rows = self._query("SELECT received_at FROM inbox ORDER BY id LIMIT 1")
        return rows[0][0] if rows else None

    def outbox_depth(self) -> int:
        """How many mails wait for delivery."""
        return int(self._query("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")[0][0])

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

    def deliveries(self, error_id: int, limit: int = 50) -> list[Delivery]:
        """Where the alerts of one error went (or are going), newest first."""
        return [Delivery(row["channel"], row["destination"], row["created_at"], row["sent_at"],
                         int(row["attempts"]), row["last_error"], row["held_until"],
                         row["digest_id"])
                for row in self._query(
                    "SELECT channel, destination, created_at, sent_at, attempts, last_error, "
                    "held_until, digest_id FROM outbox WHERE error_id = ? "
                    "ORDER BY id DESC LIMIT ?", error_id, limit)]

    def stats(self) -> dict[str, int]:
        """Every named counter."""
        return {row["name"]: int(row["value"])
                for row in self._query("SELECT name, value FROM stats")}

    # -- the dashboard --

    def find_error(self, key: ErrorKey) -> Optional[ErrorRecord]:
        """The error with this identity, if seen before."""
        rows = self._query(f"SELECT {_ERROR_COLUMNS} FROM errors WHERE filename = ? AND "
                           "function_name = ? AND text = ?",
                           key.filename, key.function_name, key.text)
        return _error_from_row(rows[0]) if rows else None

    def errors_at_line(self, filename: str, function_name: str,
                       line_number: int) -> list[ErrorRecord]:
        """Errors at one file, function and line number, most recently seen first (finds an
        error whose source line changed since a link to it was made)."""
        return [_error_from_row(row) for row in self._query(
            f"SELECT {_ERROR_COLUMNS} FROM errors WHERE filename = ? AND function_name = ? "
            "AND line_number = ? ORDER BY last_seen DESC LIMIT 10", filename, function_name,
            line_number)]

    def week_errors(self, week: str, include_known: bool = True, offset: int = 0,
                    limit: int = 100, query: str = "") -> list[tuple[ErrorRecord, int]]:
        """Errors seen in the week starting ``week``, with their count in that week, most
        frequent first: ``limit`` of them from ``offset``. ``query`` keeps those whose file,
        function, line, exception type or developer contains it (case-insensitive), among
        the week's FILTER_SCAN_LIMIT most frequent errors."""
        columns = ", ".join("e." + column for column in _ERROR_COLUMNS.split(", "))
        conditions, arguments = [], [week]
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
        else:
            window = ""
        if not include_known:
            conditions.append("e.known = 0")
        rows = self._query(
            f"SELECT {columns}, w.count AS week_count FROM (SELECT error_id, count "
            f"FROM error_weeks WHERE week_start = ? {window}) w JOIN errors e "
            "ON e.id = w.error_id " + ("WHERE " + " AND ".join(conditions) if conditions else "")
            + " ORDER BY w.count DESC, w.error_id LIMIT ? OFFSET ?", *arguments, limit, offset)
        return [(_error_from_row(row), int(row["week_count"])) for row in rows]

    def resolutions(self, error_ids: Sequence[int]) -> dict[int, Resolution]:
        """How these errors were resolved and what became of it (those ever resolved)."""
        return SqliteTransaction(self._connection).resolutions(error_ids)

    def fixes_to_check(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, Resolution]:
        """The errors among ``keys`` that are resolved by a fix commit, with their
        resolution (whether a report's revision contains the fix is for git to say)."""
        if not self._query("SELECT 1 FROM error_resolutions WHERE resolved_at IS NOT NULL "
                           "AND fix_commit IS NOT NULL LIMIT 1"):
            return {}
        columns = ", ".join("r." + column for column in _RESOLUTION_COLUMNS.split(", "))
        found = {}
        for key in keys:
            rows = self._query(
                f"SELECT {columns} FROM errors e JOIN error_resolutions r ON r.error_id = e.id "
                "WHERE e.filename = ? AND e.function_name = ? AND e.text = ? "
                "AND r.resolved_at IS NOT NULL AND r.fix_commit IS NOT NULL",
                key.filename, key.function_name, key.text)
            if rows:
                found[key] = _resolution_from_row(rows[0])
        return found

    def week_totals(self, week: str, include_known: bool = True) -> WeekTotals:
        """The week's occurrences, distinct errors and blamed developers."""
        row = self._query(
            "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(errors), 0), "
            "COUNT(DISTINCT CASE WHEN author <> '' AND count > 0 THEN author END) "
            "FROM week_authors WHERE week_start = ?"
            + ("" if include_known else " AND known = 0"), week)[0]
        return WeekTotals(int(row[0]), int(row[1]), int(row[2]))

    def developer_week_totals(self, week: str, author_email: Optional[str],
                              include_known: bool = True) -> tuple[int, int]:
        """(occurrences, distinct errors) of one developer (None: blamed on nobody) in a
        week."""
        row = self._query(
            "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(errors), 0) FROM week_authors "
            "WHERE week_start = ? AND author = LOWER(?)"
            + ("" if include_known else " AND known = 0"), week, author_email or "")[0]
        return int(row[0]), int(row[1])

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

    def daily_counts(self, error_id: int, since_day: str) -> list[tuple[str, int]]:
        """(day, count) of one error since a day, oldest first."""
        return [(row["day"], int(row["count"])) for row in self._query(
            "SELECT day, count FROM error_days WHERE error_id = ? AND day >= ? ORDER BY day",
            error_id, since_day)]

    def author_errors(self, email: str, offset: int = 0, limit: int = 100
                      ) -> list[ErrorRecord]:
        """Errors blamed on ``email`` (case-insensitive), most recently seen first: ``limit``
        of them from ``offset``."""
        return [_error_from_row(row) for row in self._query(
            f"SELECT {_ERROR_COLUMNS} FROM errors WHERE author_email = ? COLLATE NOCASE "
            "ORDER BY last_seen DESC LIMIT ? OFFSET ?", email, limit, offset)]

    def author_weekly_totals(self, email: str, limit: int = 100
                             ) -> list[tuple[str, int, int]]:
        """(week start, occurrences, distinct errors) of the errors blamed on ``email``,
        newest week first, at most ``limit`` weeks."""
        return [(row[0], int(row[1]), int(row[2])) for row in self._query(
            "SELECT week_start, SUM(count), SUM(errors) FROM week_authors WHERE author = "
            "LOWER(?) GROUP BY week_start HAVING SUM(count) > 0 ORDER BY week_start DESC "
            "LIMIT ?", email, limit)]
