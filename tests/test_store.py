"""The SQLite storage: inbox, errors with week and day counts, outbox, retention, schema."""

from __future__ import annotations

import datetime
import json
import random
import sqlite3
from dataclasses import replace

import pytest
from test_report import CLEAN_REPORTS
from hypothesis import given, settings
from hypothesis import strategies as st

from flawless.report import (Frame, InvalidReport, Report, parse_report, report_to_dict,
                             stored_form)
from flawless.server.core.calendar import day_of, week_start
from flawless.server.core.model import ErrorKey, ErrorRecord
from flawless.server.storage.records import (IssueLink, StorageUnavailable, WeekTotals,
                                             decode_report, encode_report, reports_in_payload)
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


# -- kept counts: a page's totals never sum a week's errors ----------------------------------

def recount(store):
    """week_authors as it must be: the week counts grouped by developer and known state."""
    return sorted(tuple(row) for row in store._query(
        "SELECT w.week_start, LOWER(COALESCE(e.author_email, '')), e.known, SUM(w.count), "
        "COUNT(*) FROM error_weeks w JOIN errors e ON e.id = w.error_id "
        "GROUP BY 1, 2, 3"))


def kept(store):
    return sorted(tuple(row) for row in store._query(
        "SELECT week_start, author, known, count, errors FROM week_authors WHERE count > 0"))


def test_week_totals_are_kept_as_errors_are_counted_blamed_anew_or_made_known(store):
    rng = random.Random(7)
    authors = ["alice@example.com", "ALICE@example.com", "bob@example.org", None]
    for step in range(300):
        key = ErrorKey("shop/cart.py", f"f{rng.randrange(12)}", "x = 1")
        when = MONDAY + rng.randrange(-20, 20) * 86400 + rng.random() * 3600
        with store.transaction() as transaction:
            state = transaction.error_state(key)
            error_id = transaction.save_error(replace(
                record(key=key, seen=when), error_id=state.error_id if state else 0,
                author_email=rng.choice(authors), known=rng.random() < 0.2,
                last_seen=max(when, state.last_seen) if state else when))
            transaction.count_occurrences(error_id, when, rng.randrange(1, 5))
    assert kept(store) == recount(store)
    week = "2026-11-16"
    totals = store.week_totals(week)
    rows = store.week_errors(week, limit=10**6)
    assert (totals.occurrences, totals.errors) == (sum(n for _, n in rows), len(rows))
    assert totals.developers == len({e.author_email.lower() for e, _ in rows if e.author_email})
    unknown = store.week_totals(week, include_known=False)
    assert unknown.errors == len(store.week_errors(week, include_known=False, limit=10**6))
    assert store.developer_week_totals(week, "Alice@Example.com") == (
        sum(n for e, n in rows if (e.author_email or "").lower() == "alice@example.com"),
        sum(1 for e, _ in rows if (e.author_email or "").lower() == "alice@example.com"))


def test_a_weeks_errors_come_in_pages_most_frequent_first(store):
    with store.transaction() as transaction:
        for number in range(25):
            error_id = transaction.save_error(record(key=ErrorKey("a.py", f"f{number}", "")))
            transaction.count_occurrences(error_id, MONDAY, number + 1)
    pages = [store.week_errors("2026-11-16", offset=offset, limit=10) for offset in (0, 10, 20)]
    assert [[n for _, n in page] for page in pages] == [
        list(range(25, 15, -1)), list(range(15, 5, -1)), list(range(5, 0, -1))]
    assert [e.key.function_name for e, _ in store.week_errors("2026-11-16", query="F1")] == [
        "f19", "f18", "f17", "f16", "f15", "f14", "f13", "f12", "f11", "f10", "f1"]
    assert store.week_errors("2026-11-16", query="100%_") == []


def test_the_last_report_of_a_past_week_is_kept(store):
    first = Report("builtins.ValueError", "of the first week", REPORT.traceback)
    with store.transaction() as transaction:
        error_id = transaction.save_error(replace(record(seen=MONDAY), last_report=first))
        transaction.count_occurrences(error_id, MONDAY, 1)
    later = MONDAY + 8 * 86400
    with store.transaction() as transaction:
        transaction.save_error(replace(record(seen=later), error_id=error_id))
        transaction.count_occurrences(error_id, later, 1)
    assert store.week_report(error_id, "2026-11-16") == first
    assert store.week_report(error_id, "2026-11-23") is None   # the latest is the error's own
    assert store.error_week_count(error_id, "2026-11-16") == 1


def test_prune_keeps_working_when_an_error_was_last_seen_on_the_cutoff_day(store):
    cutoff = MONDAY + 2 * 86400 + 7200
    key = ErrorKey("shop/edge.py", "f", "z")
    with store.transaction() as transaction:
        edge = transaction.save_error(record(key=key, seen=cutoff - 3600))
        transaction.count_occurrences(edge, cutoff - 3600, 1)
    assert store.prune(before=cutoff) == 0       # its week and day are still counted
    assert store.find_error(key) is not None
    assert store.prune(before=cutoff + 7 * 86400) == 1
    assert store.week_totals("2026-11-16").occurrences == 0


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
