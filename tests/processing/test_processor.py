"""The processor in-process: a real repository and database (each backend), every blocking
call run at once in the test's thread, and a task.Clock for its timers."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer

from flawless.server.core.bounds import HourlyBounds
from flawless.report import parse_report
from flawless.server.core.model import KnownError, Rules
from flawless.server.processing.processor import MAX_PREPARING
from flawless.server.processing.sourcemaps import SourceMapResolver
from flawless.server.storage.records import SourceMapFile, StorageUnavailable
from flawless.server.storage.sqlite import SqliteStorage
from flawless.server.threads import InlineRunner
from support.alerts import parts
from support.gitrepo import ALICE, BOB, CAROL, GitRepo, average_report, init_repo
from support.runners import ManualRunner
from support.notebooks import (CALLS_MEAN, CALLS_RATIO, CANARY, EDITED_SCALED, NOTEBOOK, RATIO,
                               SCALED, CellLine, cell_frame, cell_report, team_notebook_repo)
from support.processing import NOW, World

@pytest.fixture
def world(open_store, shop) -> World:
    world = World(open_store(), shop.path)
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


def test_dropped_reports_are_counted_in_the_statistics(open_store, shop) -> None:
    world = World(open_store(), shop.path,
                  rules=Rules(ignored_exceptions=("ZeroDivisionError",)))
    world.processor.startService()
    world.send(average_report())
    world.processor.wake()
    assert world.counts() == {} and world.storage.inbox_depth() == 0
    assert world.storage.stats() == {"dropped: ignored exception": 1}
    world.processor.stopService()


def test_a_known_error_alerts_by_its_own_entry(open_store, shop) -> None:
    known = KnownError("shop/cart.py", "average", alert_every_n_occurrences=2,
                       email_recipients=("team@example.com",), source="known_errors.yaml:1")
    world = World(open_store(), shop.path, rules=Rules(known_errors=(known,)), threshold=100)
    world.processor.startService()
    world.send(*[average_report()] * 4)
    world.processor.wake()
    assert world.mails() == [["bob@example.org"], ["team@example.com"]] * 2
    world.processor.stopService()


def test_a_failed_transaction_counts_nothing_and_is_retried(world, monkeypatch) -> None:
    world.send(average_report(), average_report())
    real_apply_plan = world.storage.apply_plan
    failures = [StorageUnavailable("database or disk is full")]

    def flaky_apply_plan(claim: Any, plan: Any) -> Any:
        if failures:
            world.storage.release(claim)   # a failed apply keeps nothing, holds nothing
            raise failures.pop()
        return real_apply_plan(claim, plan)

    monkeypatch.setattr(world.storage, "apply_plan", flaky_apply_plan)
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


def test_an_error_changed_while_its_batch_was_planned_is_counted_exactly(world, monkeypatch):
    world.send(average_report())
    world.processor.wake()
    real_read = world.storage.error_states

    def read_then_changed(keys: Any) -> Any:
        states = real_read(keys)  # what the plan is worked out from...
        with world.storage.transaction() as transaction:  # ...goes stale before it is written
            for key, state in states.items():
                transaction.execute("UPDATE errors SET count = count + 10 WHERE id = ?",
                                    state.error_id)
        return states

    monkeypatch.setattr(world.storage, "error_states", read_then_changed)
    world.send(average_report(), average_report())
    world.processor.wake()
    # The plan was written against a count of 1; the error stood at 11: it was redone.
    assert world.counts() == {"average": 13} and world.storage.inbox_depth() == 0



def test_a_new_error_waiting_for_git_never_holds_up_the_repeats(open_store, shop) -> None:
    git = ManualRunner()
    world = World(open_store(), shop.path, git=git)
    world.processor.startService()
    git.run_all()  # HEAD and the tree
    world.send(average_report())
    world.processor.wake()
    git.run_all()  # the first blame of Cart.average
    assert world.counts() == {"average": 1}
    new_error = {"exception_type": "builtins.ValueError", "exception_message": "bad",
                 "traceback": [{"filename": "/srv/app/shop/pricing.py", "line_number": 12,
                                "function_name": "parse_price", "text": "return int(text)"}]}
    world.send(new_error)  # needs git, which does not answer yet
    world.send(average_report(), average_report())  # a repeat: everything it needs is known
    world.processor.wake()
    world.clock.advance(0.05)
    assert world.counts() == {"average": 3}  # counted without waiting for the new error
    [(attempts, last_error)] = [(row["attempts"], row["last_error"]) for row in
                                world.storage._query("SELECT attempts, last_error FROM inbox")]
    assert (attempts, last_error) == (0, "waiting for git")  # not a failure: no backoff
    git.run_all()  # git answers
    world.clock.advance(0.05)
    assert world.counts() == {"average": 3, "parse_price": 1}
    assert world.storage.inbox_depth() == 0 and ["bob@example.org"] in world.mails()
    world.processor.stopService()


def test_requests_waiting_for_git_hold_one_preparation_per_need_and_a_bounded_number(
        open_store, shop) -> None:
    """Claimed again and again while git is slow, waiting requests start no second
    preparation of what is already asked, and never more than MAX_PREPARING in all (each
    holds its report: before the bound a backlog waiting for 2,000 blames grew by GBs)."""
    git = ManualRunner()
    world = World(open_store(), shop.path, git=git)
    world.processor.startService()
    git.run_all()  # HEAD and the tree
    distinct = MAX_PREPARING + 40
    new_errors = [{"exception_type": "builtins.ValueError", "exception_message": "bad",
                   "traceback": [{"filename": "/srv/app/shop/pricing.py", "line_number": 12,
                                  "function_name": f"parse_{number}",
                                  "text": "return int(text)"}]} for number in range(distinct)]
    for _ in range(3):   # each need three times over, in requests of 20
        for start in range(0, distinct, 20):
            world.send(*new_errors[start:start + 20])
    for _ in range(6):   # claimed again while git says nothing
        world.processor.wake()
        world.clock.advance(1.0)
        assert len(git.queued) <= MAX_PREPARING, len(git.queued)
    assert git.queued
    assert world.counts() == {}
    for _ in range(30):
        if not world.storage.inbox_depth():
            break
        git.run_all()
        world.clock.advance(1.0)
    assert sum(world.counts().values()) == 3 * distinct
    assert not world.processor._preparing
    world.processor.stopService()


def test_an_hourly_count_changed_while_a_batch_was_planned_keeps_the_bound(open_store, shop,
                                                                           monkeypatch):
    world = World(open_store(), shop.path, threshold=1, bounds=HourlyBounds(per_destination=2))
    world.processor.startService()
    real_read = world.storage.hour_count

    def read_then_changed(channel: str, destination: str, hour: float) -> int:
        count = real_read(channel, destination, hour)  # the plan admits from this count...
        with world.storage.transaction() as transaction:  # ...which a notice raises meanwhile
            transaction.count_in_hour(channel, destination, hour)
        return count

    monkeypatch.setattr(world.storage, "hour_count", read_then_changed)
    reports = [average_report() for _ in range(3)]
    for index, report in enumerate(reports):
        report["traceback"][-1]["function_name"] = f"f{index}"
    world.send(*reports)
    world.processor.wake()
    # Redone within one transaction: two mails were admitted in all, not three.
    assert world.storage._query(
        "SELECT COUNT(*) AS n FROM outbox WHERE held_until IS NULL")[0]["n"] == 1
    assert len(world.mails()) == 3
    world.processor.stopService()


# -- notebooks ----------------------------------------------------------------------------------

@pytest.fixture
def lab(tmp_path, open_store):
    """A processor (alerting at the first occurrence) over a repository where Alice and Bob
    committed a notebook and Carol its helper module; and the notebook as committed."""
    repo, notebook = team_notebook_repo(tmp_path / "proj")
    world = World(open_store(), repo.path, threshold=1)
    world.processor.startService()
    yield world, notebook
    world.processor.stopService()


def cell_line(notebook, position: int, line: int, source: str = "", **changes) -> CellLine:
    return CellLine(source or notebook.cells[position].source, line, notebook.cells[position].id,
                    **changes)


def alerts(world: World) -> list[tuple[list[str], str]]:
    """(recipients, plain text) of each mail queued, in order."""
    found = []
    for row in world.storage._query("SELECT recipients, message FROM outbox ORDER BY id"):
        message = email.message_from_bytes(row["message"], policy=email.policy.default)
        found.append((json.loads(row["recipients"]), parts(message)[0]))
    return found


def everything_stored(world: World) -> str:
    """Every row of every table, as SQL (of a SQLite storage)."""
    return "\n".join(world.storage._connection.iterdump())


def test_a_cell_line_is_blamed_on_its_author_and_grouped_across_runs(lab) -> None:
    world, notebook = lab
    ratio = cell_frame(cell_line(notebook, RATIO, 3), "ratio")
    world.send(cell_report(cell_frame(cell_line(notebook, CALLS_RATIO, 4)), ratio),
               cell_report(cell_frame(cell_line(notebook, CALLS_RATIO, 4, execution_count=30),
                                      kernel_file=77),
                           cell_frame(cell_line(notebook, RATIO, 3, execution_count=29),
                                      "ratio", kernel_file=78)))
    world.processor.wake()
    [(recipients, text)] = alerts(world)
    assert recipients == ["bob@example.org"]
    ids = [cell.id for cell in notebook.cells]
    assert f">> analysis.ipynb, cell 7 (id {ids[RATIO]}), line 3, in ratio" in text
    assert f"   analysis.ipynb, cell 7 (id {ids[CALLS_RATIO]}), line 4, in <module>" in text
    assert (f"notebook cell found by its id: the 5th cell (id {ids[RATIO]}) of {NOTEBOOK}"
            in " ".join(text.split()))
    assert f"last changed line 3 of the 5th cell (id {ids[RATIO]})" in " ".join(text.split())
    [(record, week_count)] = world.storage.week_errors("2025-11-17")
    assert week_count == 2 and record.line_number == 3
    assert (record.key.filename, record.key.function_name) == (NOTEBOOK, f"cell {ids[RATIO]}")
    assert record.author_email == "bob@example.org" and record.blamed


def test_an_error_in_a_helper_called_from_a_cell_goes_to_the_helpers_author(lab) -> None:
    world, notebook = lab
    helper = {"filename": "~/proj/helpers/stats.py", "line_number": 3, "function_name": "mean",
              "text": "return sum(values) / len(values)"}
    world.send(cell_report(cell_frame(cell_line(notebook, CALLS_MEAN, 3)), helper))
    world.processor.wake()
    [(recipients, text)] = alerts(world)
    assert recipients == ["carol@example.net"]
    assert "last changed helpers/stats.py:3 (git blame)" in text


def test_a_cell_edited_since_the_commit_goes_to_its_last_author_saying_why(lab) -> None:
    world, notebook = lab
    edited = cell_line(notebook, SCALED, 3, EDITED_SCALED)
    world.send(cell_report(cell_frame(edited)))
    world.processor.wake()
    [(recipients, text)] = alerts(world)
    assert recipients == ["bob@example.org"]
    flat = " ".join(text.split())
    assert "No line blamed; the cell's last change, commit" in flat
    assert ("unsaved edits, no line blamed: line 3 of the cell as it ran is not in the 4th "
            f"cell (id {notebook.cells[SCALED].id}) of {NOTEBOOK}") in flat
    assert "whose line raised has unsaved edits (no line blamed)" in flat
    [(record, _)] = world.storage.week_errors("2025-11-17")
    assert any("unsaved edits" in line for line in record.explanation)


def test_a_cell_never_committed_goes_to_the_default_contact_saying_why(lab) -> None:
    world, notebook = lab
    world.send(cell_report(cell_frame(CellLine("brand_new(1 / 0)", 1, "new-cell"))))
    world.processor.wake()
    [(recipients, text)] = alerts(world)
    assert recipients == ["oncall@example.com"]
    assert "no code cell holds the line raised" in " ".join(text.split())


@pytest.mark.parametrize("open_store", ["sqlite"], indirect=True)   # its dump reads it all
def test_nothing_typed_in_a_cell_is_stored_or_mailed(lab) -> None:
    """The cells hold a canary, committed: neither the report nor git blame's output (which
    carries each blamed line) may bring it into the database or a mail."""
    world, notebook = lab
    world.send(cell_report(cell_frame(cell_line(notebook, CALLS_RATIO, 4)),
                           cell_frame(cell_line(notebook, RATIO, 2), "ratio")),
               cell_report(cell_frame(cell_line(notebook, SCALED, 3, EDITED_SCALED))),
               cell_report(cell_frame(cell_line(notebook, CALLS_MEAN, 1))))
    world.processor.wake()
    assert len(alerts(world)) == 3
    assert CANARY not in everything_stored(world)
    assert "scale = 10" not in everything_stored(world)


def test_reports_kept_for_a_missing_repository_go_as_soon_as_it_is_back(world, shop, tmp_path):
    moved = tmp_path / "moved-away"
    shop.path.rename(moved)
    world.send(average_report())
    for _ in range(8):  # failure after failure: the next attempt is minutes away
        with world.storage.transaction() as transaction:
            transaction.execute("UPDATE inbox SET next_attempt_at = 0")
        world.processor.wake()
    [row] = world.storage._query("SELECT attempts, next_attempt_at FROM inbox")
    assert row["attempts"] == 8 and row["next_attempt_at"] > world.clock.seconds() + 60
    moved.rename(shop.path)
    world.clock.advance(1.0)  # the idle poll finds git answering again
    world.clock.advance(1.0)
    assert world.counts() == {"average": 1} and world.storage.inbox_depth() == 0


def test_a_line_that_cannot_be_blamed_goes_to_the_default_contact_not_back_to_the_inbox(
        tmp_path, open_store) -> None:
    repo = init_repo(tmp_path / "repo")
    repo.commit(ALICE, {"checks/corrupt_rows.py": "one = 1\ntwo = 2\n"}, "Two lines")
    world = World(open_store(), repo.path, threshold=1)
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
    world = World(SqliteStorage(str(tmp_path / "flawless.sqlite3")), repo.path, threshold=1)
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


def test_chained_exceptions_frames_are_resolved_too(tmp_path):
    repo = typescript_repo(tmp_path / "repo")
    world = map_world(tmp_path, repo)
    store_build(world, repo.head())
    cause = minified_report(repo.head())
    report = parse_report({**cause, "exception_type": "CheckoutError",
                           "traceback": cause["traceback"][:1],
                           "chained": [{"exception_type": "TypeError",
                                        "exception_message": "x is undefined",
                                        "traceback": cause["traceback"]}]})
    resolving = defer.ensureDeferred(
        SourceMapResolver(world.storage, InlineRunner(), world.clock).resolve(report))
    resolved = resolving.result  # every blocking call ran inline: already fired
    assert resolved.report.chained[0].traceback[1].filename == "src/checkout.ts"
    assert resolved.from_maps == {(0, 0), (1, 0), (1, 1)}
    world.processor.stopService()
