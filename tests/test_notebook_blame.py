"""git blame of a line reported from a notebook's cell, against a real repository in which
Alice and Bob committed a notebook: the line's author, a line moved in its cell, a cell
edited since (unsaved edits: the cell's last author), cells not committed, notebooks that
cannot be read, the commit's text kept out of every blame, and the caching service."""

from __future__ import annotations

from dataclasses import replace

import pytest
from twisted.internet.task import Clock

from flawless.config import build_config
from flawless.report import NotebookCell, line_hash, parse_report
from flawless.server.core.model import CellBlame
from flawless.server.git import repository as repository_module
from flawless.server.git.notebooks import blame_cell
from flawless.server.git.repository import BlameFailed, Repository
from flawless.server.processing.blame_service import BlameService
from flawless.server.processing.explain import explain_report
from flawless.server.threads import InlineRunner
from support.gitrepo import ALICE, BOB, CAROL
from support.notebooks import (CALLS_RATIO, CANARY, EDITED_SCALED, NOTEBOOK, RATIO, SCALED,
                               CellLine, cell_frame, cell_report, team_notebook_repo)

pytest.importorskip("nbformat")


@pytest.fixture
def team(tmp_path):
    repo, notebook = team_notebook_repo(tmp_path / "proj")
    return repo, notebook, Repository(str(repo.path))


def reported(notebook, position: int, line: int, text: str = "", **fields) -> NotebookCell:
    source = notebook.cells[position].source.splitlines()
    return NotebookCell(line=line, notebook=f"~/proj/{NOTEBOOK}",
                        id=fields.pop("id", notebook.cells[position].id), execution_count=7,
                        line_hash=line_hash(text or source[line - 1]), **fields)


def file_line(repo, number: int) -> str:
    return (repo.path / NOTEBOOK).read_text().split("\n")[number - 1]


def test_a_line_of_bobs_cell_is_bobs_and_the_blame_keeps_none_of_its_text(team) -> None:
    repo, notebook, repository = team
    blame = blame_cell(repository, NOTEBOOK, reported(notebook, RATIO, 3), repo.head())
    assert (blame.author_name, blame.author_email) == BOB
    assert blame.commit_summary == "Shares per count" and blame.revision == repo.head()
    assert blame.cell == CellBlame(position=RATIO + 1, cell_id=notebook.cells[RATIO].id, line=3,
                                   by_id=True, checked=True)
    assert "return total / count" in file_line(repo, blame.line_number)
    assert blame.line_text == "" and CANARY not in repr(blame)


def test_alices_lines_stay_alices_after_bob_rewrote_the_notebook(team) -> None:
    repo, notebook, repository = team
    blame = blame_cell(repository, NOTEBOOK, reported(notebook, SCALED, 3), repo.head())
    assert (blame.author_name, blame.author_email, blame.cell.line) == (*ALICE, 3)
    changed = blame_cell(repository, NOTEBOOK, reported(notebook, SCALED, 2), repo.head())
    assert changed.author_email == BOB[1]


def test_a_cell_found_by_its_line_when_the_id_is_unknown(team) -> None:
    repo, notebook, repository = team
    for cell_id in (None, "not-committed"):
        blame = blame_cell(repository, NOTEBOOK, reported(notebook, CALLS_RATIO, 4, id=cell_id),
                           repo.head())
        assert blame.author_email == BOB[1]
        assert (blame.cell.by_id, blame.cell.line) == (False, 4)


def test_a_line_moved_down_its_cell_is_blamed_where_the_commit_has_it(team) -> None:
    repo, notebook, repository = team
    moved = reported(notebook, RATIO, 5, "return total / count")   # two lines typed above it
    blame = blame_cell(repository, NOTEBOOK, moved, repo.head())
    assert blame.author_email == BOB[1] and blame.cell.line == 3


def test_an_edited_line_has_unsaved_edits_and_names_the_cells_last_author(team) -> None:
    """Alice wrote the cell, Bob changed its line 2 later: the cell's last change is Bob's,
    though the line at the reported number is still Alice's."""
    repo, notebook, repository = team
    edited = reported(notebook, SCALED, 3, EDITED_SCALED.splitlines()[2])
    blame = blame_cell(repository, NOTEBOOK, edited, repo.head())
    assert blame.author_email == BOB[1] and blame.cell.line is None
    assert "scale = 100" in file_line(repo, blame.line_number)
    assert blame.line_text == ""


def test_an_empty_committed_cell_is_blamed_whole(team) -> None:
    repo, notebook, _ = team
    import nbformat
    notebook.cells.append(nbformat.v4.new_code_cell(""))
    sha = repo.commit(CAROL, {NOTEBOOK: nbformat.writes(notebook)}, "An empty cell",
                      date="2026-11-04T10:00:00+00:00")
    typed = NotebookCell(line=1, notebook=NOTEBOOK, id=notebook.cells[-1].id,
                         line_hash=line_hash("1 / 0"))
    blame = blame_cell(Repository(str(repo.path)), NOTEBOOK, typed, sha)
    assert blame.author_email == CAROL[1] and blame.cell.line is None


@pytest.mark.parametrize("cell_id, text, reason", [
    ("new-cell", "brand_new()", "no code cell holds the line raised"),
    (None, "share = scale / len(values)", None),
])
def test_a_cell_that_is_not_committed_cannot_be_blamed(team, cell_id, text, reason) -> None:
    repo, notebook, repository = team
    typed = NotebookCell(line=1, notebook=NOTEBOOK, id=cell_id, line_hash=line_hash(text))
    if reason is None:  # committed, though not at line 1: found by its hash anyway
        assert blame_cell(repository, NOTEBOOK, typed, repo.head()).author_email == ALICE[1]
        return
    with pytest.raises(BlameFailed, match=f"{NOTEBOOK} at {repo.head()[:12]}: {reason}"):
        blame_cell(repository, NOTEBOOK, typed, repo.head())


def test_what_is_not_a_readable_notebook_is_not_blamed(team, monkeypatch) -> None:
    repo, notebook, _ = team
    sha = repo.commit(CAROL, {"broken.ipynb": '{"cells": [\n{"source": [1]}]}',
                              "big.ipynb": "{}" + " " * 2000}, "Odd notebooks")
    repository = Repository(str(repo.path))
    typed = NotebookCell(line=1, id="x", line_hash=line_hash("x"))
    with pytest.raises(BlameFailed, match="broken.ipynb is not a notebook flawless can read: "
                                          "line 2: a source line must be a string"):
        blame_cell(repository, "broken.ipynb", typed, sha)
    with pytest.raises(BlameFailed, match="'missing.ipynb' is not a file of the repository"):
        blame_cell(repository, "missing.ipynb", typed, sha)
    monkeypatch.setattr(repository_module, "MAX_NOTEBOOK_BYTES", 1000)
    with pytest.raises(BlameFailed, match="big.ipynb has 2002 bytes, more than the 1000"):
        blame_cell(repository, "big.ipynb", typed, sha)


def test_a_notebook_is_read_once_per_content(team, monkeypatch) -> None:
    repo, notebook, repository = team
    reads = []
    real = repository._cat_file
    monkeypatch.setattr(repository, "_cat_file", lambda *args: reads.append(args) or real(*args))
    for position, line in [(RATIO, 3), (CALLS_RATIO, 4), (SCALED, 1)]:
        blame_cell(repository, NOTEBOOK, reported(notebook, position, line), repo.head())
    assert [args[0] for args in reads] == ["-s", "blob"]


def test_the_service_blames_cells_at_the_reports_revision_and_caches_them(team) -> None:
    repo, notebook, repository = team
    first = repo.git("rev-list", "--max-parents=0", "HEAD").strip()
    alice_only = repo.git("rev-parse", "HEAD~1").strip()
    runner = InlineRunner()
    service = BlameService(repository, runner, runner, Clock())
    results = []
    cell = reported(notebook, SCALED, 2, "scale = 10")
    service.blame_cell(NOTEBOOK, cell, alice_only).addBoth(results.append)
    service.blame_cell(NOTEBOOK, replace(cell, execution_count=30), alice_only
                       ).addBoth(results.append)
    service.blame_cell(NOTEBOOK, cell, None).addBoth(results.append)
    service.blame_cell(NOTEBOOK, cell, first).addBoth(results.append)
    at_alice, again, at_head, at_first = results
    assert at_alice.author_email == ALICE[1] and at_alice.cell.line == 2
    assert again == at_alice and at_alice.at_requested_revision
    assert at_head.author_email == BOB[1] and at_head.cell.line is None  # Bob changed it since
    assert not at_head.at_requested_revision
    assert at_first.check(BlameFailed)  # the notebook did not exist yet


def test_check_explain_tells_how_a_cell_line_was_found_and_whom_it_alerts(team, tmp_path):
    repo, notebook, _ = team
    config = build_config({"repo_dir": str(repo.path), "data_dir_path": str(tmp_path / "data"),
                           "config_dir_path": str(tmp_path), "email_domain_name": "example.com",
                           "default_contact": "oncall@example.com"})
    ids = [cell.id for cell in notebook.cells]
    found = explain_report(config, parse_report(cell_report(
        cell_frame(CellLine(notebook.cells[CALLS_RATIO].source, 4, ids[CALLS_RATIO])),
        cell_frame(CellLine(notebook.cells[RATIO].source, 3, ids[RATIO]), "ratio"),
        revision=repo.head())))
    lines = found.splitlines()
    assert lines[0].startswith("git blame at the report's revision") and "Bob Builder" in lines[0]
    assert lines[1] == (f"blamed {NOTEBOOK}, cell 7 (id {ids[RATIO]}), line 3 in ratio: "
                        "innermost line of the repository")
    assert lines[2].startswith(f"notebook cell found by its id: the 5th cell (id {ids[RATIO]})")
    assert lines[-1] == (f"would go to bob@example.org: last changed line 3 of the 5th cell (id "
                         f"{ids[RATIO]}) of {NOTEBOOK} (git blame)")
    unsaved = explain_report(config, parse_report(cell_report(
        cell_frame(CellLine(EDITED_SCALED, 3, ids[SCALED])))))
    assert "unsaved edits, no line blamed" in unsaved
    assert unsaved.splitlines()[-1].startswith(
        "would go to bob@example.org: last changed the 4th cell")
    assert CANARY not in found + unsaved
