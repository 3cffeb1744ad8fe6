"""What only the SQLite backend does: its file, its lock, its schema versions."""

from __future__ import annotations

import sqlite3

import pytest

from flawless.server.storage.records import StorageUnavailable, WeekTotals
from flawless.server.storage.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteStorage

from .test_conformance import REPORT, payload, queue, record


def test_a_locked_database_is_storage_unavailable(tmp_path):
    path = str(tmp_path / "flawless.sqlite3")
    store = SqliteStorage(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    store._connection.execute("PRAGMA busy_timeout = 100")
    try:
        with pytest.raises(StorageUnavailable):
            store.add_to_inbox([(payload(REPORT), 1)], received_at=1.0)
    finally:
        blocker.execute("ROLLBACK")
    assert store.add_to_inbox([(payload(REPORT), 1)], received_at=1.0)


def test_a_database_of_the_first_schema_is_migrated_once(tmp_path):
    path = str(tmp_path / "flawless.sqlite3")
    with sqlite3.connect(path) as connection:  # as the first release left it: no version
        connection.executescript(MIGRATIONS[0])
        connection.execute("INSERT INTO outbox (created_at, message, recipients) "
                           "VALUES (1.0, X'00', '[\"a@example.com\"]')")
    store = SqliteStorage(path)
    [waiting] = store.due_mail(now=2.0, limit=10)
    assert (waiting.channel, waiting.recipients) == ("email", ("a@example.com",))
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        plan = " ".join(row[-1] for row in connection.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM errors WHERE lower(author_email) = lower(?)",
            ("a@example.com",)))
    assert "errors_author" in plan
    assert store.find_error(record().key) is None
    SqliteStorage(path)  # opening an up-to-date database changes nothing


def test_a_database_newer_than_this_flawless_is_refused(tmp_path):
    path = str(tmp_path / "flawless.sqlite3")
    SqliteStorage(path)
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageUnavailable, match="newer than this flawless knows"):
        SqliteStorage(path)


def test_a_reopened_file_forgets_the_leases_of_the_server_before(tmp_path):
    path = str(tmp_path / "flawless.sqlite3")
    before = SqliteStorage(path, "killed-while-delivering")
    [mail_id] = queue(before, "a@example.com")
    assert [mail.mail_id for mail in before.due_mail(now=2.0, limit=10)] == [mail_id]
    after = SqliteStorage(path, "restarted")   # no waiting for the dead server's lease
    assert [mail.mail_id for mail in after.due_mail(now=3.0, limit=10)] == [mail_id]


def test_databases_of_version_4_get_their_week_totals(tmp_path):
    path = str(tmp_path / "flawless.sqlite3")
    with sqlite3.connect(path) as connection:
        for migration in MIGRATIONS[:4]:
            connection.executescript(migration)
        connection.execute("PRAGMA user_version = 4")
        connection.execute(
            "INSERT INTO errors (id, filename, function_name, text, line_number, "
            "exception_type, blamed, author_email, count, first_seen, last_seen, last_report) "
            "VALUES (1, 'a.py', 'f', '', 1, 'E', 1, 'Alice@Example.com', 5, 1, 1, '{}')")
        connection.execute("INSERT INTO error_weeks VALUES (1, '2026-11-16', 5, 1, 1)")
    store = SqliteStorage(path)
    assert store.week_totals("2026-11-16") == WeekTotals(5, 1, 1)
    assert store.developer_week_totals("2026-11-16", "alice@example.com") == (5, 1)


def test_reports_wait_while_the_disk_has_no_room_to_process_them(tmp_path):
    path = str(tmp_path / "flawless.sqlite3")
    room = SqliteStorage(path).room()
    assert room > 0
    tight = SqliteStorage(path, min_free_bytes=room + 10**12)
    with pytest.raises(StorageUnavailable, match="min_free_disk_bytes"):
        tight.add_to_inbox([(payload(REPORT), 1)], received_at=1.0)
    assert tight.inbox_depth() == 0
    roomy = SqliteStorage(path, min_free_bytes=1024)
    assert roomy.add_to_inbox([(payload(REPORT), 1)], received_at=1.0)
