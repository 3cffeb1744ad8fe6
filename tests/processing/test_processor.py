"""The processor in-process: a real repository and SQLite file, every blocking call run at
once in the test's thread, and a task.Clock for its timers."""

from __future__ import annotations

from typing import Any

import pytest

from flawless.server.core.model import KnownError, Rules
from flawless.server.storage.records import StorageUnavailable
from support.gitrepo import ALICE, average_report, init_repo
from support.processing import NOW, World

@pytest.fixture
def world(tmp_path, shop) -> World:
    world = World(tmp_path, shop.path)
    world.processor.startService()
    yield world
    world.processor.stopService()


def test_reports_are_counted_blamed_and_alerted_once(world: World) -> None:
    world.send(average_report(), average_report())
    world.processor.wake()
    assert world.counts() == {"average": 2} and world.storage.inbox_depth() == 0
    assert world.mails() == [["bob@example.org"]] and world.woken == 1
    world.send(average_report())
    world.clock.advance(1.0)  # the idle poll
    assert world.counts() == {"average": 3} and world.mails() == [["bob@example.org"]]
    assert world.processor.processed == 3
    [(record, week_count)] = world.storage.week_errors("2025-11-17")
    assert (record.author_email, record.commit_summary, week_count) == (
        "bob@example.org", "Add Cart.average", 3)


def test_an_error_alerts_when_its_count_crosses_the_threshold_within_one_batch(world) -> None:
    world.send(*[average_report()] * 5)
    world.processor.wake()
    assert world.counts() == {"average": 5} and world.mails() == [["bob@example.org"]]


def test_a_missing_repository_keeps_reports_for_later_with_backoff(world, shop, tmp_path):
    moved = tmp_path / "moved-away"
    shop.path.rename(moved)
    world.send(average_report())
    world.processor.wake()
    [row] = world.storage._query("SELECT attempts, next_attempt_at, last_error FROM inbox")
    assert row["attempts"] == 1 and "does not exist" in row["last_error"]
    assert NOW + 1.0 <= row["next_attempt_at"] <= NOW + 2.0
    assert world.counts() == {} and "repository unavailable" in world.processor.last_error
    moved.rename(shop.path)
    world.clock.advance(3.0)
    assert world.counts() == {"average": 1} and world.storage.inbox_depth() == 0


def test_dropped_reports_are_counted_in_the_statistics(tmp_path, shop) -> None:
    world = World(tmp_path, shop.path,
                  rules=Rules(ignored_exceptions=("ZeroDivisionError",)))
    world.processor.startService()
    world.send(average_report())
    world.processor.wake()
    assert world.counts() == {} and world.storage.inbox_depth() == 0
    assert world.storage.stats() == {"dropped: ignored exception": 1}
    world.processor.stopService()


def test_a_known_error_alerts_by_its_own_entry(tmp_path, shop) -> None:
    known = KnownError("shop/cart.py", "average", alert_every_n_occurrences=2,
                       email_recipients=("team@example.com",), source="known_errors.yaml:1")
    world = World(tmp_path, shop.path, rules=Rules(known_errors=(known,)), threshold=100)
    world.processor.startService()
    world.send(*[average_report()] * 4)
    world.processor.wake()
    assert world.mails() == [["bob@example.org", "team@example.com"]] * 2
    world.processor.stopService()


def test_a_failed_transaction_counts_nothing_and_is_retried(world, monkeypatch) -> None:
    world.send(average_report(), average_report())
    real_apply = world.storage.apply
    failures = [StorageUnavailable("database or disk is full")]

    def flaky_apply(claim: Any, work: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_apply(claim, work)

    monkeypatch.setattr(world.storage, "apply", flaky_apply)
    world.processor.wake()
    assert world.counts() == {} and world.storage.inbox_depth() == 2
    assert "disk is full" in world.processor.last_error
    world.clock.advance(1.0)
    assert world.counts() == {"average": 2} and world.mails() == [["bob@example.org"]]


def test_stopping_ends_the_polling(world: World) -> None:
    world.processor.stopService()
    world.send(average_report())
    world.clock.advance(10.0)
    assert world.counts() == {} and world.clock.getDelayedCalls() == []
    world.processor.startService()


def test_a_line_that_cannot_be_blamed_goes_to_the_default_contact_not_back_to_the_inbox(
        tmp_path) -> None:
    repo = init_repo(tmp_path / "repo")
    repo.commit(ALICE, {"checks/corrupt_rows.py": "one = 1\ntwo = 2\n"}, "Two lines")
    world = World(tmp_path, repo.path, threshold=1)
    world.processor.startService()
    world.send({"exception_type": "builtins.ValueError", "exception_message": "bad row",
                "traceback": [{"filename": "/srv/app/checks/corrupt_rows.py",
                               "line_number": 3, "function_name": "check", "text": ""}]})
    world.processor.wake()
    assert world.storage.inbox_depth() == 0 and world.counts() == {"check": 1}
    assert world.mails() == [["oncall@example.com"]]
    assert world.blamer.last_error is None and world.processor.last_error is None
    [record] = [record for record, _ in world.storage.week_errors("2025-11-17")]
    assert any("has only 2 lines" in line for line in record.explanation)
    world.processor.stopService()
