"""The outbox in-process: a real outbox (each backend), channels that answer when the test
says, and a task.Clock, so retries, backoff, leases and stopping are exact and take no real
time."""

from __future__ import annotations

from typing import Any, Optional

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from flawless.server.delivery.channels import DeliveryError
from flawless.server.delivery.composing import Composer, Destinations
from flawless.server.delivery.outbox import OutboxService
from flawless.server.storage.records import OutboxMail
from flawless.server.storage.sql import LEASE_SECONDS
from flawless.server.threads import InlineRunner
from support.outbox import entry
from support.runners import ManualRunner

NOW = 1_763_700_000.0
COMPOSER = Composer("flawless@example.com", Destinations(), lambda: "http://flawless.test")


class FakeChannel:
    """A channel whose deliveries stay pending until the test settles them."""

    name = "email"
    looks_before_repeating = False

    def __init__(self) -> None:
        self.pending: list[tuple[OutboxMail, defer.Deferred]] = []
        self.delivered: list[tuple[str, ...]] = []

    def deliver(self, entry: OutboxMail) -> defer.Deferred:
        answer: defer.Deferred = defer.Deferred()
        self.pending.append((entry, answer))
        return answer

    def accept_all(self) -> None:
        pending, self.pending = self.pending, []
        for delivered, answer in pending:
            self.delivered.append(delivered.recipients)
            answer.callback(None)

    def refuse_all(self, reason: str = "451 try later",
                   retry_after: Optional[float] = None) -> None:
        pending, self.pending = self.pending, []
        for _, answer in pending:
            answer.errback(DeliveryError(reason, retry_after))


@pytest.fixture
def storage(open_store: Any) -> Any:
    return open_store("server-a")


def queue(storage: Any, *addresses: str) -> list[int]:
    with storage.transaction() as transaction:
        return [transaction.queue_entry(entry(address), NOW) for address in addresses]


def start(storage: Any, channel: Any, clock: Optional[Clock] = None, writer: Any = None,
          **options: Any) -> tuple[OutboxService, Clock]:
    if clock is None:
        clock = Clock()
        clock.advance(NOW)
    outbox = OutboxService(storage, writer or InlineRunner(),
                           {"email": channel} if channel else {}, COMPOSER, clock,
                           unit_random=lambda: 0.5, **options)
    outbox.startService()
    return outbox, clock


def row(storage: Any, mail_id: int) -> Any:
    return storage._query("SELECT attempts, next_attempt_at, sent_at, last_error FROM outbox "
                          "WHERE id = ?", mail_id)[0]


def test_refused_entries_are_retried_until_each_is_delivered_exactly_once(storage) -> None:
    ids = queue(storage, "a@example.com", "b@example.com")
    channel = FakeChannel()
    outbox, clock = start(storage, channel, first_retry=2.0, max_backoff=60.0)
    for _ in range(3):
        assert len(channel.pending) == 1
        channel.refuse_all()
        clock.advance(0)
        while channel.pending:
            channel.refuse_all()
        clock.advance(61)
    assert [row(storage, mail_id)["attempts"] for mail_id in ids] == [3, 3]
    assert "451" in row(storage, ids[0])["last_error"]
    for _ in range(4):
        channel.accept_all()
        clock.advance(61)
    assert sorted(channel.delivered) == [("a@example.com",), ("b@example.com",)]
    assert storage.outbox_depth() == 0 and outbox.delivered == 2
    outbox.stopService()


def test_backoff_doubles_from_the_first_retry(storage) -> None:
    [mail_id] = queue(storage, "a@example.com")
    channel = FakeChannel()
    outbox, clock = start(storage, channel, first_retry=2.0, max_backoff=3600.0)
    delays = []
    for _ in range(4):
        channel.refuse_all()
        delays.append(row(storage, mail_id)["next_attempt_at"] - clock.seconds())
        clock.advance(delays[-1] + 1)
    # unit_random 0.5 puts each delay at three quarters of 2, 4, 8, 16 seconds
    assert delays == [1.5, 3.0, 6.0, 12.0]
    outbox.stopService()


def test_a_wait_asked_for_by_the_far_end_is_honoured(storage) -> None:
    [mail_id] = queue(storage, "a@example.com")
    channel = FakeChannel()
    outbox, clock = start(storage, channel, first_retry=2.0)
    channel.refuse_all("429 slow down", retry_after=30.0)
    assert row(storage, mail_id)["next_attempt_at"] == clock.seconds() + 30.0
    clock.advance(29)
    assert channel.pending == []
    clock.advance(2)
    assert len(channel.pending) == 1
    outbox.stopService()


def test_wake_delivers_at_once_instead_of_at_the_next_poll(storage) -> None:
    channel = FakeChannel()
    outbox, clock = start(storage, channel, poll_interval=60.0)
    queue(storage, "a@example.com")
    assert channel.pending == []
    outbox.wake()
    clock.advance(0)
    assert len(channel.pending) == 1
    outbox.stopService()


def test_stopping_waits_for_the_entry_in_flight(storage) -> None:
    queue(storage, "a@example.com", "b@example.com")
    channel = FakeChannel()
    outbox, clock = start(storage, channel)
    stopped = outbox.stopService()
    assert not stopped.called
    channel.accept_all()
    assert stopped.called
    clock.advance(10)
    assert channel.delivered == [("a@example.com",)] and storage.outbox_depth() == 1


def test_a_delivered_entry_is_not_resent_when_recording_it_fails(storage, monkeypatch) -> None:
    queue(storage, "a@example.com")
    channel = FakeChannel()
    failures = [RuntimeError("database is locked")]
    real_mark_sent = storage.mark_sent

    def flaky_mark_sent(mail_id: int, now: float) -> None:
        if failures:
            raise failures.pop()
        real_mark_sent(mail_id, now)

    monkeypatch.setattr(storage, "mark_sent", flaky_mark_sent)
    outbox, clock = start(storage, channel, poll_interval=1.0)
    channel.accept_all()
    for _ in range(3):
        clock.advance(1)
        channel.accept_all()
    assert channel.delivered == [("a@example.com",)] and storage.outbox_depth() == 0
    outbox.stopService()


def test_an_entry_for_a_channel_that_is_not_configured_waits(storage) -> None:
    [mail_id] = queue(storage, "a@example.com")
    outbox, clock = start(storage, None)
    clock.advance(3600)
    assert row(storage, mail_id)["sent_at"] is None
    assert "not configured" in row(storage, mail_id)["last_error"]
    outbox.stopService()


def test_an_entry_in_delivery_stays_with_its_server_while_it_lives(open_store) -> None:
    first, second = open_store("server-a"), open_store("server-b")
    queue(first, "a@example.com")
    slow, idle = FakeChannel(), FakeChannel()
    outbox, clock = start(first, slow)
    other, _ = start(second, idle, clock=clock)
    assert len(slow.pending) == 1
    for _ in range(int(3 * LEASE_SECONDS)):   # a slow delivery: its lease is kept alive
        clock.advance(1)
    assert idle.pending == [] and row(first, 1)["sent_at"] is None
    slow.accept_all()
    assert slow.delivered == [("a@example.com",)] and first.outbox_depth() == 0
    clock.advance(LEASE_SECONDS + 1)
    assert idle.pending == []
    outbox.stopService()
    other.stopService()


def test_the_entry_of_a_server_that_died_delivering_it_is_taken_over(open_store) -> None:
    first, second = open_store("server-a"), open_store("server-b")
    queue(first, "a@example.com")
    dying, taking_over = FakeChannel(), FakeChannel()
    writes = ManualRunner()   # the first server's writes, run only while it lives
    outbox, clock = start(first, dying, writer=writes)
    writes.run_all()
    assert len(dying.pending) == 1   # leased and in delivery when its server dies
    other, _ = start(second, taking_over, clock=clock)
    clock.advance(LEASE_SECONDS - 1)
    assert taking_over.pending == []
    clock.advance(2)
    [(entry, _)] = taking_over.pending
    taking_over.accept_all()
    assert first.outbox_depth() == 0
    # Had the SMTP server taken the first delivery before the death, the message arrives
    # twice: the same bytes, so the same Message-ID.
    assert entry.message == dying.pending[0][0].message
    other.stopService()


def test_a_server_that_stops_gives_its_entries_back_at_once(open_store) -> None:
    first, second = open_store("server-a"), open_store("server-b")
    queue(first, "a@example.com", "b@example.com")
    stopping, other_channel = FakeChannel(), FakeChannel()
    outbox, clock = start(first, stopping, batch_size=2)
    stopped = outbox.stopService()
    stopping.accept_all()
    assert stopped.called and stopping.delivered == [("a@example.com",)]
    other, _ = start(second, other_channel, clock=clock)
    assert [entry.recipients for entry, _ in other_channel.pending] == [("b@example.com",)]
    other.stopService()
