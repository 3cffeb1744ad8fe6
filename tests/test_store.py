"""The SQLite storage: inbox, errors with week and day counts, outbox, retention, schema."""

from __future__ import annotations

import datetime
import json
import sqlite3

import pytest
from test_report import CLEAN_REPORTS
from hypothesis import given, settings
from hypothesis import strategies as st

from flawless.report import (Frame, InvalidReport, Report, parse_report, report_to_dict,
                             stored_form)
from flawless.server.core.calendar import day_of, week_start
from flawless.server.core.model import ErrorKey, ErrorRecord
from flawless.server.storage.records import (IssueLink, StorageUnavailable, decode_report,
                                             encode_report, reports_in_payload)
from flawless.server.storage.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteStorage
from support.outbox import entry

REPORT = Report("builtins.ValueError", "bad",
                (Frame("/srv/shop/cart.py", 7, "add_item", "x = 1", {"qty": "3"}),),
                hostname="web-1")
MONDAY = datetime.datetime(2026, 11, 16, 0, 0, tzinfo=datetime.timezone.utc).timestamp()


def record(key=ErrorKey("shop/cart.py", "add_item", "x = 1"), count=1, seen=MONDAY):
    return ErrorRecord(0, key, 7, "builtins.ValueError", True, "Alice", "alice@example.com",
                       "abc", "Add cart", 1.0, "abc", True, count, seen, seen, REPORT, False,
                       None, (), ("blamed shop/cart.py:7",))


@pytest.fixture
def store(tmp_path):
    return SqliteStorage(str(tmp_path / "flawless.sqlite3"))


def test_weeks_start_on_monday_utc():
    assert week_start(MONDAY) == "2026-11-16"
    assert week_start(MONDAY + 6 * 86400 + 86399) == "2026-11-16"
    assert week_start(MONDAY - 1) == "2026-11-09"
    assert day_of(MONDAY - 1) == "2026-11-15"


def payload(*reports, invalid=0):
    calls = [{"jsonrpc": "2.0", "id": n, "method": "record_error",
              "params": {"report": report_to_dict(report)}} for n, report in enumerate(reports)]
    calls += [{"jsonrpc": "2.0", "id": 99, "method": "record_error",
               "params": {"report": {"exception_type": "x"}}}] * invalid
    return json.dumps(calls if len(calls) > 1 else calls[0]).encode()


def test_inbox_round_trip_and_removal(store):
    ids = store.add_to_inbox([(payload(REPORT, REPORT, invalid=1), 2), (payload(REPORT), 1)],
                             received_at=5.0)
    assert len(ids) == 2 and store.inbox_depth() == 3
    items = store.claim_inbox(now=10.0, limit=10).items
    assert [item.reports for item in items] == [(REPORT, REPORT), (REPORT,)]
    with store.transaction() as transaction:
        transaction.postpone(ids[0], 1, 100.0, "repository unavailable")
        transaction.remove_from_inbox(ids[1])
    assert store.claim_inbox(now=10.0, limit=10).items == ()
    assert [item.inbox_id for item in store.claim_inbox(now=100.0, limit=10).items] == [ids[0]]


def test_a_claim_holds_about_the_limit_of_reports(store):
    store.add_to_inbox([(payload(REPORT, REPORT), 2)] * 5, received_at=1.0)
    assert len(store.claim_inbox(now=2.0, limit=3).items) == 2
    assert len(store.claim_inbox(now=2.0, limit=1).items) == 1


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as transaction:
            transaction.save_error(record())
            raise RuntimeError("crash in the middle")
    assert store.find_error(record().key) is None


def test_errors_are_counted_per_week_and_day(store):
    with store.transaction() as transaction:
        error_id = transaction.save_error(record(count=3))
        transaction.count_occurrences(error_id, MONDAY, 1)
        transaction.count_occurrences(error_id, MONDAY + 3600, 2)
        transaction.count_occurrences(error_id, MONDAY - 3600, 5)
    saved = store.find_error(record().key)
    assert saved.error_id == error_id and saved.count == 3 and saved.last_report == REPORT
    assert [(e.error_id, n) for e, n in store.week_errors("2026-11-16")] == [(error_id, 3)]
    assert [(e.error_id, n) for e, n in store.week_errors("2026-11-09")] == [(error_id, 5)]
    assert store.daily_counts(error_id, "2026-11-01") == [("2026-11-15", 5), ("2026-11-16", 3)]


def test_outbox_mail_is_sent_once(store):
    with store.transaction() as transaction:
        mail_id = transaction.queue_entry(entry("a@example.com"), 1.0)
    [due] = store.due_mail(now=2.0, limit=10)
    assert (due.mail_id, due.recipients, due.channel, due.destination, due.interrupted) == (
        mail_id, ("a@example.com",), "email", "a@example.com", False)
    store.mark_failed(mail_id, 1, next_attempt_at=50.0, error="451 later")
    assert store.due_mail(now=2.0, limit=10) == []
    store.mark_sent(mail_id, now=60.0)
    assert store.due_mail(now=100.0, limit=10) == [] and store.outbox_depth() == 0


def test_a_failed_entry_holds_its_destination_and_only_it(store):
    with store.transaction() as transaction:
        first, second, later = (transaction.queue_entry(entry(address), 1.0) for address in
                                ("a@example.com", "a@example.com", "a@example.com"))
        other = transaction.queue_entry(entry("b@example.com"), 1.0)
    store.mark_failed(first, 1, next_attempt_at=50.0, error="451 later")
    assert [m.mail_id for m in store.due_mail(now=2.0, limit=10)] == [other]
    with store.transaction() as transaction:
        newest = transaction.queue_entry(entry("a@example.com"), 3.0)
    assert [m.mail_id for m in store.due_mail(now=3.0, limit=10)] == [other]
    assert [m.mail_id for m in store.due_mail(now=50.0, limit=10)] == [
        first, second, later, other, newest]


def test_an_entry_whose_delivery_began_comes_back_interrupted(store):
    with store.transaction() as transaction:
        mail_id = transaction.queue_entry(entry("hook#1", "webhook"), 1.0)
    store.mark_started(mail_id, 2.0)
    [due] = store.due_mail(now=3.0, limit=10)
    assert due.interrupted and due.message_id == "msg_webhook_hook#1"
    store.mark_failed(mail_id, 1, next_attempt_at=4.0, error="HTTP 500")
    assert not store.due_mail(now=5.0, limit=10)[0].interrupted


def test_held_entries_wait_for_their_digest(store):
    with store.transaction() as transaction:
        held = [transaction.queue_entry(entry("a@example.com"), 1.0, held_until=3600.0)
                for _ in range(2)]
        other = transaction.queue_entry(entry("hook#1", "webhook"), 1.0, held_until=3600.0)
    assert store.due_mail(now=5000.0, limit=10) == []
    assert store.held_due(now=3599.0, limit=10) == []
    assert [(h.entry_id, h.channel) for h in store.held_due(now=3600.0, limit=10)] == [
        (held[0], "email"), (held[1], "email"), (other, "webhook")]
    assert store.outbox_depth() == 3
    assert [(s.channel, s.pending, s.held) for s in store.channel_states()] == [
        ("email", 2, 2), ("webhook", 1, 1)]
    with store.transaction() as transaction:
        digest = transaction.queue_entry(entry("a@example.com"), 3600.0)
        transaction.mark_digested(held, digest, 3600.0)
    assert [h.entry_id for h in store.held_due(now=3600.0, limit=10)] == [other]
    assert [m.mail_id for m in store.due_mail(now=3600.0, limit=10)] == [digest]


def test_hour_counts_and_issue_links(store):
    with store.transaction() as transaction:
        assert transaction.hour_count("email", "a@example.com", 3600.0) == 0
        transaction.count_in_hour("email", "a@example.com", 3600.0)
        transaction.count_in_hour("email", "a@example.com", 3600.0)
        assert transaction.hour_count("email", "a@example.com", 3600.0) == 2
        assert transaction.hour_count("email", "a@example.com", 7200.0) == 0
        transaction.set_issue_update(7, "github", 10.0, 3)
        transaction.set_issue_update(7, "github", 20.0, 5)
        assert transaction.issue_update(7, "github") == (20.0, 5)
        assert transaction.issue_update(7, "gitlab") is None
    link = IssueLink("github", "acme/shop", "f00d", 12, "https://github.test/acme/shop/12")
    store.save_issue_links([link], 1.0)
    store.save_issue_links([IssueLink("github", "acme/shop", "f00d", 13, "u13")], 2.0)
    assert store.issue_link("github", "acme/shop", "f00d").number == 13
    assert [found.number for found in store.issue_links("f00d")] == [13]
    store.forget_issue_link(IssueLink("github", "acme/shop", "f00d", 13, "u13"))
    assert store.issue_link("github", "acme/shop", "f00d") is None


def test_prune_forgets_what_is_older_than_the_cutoff(store):
    old_key = ErrorKey("shop/old.py", "f", "y")
    with store.transaction() as transaction:
        old = transaction.save_error(record(key=old_key, seen=MONDAY - 30 * 86400))
        transaction.count_occurrences(old, MONDAY - 30 * 86400, 1)
        new = transaction.save_error(record(seen=MONDAY))
        transaction.count_occurrences(new, MONDAY, 1)
    assert store.prune(before=MONDAY - 86400) == 1
    assert store.find_error(old_key) is None
    assert store.find_error(record().key) is not None
    assert store.daily_counts(old, "2000-01-01") == []


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
            "EXPLAIN QUERY PLAN SELECT id FROM errors WHERE author_email = ? COLLATE NOCASE",
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


TEXT = st.text(max_size=40)
FRAME = st.fixed_dictionaries(
    {"filename": st.text(min_size=1, max_size=40).filter(str.strip),
     "line_number": st.integers(min_value=1, max_value=10**6),
     "function_name": st.text(min_size=1, max_size=20)},
    optional={"text": TEXT, "frame_locals": st.dictionaries(
        st.text(min_size=1, max_size=10), TEXT, max_size=4)})
VALID_REPORT = st.fixed_dictionaries(
    {"exception_type": st.text(min_size=1, max_size=30).filter(str.strip),
     "exception_message": TEXT, "traceback": st.lists(FRAME, min_size=1, max_size=4)},
    optional={"hostname": TEXT, "revision": st.from_regex(r"[0-9a-f]{40}", fullmatch=True),
              "error_count": st.integers(min_value=1, max_value=10**6),
              "error_threshold": st.integers(min_value=1, max_value=100),
              "additional_info": TEXT,
              "context": st.dictionaries(st.text(min_size=1, max_size=10), st.one_of(
                  TEXT, st.booleans(), st.integers(min_value=-10**6, max_value=10**6),
                  st.floats(allow_nan=False, allow_infinity=False)), max_size=3),
              "timestamp": st.floats(min_value=0, max_value=4e9)})


@settings(max_examples=300, deadline=None)
@given(st.one_of(VALID_REPORT, CLEAN_REPORTS))
def test_stored_bodies_are_read_back_as_the_wire_schema_reads_them(data):
    try:
        report, kept = parse_report(data), stored_form(data)
    except InvalidReport:
        return  # refused at ingest: never stored
    body = json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "record_error",
                        "params": {"report": data if kept is None else kept}}]).encode()
    assert reports_in_payload(body) == (report,)
    assert decode_report(encode_report(report)) == report
