"""Every method of the storage interface, against every backend (SQLite and PostgreSQL).

A method added to ``storage/interface.py`` gets its test here, so both backends are held
to one behaviour. ``open_store`` (tests/conftest.py) opens one database per test; each call
is another server sharing it.
"""

from __future__ import annotations

import datetime
import json
import random
from dataclasses import replace

import pytest

from flawless.report import Frame, Report, report_to_dict
from flawless.server.core.calendar import day_of, week_start
from flawless.server.core.model import ErrorKey, ErrorRecord, Resolution
from flawless.server.storage.records import IssueLink, SourceMapFile
from flawless.server.storage.sql import ALIVE_SECONDS, LEASE_SECONDS
from support.outbox import entry

REPORT = Report("builtins.ValueError", "bad",
                (Frame("/srv/shop/cart.py", 7, "add_item", "x = 1", {"qty": "3"}),),
                hostname="web-1")
MONDAY = datetime.datetime(2026, 11, 16, 0, 0, tzinfo=datetime.timezone.utc).timestamp()
KEY = ErrorKey("shop/cart.py", "add_item", "x = 1")


def record(key=KEY, count=1, seen=MONDAY, email="alice@example.com", known=False):
    return ErrorRecord(0, key, 7, "builtins.ValueError", True, "Alice", email,
                       "abc", "Add cart", 1.0, "abc", True, count, seen, seen, REPORT, known,
                       None, (), ("blamed shop/cart.py:7",))


def payload(*reports, invalid=0):
    calls = [{"jsonrpc": "2.0", "id": n, "method": "record_error",
              "params": {"report": report_to_dict(report)}} for n, report in enumerate(reports)]
    calls += [{"jsonrpc": "2.0", "id": 99, "method": "record_error",
               "params": {"report": {"exception_type": "x"}}}] * invalid
    return json.dumps(calls if len(calls) > 1 else calls[0]).encode()


def save(store, *records, when=MONDAY):
    """Save each record with one occurrence at ``when``; return their ids."""
    with store.transaction() as transaction:
        ids = [transaction.save_error(item) for item in records]
        for error_id in ids:
            transaction.count_occurrences(error_id, when, 1)
    return ids


def queue(store, *addresses, error_id=None, at=1.0, channel="email", held_until=None):
    with store.transaction() as transaction:
        return [transaction.queue_entry(replace(entry(address, channel), error_id=error_id), at,
                                        held_until=held_until)
                for address in addresses]


def lease(store, now):
    """Lease every due entry to ``store``'s server, as its outbox does; return their ids."""
    return [mail.mail_id for mail in store.due_mail(now=now, limit=100)]


@pytest.fixture
def store(open_store):
    return open_store("server-a")


def test_weeks_start_on_monday_utc():
    assert week_start(MONDAY) == "2026-11-16"
    assert week_start(MONDAY + 6 * 86400 + 86399) == "2026-11-16"
    assert week_start(MONDAY - 1) == "2026-11-09"
    assert day_of(MONDAY - 1) == "2026-11-15"


def test_the_backend_describes_itself_without_secrets(store):
    described = store.describe()
    assert described["backend"] == store.backend and described["schema_version"] >= 3
    assert "password" not in json.dumps(described)


# -- ingest and processing --

def test_inbox_round_trip_and_removal(store):
    ids = store.add_to_inbox([(payload(REPORT, REPORT, invalid=1), 2), (payload(REPORT), 1)],
                             received_at=5.0)
    assert len(ids) == 2 and len(set(ids)) == 2 and store.inbox_depth() == 3
    claim = store.claim_inbox(now=10.0, limit=10)
    assert [item.reports for item in claim.items] == [(REPORT, REPORT), (REPORT,)]
    assert [item.inbox_id for item in claim.items] == ids
    assert [item.received_at for item in claim.items] == [5.0, 5.0]

    def work(transaction):
        transaction.postpone(ids[0], 1, 100.0, "repository unavailable")
        transaction.remove_from_inbox(ids[1])
        return "done"

    assert store.apply(claim, work) == "done"
    assert store.inbox_depth() == 2
    assert store.claim_inbox(now=10.0, limit=10).items == ()
    later = store.claim_inbox(now=100.0, limit=10)
    assert [(item.inbox_id, item.attempts) for item in later.items] == [(ids[0], 1)]
    store.release(later)


def test_the_oldest_waiting_report_is_known(store):
    assert store.oldest_waiting() is None
    store.add_to_inbox([(payload(REPORT), 1)], received_at=5.0)
    store.add_to_inbox([(payload(REPORT), 1)], received_at=7.0)
    assert store.oldest_waiting() == 5.0


def test_a_claim_holds_about_the_limit_of_reports(store):
    store.add_to_inbox([(payload(REPORT, REPORT), 2)] * 5, received_at=1.0)
    for limit, requests in ((3, 2), (1, 1), (4, 2), (100, 5)):
        claim = store.claim_inbox(now=2.0, limit=limit)
        assert len(claim.items) == requests, limit
        store.release(claim)


def test_a_released_claim_is_claimed_again_untouched(store):
    [inbox_id] = store.add_to_inbox([(payload(REPORT), 1)], received_at=1.0)
    store.release(store.claim_inbox(now=2.0, limit=10))
    claim = store.claim_inbox(now=2.0, limit=10)
    assert [(item.inbox_id, item.attempts) for item in claim.items] == [(inbox_id, 0)]
    store.release(claim)


def test_a_failed_apply_keeps_nothing_and_gives_the_claim_back(store):
    store.add_to_inbox([(payload(REPORT), 1)], received_at=1.0)
    claim = store.claim_inbox(now=2.0, limit=10)

    def crash(transaction):
        transaction.save_error(record())
        transaction.remove_from_inbox(claim.items[0].inbox_id)
        raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        store.apply(claim, crash)
    assert store.find_error(KEY) is None and store.inbox_depth() == 1
    again = store.claim_inbox(now=2.0, limit=10)
    assert len(again.items) == 1
    store.release(again)


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as transaction:
            transaction.save_error(record())
            raise RuntimeError("crash in the middle")
    assert store.find_error(KEY) is None


def test_error_states_are_those_seen_before(store):
    other = ErrorKey("shop/other.py", "f", "y")
    [error_id] = save(store, record(count=4))
    with store.transaction() as transaction:
        states = transaction.error_states([other, KEY, KEY])
    assert list(states) == [KEY]
    state = states[KEY]
    assert (state.error_id, state.count, state.first_seen, state.alerted_at) == \
        (error_id, 4, MONDAY, None)


def test_an_error_is_updated_in_place(store):
    [error_id] = save(store, record(count=1))
    updated = replace(record(count=7, seen=MONDAY + 60), error_id=error_id,
                      alerted_at=MONDAY + 60, recipients=("alice@example.com",), known=True)
    with store.transaction() as transaction:
        assert transaction.save_error(updated) == error_id
    saved = store.find_error(KEY)
    assert saved == replace(updated, first_seen=MONDAY + 60)
    with store.transaction() as transaction:
        assert transaction.error_states([KEY])[KEY].recipients == ("alice@example.com",)


def test_errors_are_counted_per_week_and_day(store):
    with store.transaction() as transaction:
        error_id = transaction.save_error(record(count=3))
        transaction.count_occurrences(error_id, MONDAY, 1)
        transaction.count_occurrences(error_id, MONDAY + 3600, 2)
        transaction.count_occurrences(error_id, MONDAY - 3600, 5)
    saved = store.find_error(KEY)
    assert saved.error_id == error_id and saved.count == 3 and saved.last_report == REPORT
    assert [(e.error_id, n) for e, n in store.week_errors("2026-11-16")] == [(error_id, 3)]
    assert [(e.error_id, n) for e, n in store.week_errors("2026-11-09")] == [(error_id, 5)]
    assert store.daily_counts(error_id, "2026-11-01") == [("2026-11-15", 5), ("2026-11-16", 3)]
    assert store.daily_counts(error_id, "2026-11-16") == [("2026-11-16", 3)]


def test_stats_are_named_counters(store):
    with store.transaction() as transaction:
        transaction.bump_stat("dropped: whitelist")
        transaction.bump_stat("dropped: whitelist", 4)
        transaction.bump_stat("dropped: ignored")
    assert store.stats() == {"dropped: whitelist": 5, "dropped: ignored": 1}


# -- the dashboard --

def test_week_errors_most_frequent_first_and_known_ones_on_request(store):
    often, known = ErrorKey("a.py", "f", "1"), ErrorKey("b.py", "g", "2")
    ids = save(store, record(), record(key=often), record(key=known, known=True))
    with store.transaction() as transaction:
        transaction.count_occurrences(ids[1], MONDAY, 5)
    assert [(e.key, n) for e, n in store.week_errors("2026-11-16")] == \
        [(often, 6), (KEY, 1), (known, 1)]
    assert [e.key for e, _ in store.week_errors("2026-11-16", include_known=False)] == \
        [often, KEY]
    assert store.week_errors("2026-11-23") == []


def test_errors_at_a_line_most_recent_first(store):
    moved = ErrorKey(KEY.filename, KEY.function_name, "x = 2")
    save(store, record(), record(key=moved, seen=MONDAY + 10))
    assert [e.key for e in store.errors_at_line(KEY.filename, KEY.function_name, 7)] == \
        [moved, KEY]
    assert store.errors_at_line(KEY.filename, KEY.function_name, 8) == []


def test_an_authors_errors_and_weekly_totals_ignore_case(store):
    mine, theirs = ErrorKey("a.py", "f", "1"), ErrorKey("b.py", "g", "2")
    save(store, record(key=mine, email="Alice@Example.com"),
         record(key=theirs, email="bob@example.com"))
    save(store, record(key=ErrorKey("c.py", "h", "3"), seen=MONDAY - 7 * 86400),
         when=MONDAY - 7 * 86400)
    assert [e.key for e in store.author_errors("ALICE@example.COM")] == \
        [mine, ErrorKey("c.py", "h", "3")]
    assert len(store.author_errors("alice@example.com", limit=1)) == 1
    assert [e.key for e in store.author_errors("alice@example.com", offset=1)] == \
        [ErrorKey("c.py", "h", "3")]
    assert store.author_weekly_totals("alice@EXAMPLE.com") == [("2026-11-16", 1, 1),
                                                               ("2026-11-09", 1, 1)]
    assert store.author_errors("nobody@example.com") == []


def test_prune_forgets_what_is_older_than_the_cutoff(store):
    old_key = ErrorKey("shop/old.py", "f", "y")
    old, new = save(store, record(key=old_key, seen=MONDAY - 30 * 86400), record(),
                    when=MONDAY - 30 * 86400)
    queue(store, "a@example.com", error_id=old)
    with store.transaction() as transaction:
        transaction.count_in_hour("email", "a@example.com", MONDAY - 30 * 86400)
        transaction.set_issue_update(old, "github", MONDAY - 30 * 86400, 1)
    assert store.prune(before=MONDAY - 86400) == 1
    assert store.hour_count("email", "a@example.com", MONDAY - 30 * 86400) == 0
    assert store.issue_update(old, "github") is None
    assert store.find_error(old_key) is None
    assert store.find_error(KEY) is not None
    assert store.daily_counts(old, "2000-01-01") == []
    assert store.outbox_depth() == 1  # its undelivered mail is kept, without the error


# -- delivery --

def test_outbox_mail_is_sent_once(store):
    [mail_id] = queue(store, "a@example.com")
    assert store.outbox_depth() == 1
    [mail] = store.due_mail(now=2.0, limit=10)
    assert (mail.mail_id, mail.recipients, mail.attempts, mail.message, mail.channel,
            mail.destination, mail.message_id, mail.interrupted) == \
        (mail_id, ("a@example.com",), 0, b"Subject: x\r\n\r\nbody", "email", "a@example.com",
         "msg_email_a@example.com", False)
    assert store.mark_failed(mail_id, 1, next_attempt_at=50.0, error="451 later")
    assert store.due_mail(now=2.0, limit=10) == []
    [mail] = store.due_mail(now=50.0, limit=10)
    assert mail.attempts == 1
    assert store.mark_sent(mail_id, now=60.0)
    assert store.due_mail(now=100.0, limit=10) == [] and store.outbox_depth() == 0


def test_a_failed_entry_holds_its_destination_and_only_it(store):
    first, second, later = queue(store, "a@example.com", "a@example.com", "a@example.com")
    [other] = queue(store, "b@example.com")
    assert lease(store, 2.0) == [first, second, later, other]
    store.release_leases()
    assert store.mark_failed(first, 1, next_attempt_at=50.0, error="451 later") is False
    lease(store, 2.0)
    assert store.mark_failed(first, 1, next_attempt_at=50.0, error="451 later")
    store.release_leases()
    assert lease(store, 2.0) == [other]
    [newest] = queue(store, "a@example.com", at=3.0)
    assert lease(store, 3.0) == [other]
    assert lease(store, 50.0) == [first, second, later, other, newest]


def test_an_entry_whose_delivery_began_comes_back_interrupted(store):
    [mail_id] = queue(store, "hook#1", channel="webhook")
    lease(store, 2.0)
    store.mark_started(mail_id, 2.0)
    [due] = store.due_mail(now=3.0, limit=10)
    assert due.interrupted and due.message_id == "msg_webhook_hook#1"
    assert store.mark_failed(mail_id, 1, next_attempt_at=4.0, error="HTTP 500")
    assert not store.due_mail(now=5.0, limit=10)[0].interrupted


def test_held_entries_wait_for_their_digest(open_store):
    store, other_server = open_store("server-a"), open_store("server-b")
    held = queue(store, "a@example.com", "a@example.com", held_until=3600.0)
    [other] = queue(store, "hook#1", channel="webhook", held_until=3600.0)
    assert store.due_mail(now=5000.0, limit=10) == []
    assert store.held_due(now=3599.0, limit=10) == []
    assert [(h.entry_id, h.channel) for h in store.held_due(now=3600.0, limit=10)] == [
        (held[0], "email"), (held[1], "email"), (other, "webhook")]
    assert store.outbox_depth() == 3
    assert [(s.channel, s.pending, s.held) for s in store.channel_states()] == [
        ("email", 2, 2), ("webhook", 1, 1)]
    with store.transaction() as transaction:
        digest = transaction.queue_entry(entry("a@example.com"), 3600.0)
        assert transaction.mark_digested(held, digest, 3600.0) == 2
    with other_server.transaction() as transaction:   # it read them before: too late
        assert transaction.mark_digested(held, 99, 3601.0) == 0
    assert [h.entry_id for h in store.held_due(now=3600.0, limit=10)] == [other]
    assert lease(store, 3600.0) == [digest]
    assert [(d.channel, d.digest_id) for d in store.deliveries(0)] == []


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
    assert store.hour_count("email", "a@example.com", 3600.0) == 2
    assert store.issue_update(7, "github") == (20.0, 5)
    link = IssueLink("github", "acme/shop", "f00d", 12, "https://github.test/acme/shop/12")
    store.save_issue_links([link], 1.0)
    store.save_issue_links([IssueLink("github", "acme/shop", "f00d", 13, "u13")], 2.0)
    assert store.issue_link("github", "acme/shop", "f00d").number == 13
    assert [found.number for found in store.issue_links("f00d")] == [13]
    store.forget_issue_link(IssueLink("github", "acme/shop", "f00d", 13, "u13"))
    assert store.issue_link("github", "acme/shop", "f00d") is None


def test_an_errors_deliveries_and_the_channels_waiting(store):
    [error_id] = save(store, record())
    mail, hook = queue(store, "a@example.com", error_id=error_id) + \
        queue(store, "hook#1", channel="webhook", error_id=error_id)
    lease(store, 2.0)
    assert store.mark_sent(mail, 3.0)
    assert store.mark_failed(hook, 1, 60.0, "HTTP 503")
    assert [(d.channel, d.sent_at, d.attempts, d.last_error)
            for d in store.deliveries(error_id)] == [("webhook", None, 1, "HTTP 503"),
                                                     ("email", 3.0, 0, None)]
    assert [(s.channel, s.pending, s.failing, s.last_error)
            for s in store.channel_states()] == [("webhook", 1, 1, "HTTP 503")]


def test_postponed_requests_are_retried_at_once_on_request(store):
    store.add_to_inbox([(payload(REPORT), 1)], received_at=1.0)
    claim = store.claim_inbox(now=2.0, limit=10)
    store.apply(claim, lambda transaction: transaction.postpone(
        claim.items[0].inbox_id, 1, 500.0, "repository unavailable"))
    assert store.claim_inbox(now=3.0, limit=10).items == ()
    store.retry_postponed(now=3.0)
    again = store.claim_inbox(now=3.0, limit=10)
    assert len(again.items) == 1
    store.release(again)


def test_due_mail_is_oldest_first_and_bounded(store):
    ids = queue(store, "a@example.com", "b@example.com", "c@example.com")
    assert [mail.mail_id for mail in store.due_mail(now=2.0, limit=2)] == ids[:2]


def test_a_leased_entry_is_left_to_its_holder_until_the_lease_runs_out(open_store):
    first, second = open_store("server-a"), open_store("server-b")
    [mail_id] = queue(first, "a@example.com")
    assert [mail.mail_id for mail in first.due_mail(now=10.0, limit=10)] == [mail_id]
    assert second.due_mail(now=10.0, limit=10) == []
    # the holder asks again (after a failure to record, say): still its own
    assert [mail.mail_id for mail in first.due_mail(now=11.0, limit=10)] == [mail_id]
    assert second.due_mail(now=11.0 + LEASE_SECONDS - 1, limit=10) == []
    # the holder died: the other server takes it over once the lease runs out
    assert [mail.mail_id for mail in second.due_mail(now=12.0 + LEASE_SECONDS,
                                                     limit=10)] == [mail_id]
    assert not first.mark_sent(mail_id, now=13.0 + LEASE_SECONDS)
    assert not first.mark_failed(mail_id, 1, 100.0, "late")
    assert first.outbox_depth() == 1
    assert second.mark_sent(mail_id, now=13.0 + LEASE_SECONDS)
    assert first.outbox_depth() == 0


def test_a_holder_extends_its_leases_and_gives_them_back(open_store):
    first, second = open_store("server-a"), open_store("server-b")
    queue(first, "a@example.com", "b@example.com")
    assert len(first.due_mail(now=10.0, limit=10)) == 2
    assert first.extend_leases(now=10.0 + LEASE_SECONDS / 2) == 2
    assert second.due_mail(now=11.0 + LEASE_SECONDS, limit=10) == []
    first.release_leases()
    assert len(second.due_mail(now=11.0 + LEASE_SECONDS, limit=10)) == 2
    assert first.extend_leases(now=12.0 + LEASE_SECONDS) == 0


# -- the servers sharing the database --

def test_heartbeats_tell_which_servers_are_alive(open_store):
    first, second = open_store("server-a"), open_store("server-b")
    first.heartbeat(now=100.0, started_at=50.0, version="1.0")
    second.heartbeat(now=100.0, started_at=90.0, version="1.1")
    assert [(s.server_id, s.started_at, s.version) for s in first.live_servers(now=100.0)] \
        == [("server-a", 50.0, "1.0"), ("server-b", 90.0, "1.1")]
    second.heartbeat(now=100.0 + ALIVE_SECONDS, started_at=90.0, version="1.1")
    assert [s.server_id for s in first.live_servers(now=101.0 + ALIVE_SECONDS)] == \
        ["server-b"]
    [alive] = second.live_servers(now=101.0 + ALIVE_SECONDS)
    assert alive.seen_at == 100.0 + ALIVE_SECONDS and alive.pid > 0 and alive.hostname

def values(row):
    """A row's values, whichever backend read it."""
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def kept(store):
    return sorted(values(row) for row in store._query(
        "SELECT week_start, author, known, count, errors FROM week_authors WHERE count > 0"))


def recount(store):
    """week_authors as it must be: the week counts grouped by developer and known state."""
    return sorted(values(row) for row in store._query(
        "SELECT w.week_start, LOWER(COALESCE(e.author_email, '')), e.known, SUM(w.count), "
        "COUNT(*) FROM error_weeks w JOIN errors e ON e.id = w.error_id "
        "GROUP BY 1, 2, 3"))


def test_week_totals_are_kept_as_errors_are_counted_blamed_anew_or_made_known(store):
    rng = random.Random(7)
    authors = ["alice@example.com", "ALICE@example.com", "bob@example.org", None]
    for step in range(300):
        key = ErrorKey("shop/cart.py", f"f{rng.randrange(12)}", "x = 1")
        when = MONDAY + rng.randrange(-20, 20) * 86400 + rng.random() * 3600
        with store.transaction() as transaction:
            state = transaction.error_states([key]).get(key)
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



def test_resolutions_and_fix_trailers(store):
    [error_id] = save(store, record())
    resolution = Resolution(resolved_at=5.0, source="a Fixes: trailer in abc", fix_commit="abc",
                            fix_author_name="Bob", fix_author_email="bob@example.org")
    with store.transaction() as transaction:
        assert transaction.resolutions([error_id]) == {}
        transaction.save_resolution(error_id, resolution)
        assert transaction.note_fix_trailer(error_id, "abc")
        assert not transaction.note_fix_trailer(error_id, "abc")   # once per trailer
    assert store.resolutions([error_id]) == {error_id: resolution}
    assert store.fixes_to_check([KEY, ErrorKey("x.py", "f", "")]) == {KEY: resolution}
    reopened = replace(resolution, resolved_at=None, regressed_at=9.0, regressed_in="def")
    with store.transaction() as transaction:
        transaction.save_resolution(error_id, reopened)
    assert store.resolutions([error_id]) == {error_id: reopened}
    assert store.fixes_to_check([KEY]) == {}


def test_source_maps_by_release_and_url(store):
    store.save_sourcemaps("abc", [SourceMapFile("https://cdn.test/app.js", b'{"version": 3}',
                                                b"var a;"),
                                  SourceMapFile("https://cdn.test/b.js", b"{}", None)], 1.0)
    store.save_sourcemaps("abc", [SourceMapFile("https://cdn.test/app.js", b"{}", None)], 2.0)
    assert store.sourcemap("abc", ["https://cdn.test/x.js", "https://cdn.test/app.js"]) == \
        SourceMapFile("https://cdn.test/app.js", b"{}", None)
    assert store.sourcemap("def", ["https://cdn.test/app.js"]) is None
    store.prune(before=3.0)
    assert store.sourcemap("abc", ["https://cdn.test/b.js"]) is None
