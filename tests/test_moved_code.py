"""Blame finds who wrote a line that someone else moved: a file renamed with a shim left
behind, a function moved to another file or within one; and it costs nothing extra where
nothing moved. Real repositories, real git."""

from __future__ import annotations

from typing import Any

import pytest

from flawless.server.git.porcelain import enclosing_block
from flawless.server.git.repository import Repository
from support.gitrepo import ALICE, BOB, CAROL, GitRepo, init_repo

FORMATTING = '''\
import re


def money(value):
    """Format an amount of money."""
    cents = round(value * 100)
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d}"


def percent(ratio):
    return f"{ratio * 100:.1f}%"
'''
MONEY_RETURN = 9                     # return f"{sign}...", by Alice

HELPERS = '''\
def clamp(value, low, high):
    if low > high:
        raise ValueError("empty range")
    return max(low, min(high, value))


def mean(values):
    total = sum(values)
    return total / len(values)


def unrelated():
    return 42
'''
MEAN = '''\
def mean(values):
    total = sum(values)
    return total / len(values)
'''


class CountingRepository(Repository):
    """A real repository that records the git commands it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[tuple[str, ...]] = []

    def _git(self, command: str, *args: str, **kwargs: Any) -> bytes:
        self.commands.append((command, *args))
        return super()._git(command, *args, **kwargs)

    def blames_with(self, option: str) -> int:
        """How many git blames ran with ``option`` (``-C``: with any copy score)."""
        return sum(1 for command in self.commands if command[0] == "blame"
                   and any(argument.startswith(option) for argument in command))


@pytest.fixture
def repo(tmp_path) -> GitRepo:
    """Alice wrote formatting.py and helpers.py."""
    repo = init_repo(tmp_path / "repo")
    repo.commit(ALICE, {"formatting.py": FORMATTING, "helpers.py": HELPERS}, "Add helpers",
                date="2026-10-01T10:00:00+00:00")
    return repo


def test_a_rename_that_leaves_a_shim_behind_is_blamed_on_the_author(repo):
    repo.git("mv", "formatting.py", "_formatting.py")
    renamed = repo.commit(BOB, {"formatting.py": "from _formatting import *  # noqa\n"},
                          "Rename formatting to _formatting, keep a shim")
    repository = CountingRepository(str(repo.path))
    blamed = repository.blame_line("_formatting.py", MONEY_RETURN, renamed, "", "money")
    assert (blamed.author_name, blamed.author_email) == ALICE
    assert blamed.original_path == "formatting.py" and blamed.path == "_formatting.py"
    assert blamed.line_number == MONEY_RETURN and blamed.revision == renamed
    [why] = blamed.explanation
    assert f"plain git blame names {renamed[:12]} by Bob Builder" in why
    assert "also changed that line's text in formatting.py" in why
    assert "lines 4-9 (money) again with git blame -M20 -C23" in why
    assert "written in formatting.py in" in why and "by Alice Liddell (Add helpers)" in why
    without = Repository(str(repo.path), detect_moves=False)
    assert without.blame_line("_formatting.py", MONEY_RETURN, renamed).author_email == BOB[1]


def test_a_function_moved_to_another_file_is_blamed_on_its_author(repo):
    moved = repo.commit(CAROL, {"helpers.py": HELPERS.replace(MEAN + "\n\n", ""),
                                "stats.py": "import math\n\n\n" + MEAN},
                        "Move mean to stats")
    repository = CountingRepository(str(repo.path))
    blamed = repository.blame_line("stats.py", 6, moved, "return total / len(values)", "mean")
    assert blamed.author_email == ALICE[1] and blamed.original_path == "helpers.py"
    assert "also changed that line's text in helpers.py" in blamed.explanation[0]
    assert repository.blames_with("-C") == 1
    # git alone does not follow one short line to another file: the block is what works.
    assert Repository(str(repo.path), detect_moves=False).blame_line(
        "stats.py", 6, moved).author_email == CAROL[1]


def test_a_function_moved_into_a_new_file_of_a_new_directory(repo):
    moved = repo.commit(CAROL, {"helpers.py": HELPERS.replace(MEAN + "\n\n", ""),
                                "lib/stats/__init__.py": MEAN}, "Move mean to lib.stats")
    blamed = Repository(str(repo.path)).blame_line("lib/stats/__init__.py", 3, moved, "",
                                                   "mean")
    assert blamed.author_email == ALICE[1]


def test_a_function_moved_within_its_file_is_blamed_on_its_author(repo):
    reordered = HELPERS.replace(MEAN + "\n\n", "").replace("def clamp", MEAN + "\n\ndef clamp")
    moved = repo.commit(BOB, {"helpers.py": reordered}, "Put mean first")
    assert reordered.splitlines()[2] == "    return total / len(values)"
    repository = CountingRepository(str(repo.path))
    plain = Repository(str(repo.path), detect_moves=False).blame_line("helpers.py", 3, moved)
    blamed = repository.blame_line("helpers.py", 3, moved, "", "mean")
    assert plain.author_email == BOB[1] and blamed.author_email == ALICE[1]
    assert "moved it within helpers.py" in blamed.explanation[0]
    assert "git blame -M20" in blamed.explanation[0]


def test_new_code_costs_one_small_git_call_and_keeps_its_author(repo):
    added = repo.commit(BOB, {"report.py": "def summary(rows):\n    return len(rows) / 0\n"},
                        "Add a summary")
    repository = CountingRepository(str(repo.path))
    blamed = repository.blame_line("report.py", 2, added, "", "summary")
    assert blamed.author_email == BOB[1] and blamed.explanation == ()
    assert [command[0] for command in repository.commands].count("diff-tree") == 1
    assert repository.blames_with("-C") == repository.blames_with("-M") == 0
    # the answer of git diff-tree is kept: the same commit and text cost no second call
    Repository.blame_line(repository, "report.py", 2, added, "", "summary")
    assert [command[0] for command in repository.commands].count("diff-tree") == 1


def test_code_copied_and_left_in_place_stays_the_copiers(repo):
    copied = repo.commit(CAROL, {"stats.py": MEAN}, "Copy mean to stats")
    blamed = Repository(str(repo.path)).blame_line("stats.py", 3, copied, "", "mean")
    assert blamed.author_email == CAROL[1] and blamed.explanation == ()


def test_a_moved_function_edited_later_is_blamed_on_the_later_editor(repo):
    moved = MEAN.replace("total / len(values)", "total / max(1, len(values))")
    repo.commit(CAROL, {"helpers.py": HELPERS.replace(MEAN + "\n\n", ""), "stats.py": MEAN},
                "Move mean to stats")
    edited = repo.commit(BOB, {"stats.py": moved}, "Never divide by zero")
    repository = Repository(str(repo.path))
    assert repository.blame_line("stats.py", 3, edited, "", "mean").author_email == BOB[1]
    assert repository.blame_line("stats.py", 2, edited, "", "mean").author_email == ALICE[1]


# -- the block around a line ----------------------------------------------------------------

SOURCE = '''\
import os

TIMEOUT = 3
RETRIES = 2


class Cart:
    """A cart."""

    @property
    @cached
    def total(self):
        if self.items:
            return sum(price for _, price in self.items)

        return 0

    def average(self):
        return self.total / len(self.items)


function render(items) {
    for (const item of items) {
        show(item);
    }
}
'''


@pytest.mark.parametrize("line, function, expected", [
    (14, "total", (10, 16)),        # the method with its decorators, a blank line inside
    (13, "total", (10, 16)),
    (14, "<genexpr>", (7, 19)),     # no definition of that name: the outermost block
    (19, "average", (18, 19)),
    (4, "<module>", (3, 4)),        # top level: the paragraph
    (1, "<module>", (1, 1)),
    (24, "render", (22, 26)),       # a braced block keeps its closing brace
])
def test_enclosing_block(line: int, function: str, expected: tuple[int, int]) -> None:
    assert enclosing_block(SOURCE.splitlines(), line, function) == expected


def test_enclosing_block_is_bounded_around_the_line() -> None:
    lines = ["def huge():"] + [f"    x{number} = {number}" for number in range(1000)]
    assert enclosing_block(lines, 600, "huge", limit=100) == (550, 649)
    assert enclosing_block(lines, 5, "huge", limit=100) == (1, 100)
    assert enclosing_block([], 1) == (1, 1)
