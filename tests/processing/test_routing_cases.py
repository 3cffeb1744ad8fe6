"""Who gets the alert, in the cases plain blame gets wrong: a file renamed with a shim left
behind, a function moved to another file by someone else. Real repositories, the real
processor and database, the recipient of the queued mail asserted."""

from __future__ import annotations

from dataclasses import replace

import pytest

from support.gitrepo import ALICE, BOB, CAROL, init_repo
from support.processing import World

FORMATTING = '''\
def money(value):
    cents = round(value * 100)
    whole, part = divmod(abs(cents), 100)
    return f"{whole:,}.{part:02d}"
'''


def frame(path: str, line: int, function: str, text: str) -> dict:
    return {"filename": f"/srv/app/{path}", "line_number": line, "function_name": function,
            "text": text}


def report(*frames: dict, revision: str = "", exception_type: str = "builtins.ValueError",
           **fields) -> dict:
    data = {"exception_type": exception_type, "exception_message": "boom",
            "traceback": list(frames), "hostname": "web-1", **fields}
    if revision:
        data["revision"] = revision
    return data


@pytest.fixture
def world(tmp_path):
    worlds = []

    def make(repo, **options) -> World:
        directory = tmp_path / f"db{len(worlds)}"
        directory.mkdir()
        made = World(directory, repo.path, threshold=1, **options)
        made.processor.startService()
        worlds.append(made)
        return made

    yield make
    for made in worlds:
        made.processor.stopService()


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def test_a_rename_with_a_shim_alerts_the_author_not_the_renamer(tmp_path, world):
    repo = init_repo(tmp_path / "repo")
    repo.commit(ALICE, {"app/formatting.py": FORMATTING}, "Add money formatting")
    repo.git("mv", "app/formatting.py", "app/_formatting.py")
    renamed = repo.commit(BOB, {"app/formatting.py": "from app._formatting import *\n"},
                          "Make formatting private, keep a shim")
    processed = world(repo)
    processed.process(report(frame("app/views.py", 3, "show", "money(total)"),
                             frame("app/_formatting.py", 4, "money",
                                   'return f"{whole:,}.{part:02d}"'), revision=renamed))
    assert processed.mails() == [[ALICE[1]]]
    footer = text_of(processed.messages()[0])
    assert "which also changed that line's text in app/formatting.py" in " ".join(footer.split())


def test_a_function_moved_across_files_alerts_its_author_not_the_mover(tmp_path, world):
    repo = init_repo(tmp_path / "repo")
    repo.commit(ALICE, {"app/helpers.py": "import os\n\n\n" + FORMATTING}, "Add helpers")
    moved = repo.commit(CAROL, {"app/helpers.py": "import os\n",
                                "app/money.py": "import decimal\n\n\n" + FORMATTING},
                        "Move money() to its own module")
    repo.commit(BOB, {"app/other.py": "x = 1\n"}, "Unrelated")
    processed = world(repo)
    processed.process(report(frame("app/money.py", 5, "money",
                                   "cents = round(value * 100)"), revision=moved))
    assert processed.mails() == [[ALICE[1]]]
    without = world(repo)
    without.repository.detect_moves = False
    without.process(report(frame("app/money.py", 5, "money", "cents = round(value * 100)"),
                           revision=moved))
    assert without.mails() == [[CAROL[1]]]


# -- fixes by revision --------------------------------------------------------------------

STATS = '''\
def mean(values):
    total = sum(values)
    return total / len(values)
'''
REPORTS = '''\
from stats import mean


def daily(rows):
    return mean([row.amount for row in rows])
'''
GUARDED = REPORTS.replace("    return mean(",
                          "    if not rows:\n        return 0\n    return mean(")


def mean_report(revision: str) -> dict:
    return report(frame("reports.py", 5, "daily", "return mean([row.amount for row in rows])"),
                  frame("stats.py", 3, "mean", "return total / len(values)"),
                  exception_type="builtins.ZeroDivisionError", revision=revision)


def error_link(function: str = "mean") -> str:
    """The link of the error's page, as the alert gives it."""
    return ("http://flawless.test/view_traceback?filename=stats.py&function_name="
            f"{function}&line_number=3&text=return+total+%2F+len%28values%29&timestamp=1")


@pytest.fixture
def fixed(tmp_path):
    """Alice wrote mean(); Bob's reports.py calls it with empty lists; then Bob's fix, whose
    message says which error it fixes, guards the call. Reports from before and after it."""
    repo = init_repo(tmp_path / "repo")
    before = repo.commit(ALICE, {"stats.py": STATS}, "Add mean",
                         date="2026-10-01T10:00:00+00:00")
    before = repo.commit(BOB, {"reports.py": REPORTS}, "Add daily report",
                         date="2026-10-02T10:00:00+00:00")
    return repo, before


def commit_fix(repo, message: str) -> str:
    return repo.commit(BOB, {"reports.py": GUARDED}, message, date="2026-10-05T10:00:00+00:00")


def test_a_fixed_error_from_a_revision_with_the_fix_is_a_regression_mailed_to_both(fixed,
                                                                                   world):
    repo, before = fixed
    processed = world(repo)
    processed.process(mean_report(before))
    assert processed.mails() == [[ALICE[1]]]
    fix = commit_fix(repo, f"Skip days without rows\n\nFixes: {error_link()}\n")
    after = repo.commit(CAROL, {"README": "docs\n"}, "Docs", date="2026-10-06T10:00:00+00:00")
    scanner = processed.trailers()
    resolution = processed.resolution("mean")
    assert resolution.resolved and resolution.fix_commit == fix
    assert resolution.fix_author_email == BOB[1]
    assert resolution.source == f"a Fixes: trailer in {fix[:12]}"

    processed.process(mean_report(before), mean_report(before))       # old deployments
    assert processed.mails() == [[ALICE[1]]]
    resolution = processed.resolution("mean")
    assert resolution.resolved and resolution.old_deployments == 2
    assert resolution.old_deployment_revision == before

    processed.process(mean_report(after))                             # the fix regressed
    assert processed.mails()[1:] == [[ALICE[1]], [BOB[1]]]   # one mail each
    message = processed.messages()[1]
    assert message["Subject"].startswith("Regression: ZeroDivisionError in mean")
    text = " ".join(text_of(message).split())
    assert f"regressed in {after[:12]}, which contains the fix {fix[:12]} by Bob Builder" in text
    assert f"{BOB[1]}: wrote the fix {fix[:12]}" in text
    resolution = processed.resolution("mean")
    assert not resolution.resolved and resolution.regressed_in == after
    # Read again (a restart), the trailer does not resolve the regressed error a second time.
    scanner.stopService()
    processed.trailers().stopService()
    assert not processed.resolution("mean").resolved
    processed.process(mean_report(before))
    assert len(processed.mails()) == 3


def test_a_report_without_a_known_revision_after_a_fix_counts_as_a_regression(fixed, world):
    repo, before = fixed
    processed = world(repo)
    processed.process(mean_report(before))
    commit_fix(repo, f"Skip days without rows\n\nFixes: {error_link()}\n")
    processed.trailers().stopService()
    processed.process(mean_report("0badc0de" * 5))
    assert processed.mails() == [[ALICE[1]], [ALICE[1]], [BOB[1]]]
    text = " ".join(text_of(processed.messages()[1]).split())
    assert "names a revision (0badc0de0badc0de" in text
    assert "cannot be told from an old deployment" in text


def test_trailers_that_link_elsewhere_resolve_nothing(fixed, world):
    repo, before = fixed
    processed = world(repo)
    processed.process(mean_report(before))
    commit_fix(repo, "Skip days without rows\n\nFixes: 1234567890ab (\"Add mean\")\n"
                     f"Fixes: {error_link('median')}\nFixes: https://github.com/o/r/issues/3\n")
    processed.trailers().stopService()
    assert processed.resolution("mean") is None


def test_a_trailer_read_before_its_error_was_recorded_applies_once_it_is(fixed, world):
    repo, before = fixed
    processed = world(repo)
    fix = commit_fix(repo, f"Skip days without rows\n\nFixes: {error_link()}\n")
    scanner = processed.trailers()
    assert scanner.scanned == fix
    processed.process(mean_report(before))          # the error is first seen here
    assert processed.mails() == [[ALICE[1]]]
    processed.clock.advance(60)                       # the next look at the tip
    assert processed.resolution("mean").fix_commit == fix
    processed.process(mean_report(fix))
    assert processed.mails()[1:] == [[ALICE[1]], [BOB[1]]]
    scanner.stopService()


def test_a_resolution_changed_while_its_batch_was_planned_is_not_overwritten(fixed, world,
                                                                            monkeypatch):
    repo, before = fixed
    processed = world(repo)
    processed.process(mean_report(before))
    commit_fix(repo, f"Skip days without rows\n\nFixes: {error_link()}\n")
    processed.trailers().stopService()
    storage = processed.storage
    real_read = storage.resolutions

    def read_then_reopened(error_ids):
        found = real_read(error_ids)   # the plan sees it resolved...
        with storage.transaction() as transaction:   # ...and it is reopened before the write
            for error_id, resolution in found.items():
                transaction.save_resolution(error_id, replace(resolution, resolved_at=None))
        return found

    monkeypatch.setattr(storage, "resolutions", read_then_reopened)
    processed.process(mean_report(before))
    resolution = processed.resolution("mean")
    assert not resolution.resolved and resolution.old_deployments == 0
    assert processed.counts() == {"mean": 2}
