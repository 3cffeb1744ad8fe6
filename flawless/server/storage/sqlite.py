"""The embedded backend: one SQLite file in ``data_dir_path`` (WAL, ``synchronous=FULL``).

Each thread has its own connection; the server writes from one thread only (the ``db-write``
pool), so writers never wait on SQLite's lock, while pages read beside them. The schema is
versioned (``PRAGMA user_version``) and brought up to date by :data:`MIGRATIONS` at open.
The statements themselves are shared with PostgreSQL (:mod:`.sql`); :data:`MIGRATIONS` is
the schema of both (``postgresql.py`` translates its few SQLite words).

A full disk must not strand accepted reports: a request is refused unless the room left
for the database (free on the disk, or inside the file) would still hold the whole inbox
once more (what processing it writes) plus ``min_free_bytes`` (for the write-ahead log),
so what was accepted can always be processed. After a write that failed for want of space
the write-ahead log is checkpointed and truncated, and once checkpointed it never keeps
more than :data:`WAL_KEPT_BYTES` on disk.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

from flawless.server.storage.plan import Plan, replay
from flawless.server.storage.records import InboxItem, StorageUnavailable, reports_in_payload
from flawless.server.storage.sql import (LEASE_SECONDS, SqlStorage, SqlTransaction, TableRows,
                                         migrate)

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
    # 8: several servers may share a database (PostgreSQL): an outbox entry is leased to
    # the server delivering it, each server keeps a heartbeat row; authors are compared
    # through lower(), which both SQL dialects index alike.
    """
    ALTER TABLE outbox ADD COLUMN locked_by TEXT;
    ALTER TABLE outbox ADD COLUMN locked_until REAL;
    CREATE TABLE IF NOT EXISTS servers (
        server_id TEXT PRIMARY KEY,
        hostname TEXT NOT NULL,
        pid INTEGER NOT NULL,
        version TEXT NOT NULL,
        started_at REAL NOT NULL,
        seen_at REAL NOT NULL
    );
    DROP INDEX IF EXISTS errors_author;
    CREATE INDEX IF NOT EXISTS errors_author ON errors (lower(author_email), last_seen DESC);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
WAL_KEPT_BYTES = 4 * 1024 * 1024   # what a checkpointed write-ahead log keeps on disk
INBOX_RECOUNT_SECONDS = 1.0        # the inbox's size is counted anew at most this often
SQLITE_FULL = 13


class SqliteTransaction(SqlTransaction):
    """The writes of one atomic unit, on the writing thread's connection."""

    DUPLICATE_KEY = (sqlite3.IntegrityError,)

    def __init__(self, connection: sqlite3.Connection):
        self._connection = connection

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        """Run one statement inside the transaction."""
        return self._connection.execute(sql, args)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement once per row of values; return the rows it changed."""
        return self._connection.executemany(sql, rows).rowcount if rows else 0

    def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        """Run one INSERT per row of values; return the new rows' ids."""
        return [int(self._connection.execute(sql, row).lastrowid or 0) for row in rows]


@dataclass(frozen=True)
class SqliteClaim:
    """Inbox requests taken for processing. One server owns a SQLite file, and its one
    processor takes one batch at a time, so taking them needs no lock."""

    items: tuple[InboxItem, ...]


class SqliteStorage(SqlStorage):
    """The SQLite database of one flawless server (see :class:`~.interface.Storage`)."""

    backend = "sqlite"
    writer_threads = 1   # SQLite takes one writer at a time: more threads would only wait

    def __init__(self, path: str, server_id: Optional[str] = None,
                 lease_seconds: float = LEASE_SECONDS, min_free_bytes: int = 0):
        super().__init__(server_id, lease_seconds)
        self.path = path
        self.min_free_bytes = min_free_bytes
        self._inbox_bytes = 0           # as last counted, plus what was added since
        self._inbox_counted_at = float("-inf")
        self._local = threading.local()
        self._migrate()
        # One server owns a SQLite file: whoever held a lease before this opening is gone,
        # and its entries are due again at once (a server sharing a database waits for a
        # dead holder's leases to run out).
        self.release_leases(of_anyone=True)

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
                migrate(transaction.execute("PRAGMA user_version").fetchone()[0], MIGRATIONS,
                        transaction.execute, self.path)
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

    def _reading(self) -> nullcontext[SqliteTransaction]:
        return nullcontext(SqliteTransaction(self._connection))

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
            connection.execute("COMMIT")
        except BaseException as error:
            if connection.in_transaction:  # SQLite may have rolled back already (disk full)
                connection.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error) and \
                    not isinstance(error, sqlite3.IntegrityError):
                self._after_failed_write(error)
                raise StorageUnavailable(str(error)) from error
            raise

    def describe(self) -> dict[str, Any]:
        """The database, for /check_health."""
        return {"backend": self.backend, "path": self.path, "schema_version": SCHEMA_VERSION}

    # -- ingest --

    def add_to_inbox(self, payloads: Sequence[tuple[bytes, int]], received_at: float
                     ) -> list[int]:
        """Store accepted requests durably in one transaction, unless the disk could not
        hold their processing; return their inbox ids."""
        incoming = sum(len(payload) for payload, _ in payloads)
        if self.min_free_bytes:
            self._check_room(incoming, received_at)
        ids = super().add_to_inbox(payloads, received_at)
        self._inbox_bytes += incoming
        return ids

    def _check_room(self, incoming: int, now: float) -> None:
        """Refuse ``incoming`` bytes unless the inbox with them could still be processed."""
        if now - self._inbox_counted_at >= INBOX_RECOUNT_SECONDS:
            self._inbox_bytes = int(self._query(
                "SELECT COALESCE(SUM(LENGTH(payload)), 0) AS n FROM inbox")[0]["n"])
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
        # Each request holds at least one report: ``limit`` rows are always enough.
        chosen = self._enough_requests(self._query(
            "SELECT id, reports FROM inbox INDEXED BY inbox_claim WHERE next_attempt_at <= ? "
            "ORDER BY id LIMIT ?", now, max(1, limit)), limit)
        if not chosen:
            return SqliteClaim(())
        rows = self._query("SELECT id, received_at, payload, attempts FROM inbox WHERE id IN "
                           f"({', '.join('?' * len(chosen))}) ORDER BY id", *chosen)
        return SqliteClaim(tuple(InboxItem(row["id"], row["received_at"],
                                           reports_in_payload(row["payload"]), row["attempts"])
                                 for row in rows))

    def apply_plan(self, claim: SqliteClaim, plan: Plan) -> Any:
        """Write ``plan`` (worked out from ``claim``) as :meth:`apply` would have; raises
        PlanConflict, writing nothing, when an error changed since the plan read it."""
        with self.transaction(durable=False) as transaction:
            return replay(plan, transaction, transaction.save_checked)

    def apply(self, claim: SqliteClaim, work: Callable[[SqliteTransaction], Any]) -> Any:
        """Run ``work(transaction)`` atomically; return its result. It is not synced to disk
        at once: a crash of the process cannot undo it, and what it queues is delivered only
        after a durable write (the outbox's lease), so a power loss cannot undo it after its
        effect left."""
        with self.transaction(durable=False) as transaction:
            return work(transaction)

    def release(self, claim: SqliteClaim) -> None:
        """Nothing to give back: a SQLite claim holds no lock."""

    # -- moving to another database --

    def tables(self) -> Iterator[TableRows]:
        """Every table's rows (but the heartbeats), each after the tables it refers to, all
        read in one snapshot."""
        connection = self._connection
        names = [row["name"] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name <> 'servers' ORDER BY name")]
        refers = {name: {row["table"] for row in connection.execute(
            f"PRAGMA foreign_key_list({name})")} - {name} for name in names}
        connection.execute("BEGIN")
        try:
            for name in _referred_first(refers):
                columns = tuple(row["name"] for row in connection.execute(
                    f"PRAGMA table_info({name})"))
                yield TableRows(name, columns, (tuple(row) for row in connection.execute(
                    f"SELECT {', '.join(columns)} FROM {name}")))
        finally:
            connection.execute("ROLLBACK")


def _referred_first(refers: dict[str, set[str]]) -> list[str]:
    """The tables ordered so that each comes after those it refers to."""
    ordered: list[str] = []
    while len(ordered) < len(refers):
        ready = sorted(name for name, others in refers.items()
                       if name not in ordered and others <= set(ordered))
        if not ready:
            raise StorageUnavailable(f"tables refer to each other in a cycle: {refers}")
        ordered += ready
    return ordered
