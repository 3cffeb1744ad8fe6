"""The GitHub and GitLab channels in-process, against fakes of their REST APIs: one issue
per error, recurrence comments at most once per interval, reopening, recovery of a lost link
from the label (never the search API), no duplicate after a crash, rate limits honoured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest

from flawless.server.delivery.issue_text import find_marker
from support.fake_services import FakeGitHub, FakeGitLab, FakeTracker, Reply
from support.gitrepo import average_report
from support.pipeline import Pipeline

INTERVAL = 3600


@dataclass
class Tracker:
    name: str
    fake: FakeTracker
    host: str
    options: dict[str, str]
    closed: Callable[[FakeTracker, int], None]


def github() -> Tracker:
    fake = FakeGitHub()
    return Tracker("github", fake, "api.github.test",
                   {"github_repo": fake.repo, "github_token": fake.token,
                    "github_api_url": "https://api.github.test"},
                   lambda fake, number: setattr(fake.issues[number], "open", False))


def gitlab() -> Tracker:
    fake = FakeGitLab()
    return Tracker("gitlab", fake, "gitlab.test",
                   {"gitlab_url": "https://gitlab.test", "gitlab_project": fake.project,
                    "gitlab_token": fake.token},
                   lambda fake, number: setattr(fake.issues[number], "open", False))


@pytest.fixture(params=[github, gitlab], ids=["github", "gitlab"])
def tracker(request: Any) -> Tracker:
    return request.param()


def start(tmp_path, shop, tracker: Tracker, begin: bool = True, **options: Any) -> Pipeline:
    pipeline = Pipeline(tmp_path, shop.path, {tracker.host: tracker.fake},
                        alert_channels=f"email,{tracker.name}",
                        issue_comment_interval=INTERVAL, **{**tracker.options, **options})
    tracker.fake.clock = pipeline.clock.seconds
    return pipeline.start() if begin else pipeline


def issue_writes(tracker: Tracker) -> list[str]:
    """What the tracker was asked to write: 'create', 'comment N', 'reopen N'."""
    found = []
    for request in tracker.fake.writes:
        parts = request.path.rstrip("/").split("/")
        if parts[-1] == "issues":
            found.append("create")
        elif parts[-1] in ("comments", "notes"):
            found.append(f"comment {parts[-2]}")
        else:
            found.append(f"reopen {parts[-1]}")
    return found


def test_a_new_error_opens_one_labelled_issue_with_its_traceback_and_marker(tmp_path, shop,
                                                                           tracker):
    pipeline = start(tmp_path, shop, tracker)
    pipeline.send(average_report())
    [issue] = tracker.fake.issues.values()
    assert issue.title == "ZeroDivisionError: division by zero in average (shop/cart.py:14)"
    assert issue.labels == ["flawless"] and issue.open
    assert "`shop/cart.py:14`" in issue.body and "Suspect commit" in issue.body
    assert "by `Bob Builder`" in issue.body and "Add Cart.average" in issue.body
    assert ">> File \"/srv/app/shop/cart.py\", line 14, in average" in issue.body
    assert "http://flawless.test:8080/view_traceback?" in issue.body
    marker = find_marker(issue.body)
    [link] = pipeline.query("SELECT fingerprint, number FROM issue_links")
    assert marker is not None and marker.fingerprint == link["fingerprint"]
    assert link["number"] == issue.number
    # Listed once (this process had never listed the label), no search API involved.
    gets = [request.path for request in tracker.fake.requests if request.method == "GET"]
    assert len(gets) == 1 and gets[0].endswith("/issues") and "search" not in gets[0]
    assert pipeline.pending() == 0
    pipeline.stop()


def test_recurrences_comment_at_most_once_per_interval_with_the_count_since(tmp_path, shop,
                                                                           tracker):
    pipeline = start(tmp_path, shop, tracker)
    pipeline.send(average_report())
    for _ in range(3):
        pipeline.advance(600)
        pipeline.send(average_report(), average_report())
    assert issue_writes(tracker) == ["create"]
    pipeline.advance(INTERVAL)
    pipeline.send(average_report())
    assert issue_writes(tracker) == ["create", "comment 1"]
    [(_, comment)] = tracker.fake.issues[1].comments
    assert comment.startswith("Happened 7 more times since ")
    assert "(8 in all;" in comment
    pipeline.send(average_report())
    assert issue_writes(tracker) == ["create", "comment 1"]
    pipeline.stop()


def test_an_error_that_comes_back_reopens_its_closed_issue(tmp_path, shop, tracker):
    pipeline = start(tmp_path, shop, tracker)
    pipeline.send(average_report())
    tracker.closed(tracker.fake, 1)
    pipeline.advance(INTERVAL)
    pipeline.send(average_report())
    assert issue_writes(tracker) == ["create", "reopen 1", "comment 1"]
    assert tracker.fake.issues[1].open
    assert tracker.fake.issues[1].comments[0][1].startswith("This error came back")
    pipeline.stop()


def test_a_deleted_issue_is_opened_anew(tmp_path, shop, tracker):
    pipeline = start(tmp_path, shop, tracker)
    pipeline.send(average_report())
    del tracker.fake.issues[1]
    pipeline.advance(INTERVAL)
    pipeline.send(average_report())
    assert issue_writes(tracker) == ["create", "create"]
    [link] = pipeline.query("SELECT number FROM issue_links")
    assert link["number"] == 1 and 1 in tracker.fake.issues  # the fake reuses the number
    pipeline.stop()


def test_a_lost_link_is_recovered_from_the_label_without_a_second_issue(tmp_path, shop,
                                                                       tracker):
    first = start(tmp_path / "before", shop, tracker)
    first.send(average_report())
    first.stop()
    # Another database (restored, or lost): the issue is found again by its marker.
    tracker.fake.add_issue("unrelated", "no marker here", ["flawless"])
    tracker.fake.add_issue("a pull request", "<!-- flawless entry=x -->", ["flawless"],
                           pull_request=True)
    again = start(tmp_path / "after", shop, tracker)
    again.send(average_report())
    assert issue_writes(tracker) == ["create", "comment 1"]
    assert tracker.fake.issues[1].comments[0][1].startswith("Alerted again at 1 occurrence (")
    assert [row["number"] for row in again.query("SELECT number FROM issue_links")] == [1]
    assert not any("search" in request.path for request in tracker.fake.requests)
    again.stop()


def test_a_crash_after_the_tracker_answered_repeats_no_issue_and_no_comment(tmp_path, shop,
                                                                           tracker,
                                                                           monkeypatch):
    crashed = start(tmp_path, shop, tracker)
    crash_when_recording(crashed, tracker.name, monkeypatch)
    crashed.send(average_report())
    assert issue_writes(tracker) == ["create"]
    crashed.stop()
    # The next process finds the entry begun but never recorded: it looks before writing.
    restarted = start(tmp_path, shop, tracker, begin=False)
    assert [row["started_at"] is not None for row in restarted.query(
        "SELECT started_at FROM outbox WHERE sent_at IS NULL")] == [True]
    restarted.start()
    assert issue_writes(tracker) == ["create"] and restarted.pending() == 0
    restarted.advance(INTERVAL)
    crash_when_recording(restarted, tracker.name, monkeypatch)
    restarted.send(average_report())
    assert issue_writes(tracker) == ["create", "comment 1"]
    restarted.stop()
    last = start(tmp_path, shop, tracker)
    last.advance(2)
    assert issue_writes(tracker) == ["create", "comment 1"] and last.pending() == 0
    last.stop()


def crash_when_recording(pipeline: Pipeline, channel: str, monkeypatch: Any) -> None:
    """The process dies between a delivery on ``channel`` and its record (this process
    sends nothing more; the next one finds the entry begun)."""
    real = pipeline.storage.mark_sent

    def mark_sent(mail_id: int, now: float) -> None:
        [row] = pipeline.query("SELECT channel FROM outbox WHERE id = ?", mail_id)
        if row["channel"] == channel:
            raise RuntimeError("the server died before recording the delivery")
        real(mail_id, now)

    monkeypatch.setattr(pipeline.storage, "mark_sent", mark_sent)


def test_a_timeout_after_the_issue_was_opened_opens_no_second_one(tmp_path, shop, tracker,
                                                                  monkeypatch):
    pipeline = start(tmp_path, shop, tracker)
    real_save = pipeline.storage.save_issue_links
    failures = [RuntimeError("database is locked")]

    def flaky_save(*args: Any) -> None:
        if failures and args[0][0].number == 1 and len(args[0]) == 1:
            raise failures.pop()
        real_save(*args)

    monkeypatch.setattr(pipeline.storage, "save_issue_links", flaky_save)
    pipeline.send(average_report())
    pipeline.advance(10)
    assert issue_writes(tracker) == ["create"] and pipeline.pending() == 0
    assert [row["number"] for row in pipeline.query("SELECT number FROM issue_links")] == [1]
    pipeline.stop()


def test_tokens_never_appear_in_errors(tmp_path, shop, tracker):
    token = tracker.fake.token
    tracker.fake.script(Reply(200, b"[]"), Reply(500, f"token {token} refused".encode()))
    pipeline = start(tmp_path, shop, tracker)
    pipeline.send(average_report())
    [row] = pipeline.query("SELECT last_error FROM outbox WHERE channel = ?", tracker.name)
    assert "HTTP 500" in row["last_error"] and token not in row["last_error"]
    assert "***" in row["last_error"]
    pipeline.stop()


@pytest.mark.parametrize("limit, wait", [
    (lambda fake: FakeGitHub.secondary_limit(90), 90),
    (lambda fake: FakeGitHub.secondary_limit(None), 60),
    (lambda fake: FakeGitHub.secondary_limit(45, status=429), 45),
    (lambda fake: fake.primary_limit(reset_in=300), 300),
], ids=["secondary-retry-after", "secondary-at-least-a-minute", "429", "primary-reset"])
def test_github_rate_limits_hold_the_repository_as_long_as_asked(tmp_path, shop, limit, wait):
    tracker = github()
    pipeline = start(tmp_path, shop, tracker)
    tracker.fake.script(Reply.of_json(200, []), limit(tracker.fake))
    pipeline.send(average_report(), dict(average_report(), exception_type="builtins.KeyError"))
    pipeline.advance(wait - 5)
    assert tracker.fake.issues == {}, "written before the limit's wait was over"
    pipeline.advance(10)
    assert len(tracker.fake.issues) == 1 and pipeline.pending() == 0
    pipeline.stop()


def test_gitlab_429_holds_the_project_for_its_retry_after(tmp_path, shop):
    tracker = gitlab()
    tracker.fake.script(Reply.of_json(200, []), FakeGitLab.rate_limited(40))
    pipeline = start(tmp_path, shop, tracker)
    pipeline.send(average_report())
    pipeline.advance(35)
    assert tracker.fake.issues == {}
    pipeline.advance(10)
    assert len(tracker.fake.issues) == 1 and pipeline.pending() == 0
    pipeline.stop()


def test_github_spent_quota_on_a_success_waits_for_the_reset(tmp_path, shop):
    tracker = github()
    pipeline = start(tmp_path, shop, tracker)
    tracker.fake.remaining = 2     # the label listing, then an issue: the quota is spent
    second = average_report()
    second["traceback"][-1]["function_name"] = "median"
    pipeline.send(average_report(), second)
    assert len(tracker.fake.issues) == 1
    requests = len(tracker.fake.requests)
    pipeline.advance(3500)
    assert len(tracker.fake.requests) == requests, "asked again before x-ratelimit-reset"
    pipeline.advance(200)
    assert len(tracker.fake.issues) == 2 and pipeline.pending() == 0
    pipeline.stop()
