"""The processor in-process: a real repository and SQLite file, every blocking call run at
once in the test's thread, and a task.Clock for its timers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from flawless.server.core.model import AlertSettings, KnownError, Rules, RoutingSettings
from flawless.server.git.repository import Repository
from flawless.server.processing.blame_service import BlameService
from flawless.server.processing.processor import Processor
from flawless.server.processing.sourcemaps import SourceMapResolver
from flawless.server.storage.records import SourceMapFile, StorageUnavailable
from flawless.server.storage.sqlite import SqliteStorage
from flawless.server.threads import InlineRunner
from support.gitrepo import ALICE, BOB, CAROL, GitRepo, average_report, init_repo

NOW = 1_763_700_000.0


class World:
    """A processor over a real repository and database, and what it queued for mail."""

    def __init__(self, tmp_path: Any, repo_dir: Any, rules: Rules = Rules(), threshold: int = 2):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.storage = SqliteStorage(str(tmp_path / "flawless.sqlite3"))
        runner = InlineRunner()
        self.repository = Repository(str(repo_dir))
        self.blamer = BlameService(self.repository, runner, runner, self.clock)
        self.rules = rules
        self.woken = 0
        self.processor = Processor(
            self.storage, runner, runner, self.blamer, lambda: self.rules, RoutingSettings(),
            AlertSettings(report_error_threshold=threshold, default_contact="oncall@example.com"),
            "flawless@example.com", lambda: "http://flawless.test", self.wake_outbox,
            clock=self.clock)

    def wake_outbox(self) -> None:
        self.woken += 1

    def send(self, *reports: dict) -> None:
        calls = [{"jsonrpc": "2.0", "id": n, "method": "record_error",
                  "params": {"report": report}} for n, report in enumerate(reports)]
        self.storage.add_to_inbox([(json.dumps(calls).encode(), len(calls))], self.clock.seconds())

    def counts(self) -> dict[str, int]:
        return {row["function_name"]: row["count"] for row in self.storage._query(
            "SELECT function_name, count FROM errors")}

    def mails(self) -> list[list[str]]:
        return [json.loads(row["recipients"]) for row in self.storage._query(
            "SELECT recipients FROM outbox ORDER BY id")]


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


# -- JavaScript through source maps ----------------------------------------------------------

ESBUILD = Path(__file__).resolve().parents[1] / "data" / "esbuild"


def typescript_repo(path: Path) -> GitRepo:
    """Carol wrote src/checkout.ts, Alice src/main.ts (the build in tests/data/esbuild)."""
    repo = init_repo(path)
    repo.commit(CAROL, {"src/checkout.ts": (ESBUILD / "src" / "checkout.ts").read_text()},
                "Add checkout")
    repo.commit(ALICE, {"src/main.ts": (ESBUILD / "src" / "main.ts").read_text()}, "Add main")
    return repo


def minified_report(release: str) -> dict:
    """``.price`` of an undefined item, as a page reports it from dist/app.js."""
    return {"exception_type": "TypeError", "revision": release,
            "exception_message": "Cannot read properties of undefined (reading 'price')",
            "traceback": [{"filename": "http://127.0.0.1:8000/static/app.js", "line_number": 1,
                           "column_number": 172, "function_name": "HTMLButtonElement.<anonymous>"},
                          {"filename": "http://127.0.0.1:8000/static/app.js", "line_number": 1,
                           "column_number": 31, "function_name": "c"}]}


def store_build(world: World, release: str) -> None:
    world.storage.save_sourcemaps(release, [SourceMapFile(
        "/static/app.js", (ESBUILD / "dist" / "app.js.map").read_bytes(),
        (ESBUILD / "dist" / "app.js").read_bytes())], NOW)


def map_world(tmp_path: Path, repo: GitRepo) -> World:
    world = World(tmp_path, repo.path, threshold=1)
    world.processor._sourcemaps = SourceMapResolver(world.storage, InlineRunner(), world.clock)
    world.processor.startService()
    return world


def test_a_minified_frame_is_resolved_through_its_map_and_blamed_on_the_original_line(tmp_path):
    repo = typescript_repo(tmp_path / "repo")
    world = map_world(tmp_path, repo)
    store_build(world, repo.head())
    world.send(minified_report(repo.head()))
    world.processor.wake()
    [record] = [row for row, _ in world.storage.week_errors("2025-11-17")]
    assert (record.key.filename, record.key.function_name, record.line_number) == (
        "src/checkout.ts", "lineTotal", 4)
    assert record.key.text == "return item.price * quantity;"
    assert record.author_email == "carol@example.net" and world.mails() == [["carol@example.net"]]
    assert any("through its source map to src/checkout.ts:4" in line
               for line in record.explanation)
    assert record.last_report.traceback[-1].filename == "src/checkout.ts"
    world.processor.stopService()


def test_a_map_whose_line_is_not_the_repositorys_blames_nobody(tmp_path):
    repo = typescript_repo(tmp_path / "repo")
    changed = (ESBUILD / "src" / "checkout.ts").read_text().replace(
        "return item.price * quantity;", "return (item?.price ?? 0) * quantity;")
    release = repo.commit(BOB, {"src/checkout.ts": changed}, "Guard missing items")
    world = map_world(tmp_path, repo)
    store_build(world, release)  # the map of the build before Bob's change, under his release
    world.send(minified_report(release))
    world.processor.wake()
    [record] = [row for row, _ in world.storage.week_errors("2025-11-17")]
    assert not record.blamed and world.mails() == [["oncall@example.com"]]
    assert any("is not the repository's" in line for line in record.explanation)
    world.processor.stopService()


def test_without_a_map_for_the_release_the_minified_frame_is_left_as_it_came(tmp_path):
    repo = typescript_repo(tmp_path / "repo")
    world = map_world(tmp_path, repo)
    store_build(world, "another-release")
    world.send(minified_report(repo.head()))
    world.processor.wake()
    [record] = [row for row, _ in world.storage.week_errors("2025-11-17")]
    assert record.key.filename == "/static/app.js" and not record.blamed
    world.processor.stopService()
