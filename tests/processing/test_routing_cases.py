"""Who gets the alert, in the cases plain blame gets wrong: a file renamed with a shim left
behind, a function moved to another file by someone else. Real repositories, the real
processor and database, the recipient of the queued mail asserted."""

from __future__ import annotations

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
