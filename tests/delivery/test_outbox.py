"""The outbox in-process: a real SQLite outbox, channels that answer when the test says,
and a task.Clock, so retries, backoff and stopping are exact and take no real time."""

from __future__ import annotations

from typing import Any, Optional

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from flawless.server.delivery.channels import DeliveryError
from flawless.server.delivery.composing import Composer, Destinations
from flawless.server.delivery.outbox import OutboxService
from flawless.server.storage.records import OutboxMail
from flawless.server.storage.sqlite import SqliteStorage
from flawless.server.threads import InlineRunner
from support.outbox import entry

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
def storage(tmp_path: Any) -> SqliteStorage:
    return SqliteStorage(str(tmp_path / "flawless.sqlite3"))


def queue(storage: SqliteStorage, *addresses: str) -> list[int]:
    with storage.transaction() as transaction:
        return [transaction.queue_entry(entry(address), NOW) for address in addresses]


def start(storage: SqliteStorage, channel: Any, **options: Any) -> tuple[OutboxService, Clock]:
    clock = Clock()
    clock.advance(NOW)
    runner = InlineRunner()
    outbox = OutboxService(storage, runner, runner, {"email": channel} if channel else {},
                           COMPOSER, clock, unit_random=lambda: 0.5, **options)
    outbox.startService()
    return outbox, clock


def row(storage: SqliteStorage, mail_id: int) -> Any:
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
