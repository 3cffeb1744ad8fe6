"""A corpus of routing cases with their right answers, built as one real git repository.

Each case lives in its own directory (``c01/`` ...) of one repository, written, edited,
renamed and moved by several authors; it says which reports a program running its code would
send (the revision each ran at, the frames, the chain of exceptions) and who must get the
mail for each (nobody: no mail). Ordinary cases are what plain blame at the revision gets
right; the others are the kinds of issue 18: renames with a shim, moved code, chained
exceptions, fixes by revision.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ALICE = ("Alice Liddell", "alice@example.com")
BOB = ("Bob Builder", "bob@example.com")
CAROL = ("Carol Danvers", "carol@example.com")
DAVE = ("Dave Mover", "dave@example.com")       # moves and renames other people's code
ERIN = ("Erin Black", "erin@example.com")       # reformats
APP = "/srv/app"
START = 1_767_261_600            # 2026-01-01 10:00 UTC: the first commit's day


@dataclass
class Send:
    """One report of a case and who must get its mail (empty: no mail)."""

    report: dict
    expected: frozenset[str]


@dataclass
class Case:
    """A routing case: its kind, the reports, and whether it waits for a Fixes: trailer."""

    name: str
    kind: str                       # "ordinary" or the hard kind
    sends: list[Send]
    fix_commit: Optional[str] = None   # reports after the first wait until this fix applies
    notes: str = ""


@dataclass
class Corpus:
    """The repository and its cases."""

    path: Path
    cases: list[Case] = field(default_factory=list)


class Repo:
    """A repository written one commit at a time, each by one author on its own day."""

    def __init__(self, path: Path):
        self.path = path
        self.day = 0
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, author: tuple[str, str] = ALICE) -> str:
        """Run git in the repository as ``author``, on the repository's current day."""
        stamp = f"@{START + self.day * 86400} +0000"
        env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=str(self.path),
                   GIT_AUTHOR_NAME=author[0], GIT_AUTHOR_EMAIL=author[1],
                   GIT_COMMITTER_NAME=author[0], GIT_COMMITTER_EMAIL=author[1],
                   GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
        return subprocess.run(["git", *args], cwd=self.path, env=env, check=True,
                              capture_output=True, text=True).stdout

    def commit(self, author: tuple[str, str], files: dict[str, Optional[str]],
               message: str) -> str:
        """Write (or delete, for None) ``files`` and commit them as ``author``."""
        self.day += 1
        for name, text in files.items():
            target = self.path / name
            if text is None:
                self.git("rm", "-q", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text))
            self.git("add", name)
        self.git("commit", "-q", "--allow-empty", "-m", message, author=author)
        return self.git("rev-parse", "HEAD").strip()

    def move(self, author: tuple[str, str], old: str, new: str, shim: Optional[str],
             message: str) -> str:
        """``git mv old new``, leaving ``shim`` at ``old`` when given."""
        self.git("mv", old, new)
        return self.commit(author, {old: shim} if shim else {}, message)


def frame(path: str, line: int, function: str, text: str) -> dict:
    return {"filename": f"{APP}/{path}", "line_number": line, "function_name": function,
            "text": text}


def report(case: str, exception_type: str, revision: Optional[str], *frames: dict,
           chained: tuple[dict, ...] = ()) -> dict:
    data = {"exception_type": exception_type, "exception_message": f"{case} failed",
            "traceback": list(frames), "hostname": "web-1"}
    if revision:
        data["revision"] = revision
    if chained:
        data["chained"] = list(chained)
    return data


def exception(exception_type: str, *frames: dict) -> dict:
    return {"exception_type": exception_type, "exception_message": "cause",
            "traceback": list(frames)}


def only(*people: tuple[str, str]) -> frozenset[str]:
    return frozenset(email for _, email in people)


def build(path: Path) -> Corpus:
    """Build the repository at ``path`` (which must not exist) and return the corpus."""
    repo = Repo(path)
    corpus = Corpus(path)
    add = corpus.cases.append

    # -- ordinary -------------------------------------------------------------------------
    repo.commit(ALICE, {"c01/orders.py": """\
        def total(items):
            return sum(item.price for item in items)
        """}, "Orders: total")
    head = repo.commit(BOB, {"c01/orders.py": """\
        def total(items):
            return sum(item.price for item in items)


        def count(items):
            return len(items)
        """}, "Orders: count")
    add(Case("c01 the line's author, another author's edits below", "ordinary", [Send(report(
        "c01", "builtins.AttributeError", head,
        frame("c01/orders.py", 2, "total", "return sum(item.price for item in items)")),
        only(ALICE))]))

    repo.commit(ALICE, {"c02/tax.py": """\
        RATE = 0.2


        def vat(amount):
            return amount * RATE / 0
        """}, "Tax: vat")
    repo.commit(BOB, {"c02/tax.py": """\
        import decimal
        import math

        ROUNDING = decimal.ROUND_HALF_UP
        PRECISION = math.ceil(2.5)
        RATE = 0.2


        def vat(amount):
            return amount * RATE / 0
        """}, "Tax: rounding")
    add(Case("c02 no revision, the line pushed down since", "ordinary", [Send(report(
        "c02", "builtins.ZeroDivisionError", None,
        frame("c02/tax.py", 5, "vat", "return amount * RATE / 0")), only(ALICE))],
        notes="the client sent no revision: blamed at HEAD, the line found by its text"))

    repo.commit(ALICE, {"c03/fmt.py": """\
        def label(n):
            return "#"+str(n)+":"+NAMES[n]
        """}, "Format: label")
    reformat = repo.commit(ERIN, {"c03/fmt.py": """\
        def label(n):
            return "#" + str(n) + ":" + NAMES[n]
        """}, "Reformat with black")
    head = repo.commit(ERIN, {".git-blame-ignore-revs": f"# black\n{reformat}\n"},
                       "Ignore the reformat in blame")
    add(Case("c03 a reformat listed in .git-blame-ignore-revs", "ordinary", [Send(report(
        "c03", "builtins.KeyError", head,
        frame("c03/fmt.py", 2, "label", 'return "#" + str(n) + ":" + NAMES[n]')),
        only(ALICE))]))

    deployed = repo.commit(ALICE, {"c04/ship.py": """\
        def weight(parcel):
            return parcel.kilos * 1000 / parcel.count
        """}, "Shipping: weight")
    repo.commit(BOB, {"c04/ship.py": """\
        def weight(parcel):
            return parcel.kilos * 1000 / max(parcel.count, 1)
        """}, "Shipping: never divide by zero")
    add(Case("c04 an older revision still deployed", "ordinary", [Send(report(
        "c04", "builtins.ZeroDivisionError", deployed,
        frame("c04/ship.py", 2, "weight", "return parcel.kilos * 1000 / parcel.count")),
        only(ALICE))]))

    repo.commit(ALICE, {"c05/a.py": """\
        def greet(user):
            return "hello " + user.name
        """}, "Greeting")
    head = repo.move(CAROL, "c05/a.py", "c05/greeting.py", None, "Rename a.py")
    add(Case("c05 a file renamed (git mv)", "ordinary", [Send(report(
        "c05", "builtins.AttributeError", head,
        frame("c05/greeting.py", 2, "greet", 'return "hello " + user.name')), only(ALICE))]))

    repo.commit(ALICE, {"c11/cache.py": """\
        STORE = {}


        def fetch(key):
            return STORE[key]
        """}, "Cache")
    repo.commit(CAROL, {"c11/compute.py": """\
        def compute(key):
            total, count = 0, 0
            return total / count
        """}, "Compute")
    head = repo.commit(BOB, {"c11/service.py": """\
        from c11.cache import fetch
        from c11.compute import compute


        def get(key):
            try:
                return fetch(key)
            except KeyError:
                return compute(key)
        """}, "Service: compute on a cache miss")
    add(Case("c11 a handler that fails in its own right (chained context)", "ordinary", [Send(
        report("c11", "builtins.ZeroDivisionError", head,
               frame("c11/service.py", 9, "get", "return compute(key)"),
               frame("c11/compute.py", 3, "compute", "return total / count"),
               chained=(exception("builtins.KeyError",
                                  frame("c11/service.py", 7, "get", "return fetch(key)"),
                                  frame("c11/cache.py", 5, "fetch", "return STORE[key]")),)),
        only(CAROL))]))

    # -- renames with a shim, moved code ----------------------------------------------------
    repo.commit(ALICE, {"c06/formatting.py": """\
        def money(value):
            cents = round(value * 100)
            whole, part = divmod(abs(cents), 100)
            return f"{whole:,}.{part:02d}"
        """}, "Money formatting")
    head = repo.move(DAVE, "c06/formatting.py", "c06/_formatting.py",
                     "from c06._formatting import *  # noqa\n", "Make formatting private")
    add(Case("c06 a rename that leaves a shim behind", "rename with a shim", [Send(report(
        "c06", "builtins.TypeError", head,
        frame("c06/_formatting.py", 2, "money", "cents = round(value * 100)")),
        only(ALICE))]))

    repo.commit(ALICE, {"c07/helpers.py": """\
        import os


        def mean(values):
            total = sum(values)
            return total / len(values)
        """}, "Helpers: mean")
    head = repo.commit(DAVE, {"c07/helpers.py": "import os\n", "c07/stats.py": """\
        import math


        def mean(values):
            total = sum(values)
            return total / len(values)
        """}, "Move mean() to stats")
    add(Case("c07 a function moved to another file", "moved code", [Send(report(
        "c07", "builtins.ZeroDivisionError", head,
        frame("c07/stats.py", 6, "mean", "return total / len(values)")), only(ALICE))]))

    repo.commit(ALICE, {"c08/calc.py": """\
        def ratio(part, whole):
            share = part / whole
            rounded = round(share, 2)
            return rounded


        def first(rows):
            return rows[0]
        """}, "Calc")
    head = repo.commit(DAVE, {"c08/calc.py": """\
        def first(rows):
            return rows[0]


        def ratio(part, whole):
            share = part / whole
            rounded = round(share, 2)
            return rounded
        """}, "Calc: first() first")
    add(Case("c08 a function moved within its file", "moved code", [Send(report(
        "c08", "builtins.IndexError", head,
        frame("c08/calc.py", 2, "first", "return rows[0]")), only(ALICE))]))

    # -- chained exceptions -------------------------------------------------------------------
    repo.commit(ALICE, {"c09/parse.py": """\
        def parse(text):
            return int(text)
        """}, "Parse")
    head = repo.commit(BOB, {"c09/config.py": """\
        from c09.parse import parse


        class ConfigError(Exception):
            pass


        def load(text):
            try:
                return parse(text)
            except ValueError as err:
                raise ConfigError(text) from err


        def main(text):
            return load(text)
        """}, "Config errors")
    add(Case("c09 raise ... from", "chained exceptions", [Send(report(
        "c09", "c09.config.ConfigError", head,
        frame("c09/config.py", 16, "main", "return load(text)"),
        frame("c09/config.py", 12, "load", "raise ConfigError(text) from err"),
        chained=(exception("builtins.ValueError",
                           frame("c09/config.py", 10, "load", "return parse(text)"),
                           frame("c09/parse.py", 2, "parse", "return int(text)")),)),
        only(ALICE))]))

    repo.commit(ALICE, {"c10/cache.py": """\
        STORE = {}


        def fetch(key):
            return STORE[key]
        """}, "Cache")
    head = repo.commit(BOB, {"c10/service.py": """\
        from c10.cache import fetch


        class LookupFailed(Exception):
            pass


        def get(key):
            try:
                return fetch(key)
            except KeyError:
                raise LookupFailed(key)
        """}, "Service")
    add(Case("c10 raised while handling another (implicit chaining)", "chained exceptions", [
        Send(report("c10", "c10.service.LookupFailed", head,
                    frame("c10/service.py", 12, "get", "raise LookupFailed(key)"),
                    chained=(exception("builtins.KeyError",
                                       frame("c10/service.py", 10, "get", "return fetch(key)"),
                                       frame("c10/cache.py", 5, "fetch", "return STORE[key]")),
                             )),
             only(ALICE))]))

    # -- fixes by revision --------------------------------------------------------------------
    repo.commit(ALICE, {"c12/stats.py": """\
        def median(values):
            ordered = sorted(values)
            return ordered[len(ordered) // 2]
        """}, "Median")
    before = repo.commit(BOB, {"c12/report.py": """\
        from c12.stats import median


        def daily(rows):
            return median([row.amount for row in rows])
        """}, "Daily report")
    link = ("http://flawless.example.com/view_traceback?filename=c12%2Fstats.py&function_name="
            "median&line_number=3&text=return+ordered%5Blen%28ordered%29+%2F%2F+2%5D")
    fix = repo.commit(BOB, {"c12/report.py": """\
        from c12.stats import median


        def daily(rows):
            if not rows:
                return 0
            return median([row.amount for row in rows])
        """}, f"Skip days without rows\n\nFixes: {link}\n")
    after = repo.commit(CAROL, {"c12/README": "Daily reports.\n"}, "Document the reports")

    def median_report(revision: str, caller_line: int) -> dict:
        return report("c12", "builtins.IndexError", revision,
                      frame("c12/report.py", caller_line, "daily",
                            "return median([row.amount for row in rows])"),
                      frame("c12/stats.py", 3, "median", "return ordered[len(ordered) // 2]"))

    add(Case("c12 a fixed error from an old deployment, then a regression", "fixes by revision",
             [Send(median_report(before, 5), only(ALICE)),
              Send(median_report(before, 5), frozenset()),
              Send(median_report(after, 7), only(ALICE, BOB))], fix_commit=fix,
             notes="the first report records the error; the second runs code without the "
                   "fix (no mail); the third runs code with it (a regression)"))
    return corpus


def corpus_at(path: Path) -> Corpus:
    """The corpus, its repository built afresh at ``path``."""
    if path.exists():
        subprocess.run(["rm", "-rf", str(path)], check=True)
    return build(path)
