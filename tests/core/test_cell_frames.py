"""How frames in notebook cells are shown, known as errors, routed and explained (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from flawless.report import Frame, NotebookCell, Report, line_hash
from flawless.server.core import alerting
from flawless.server.core.cell_frames import (blame_note, blame_reason, cell_label, cell_where,
                                              frame_line, frame_where)
from flawless.server.core.model import (AlertSettings, Blame, CellBlame, Disownership, ErrorKey,
                                        KnownError, LineRule, RoutingSettings, Rules)
from flawless.server.core.routing import RepoIndex, route

NOTEBOOK = "notebooks/analysis.ipynb"
INDEX = RepoIndex.from_paths([NOTEBOOK, "helpers/stats.py", "notebooks/helpers.py",
                              "other/analysis.py"])
HASH = line_hash("share = ratio(10, 0)")
CELL = NotebookCell(line=4, notebook=f"~/proj/{NOTEBOOK}", id="f426cbb7", execution_count=7,
                    line_hash=HASH)
SETTINGS = AlertSettings(report_error_threshold=1, default_contact="oncall@example.com")


def in_cell(cell: NotebookCell = CELL, function: str = "<module>", line_number: int = 2,
            kernel_file: str = "<ipykernel>/1292013214.py") -> Frame:
    return Frame(kernel_file, line_number, function, "", None, cell)


def report(*frames: Frame) -> Report:
    return Report("builtins.ZeroDivisionError", "division by zero", tuple(frames))


def routed(*frames: Frame, rules: Rules = Rules()):
    return route(report(*frames), INDEX, rules, RoutingSettings())


# -- naming -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell, label", [
    (CELL, "cell 7 (id f426cbb7)"),
    (replace(CELL, id=None), "cell 7"),
    (replace(CELL, execution_count=None), "cell (id f426cbb7)"),
    (replace(CELL, id=None, execution_count=None), "a cell"),
])
def test_a_cell_is_named_by_its_execution_count_and_id(cell, label) -> None:
    assert cell_label(cell) == label


def test_a_frame_in_a_cell_is_shown_by_notebook_cell_and_line() -> None:
    assert frame_where(in_cell()) == "analysis.ipynb, cell 7 (id f426cbb7), line 4"
    assert frame_where(in_cell(replace(CELL, notebook=None))) == "cell 7 (id f426cbb7), line 4"
    assert frame_where(Frame("shop/cart.py", 9, "f")) == "shop/cart.py:9"
    assert cell_where(CELL, NOTEBOOK) == f"{NOTEBOOK}, cell 7 (id f426cbb7), line 4"
    assert frame_line(in_cell()) == 4 and frame_line(Frame("a.py", 9, "f")) == 9


# -- routing ------------------------------------------------------------------------------------

def test_a_frame_in_a_cell_of_a_tracked_notebook_is_a_line_of_the_notebook() -> None:
    result = routed(in_cell())
    assert result.blamed is not None and result.blamed.repo_path == NOTEBOOK
    assert result.key == ErrorKey(NOTEBOOK, "cell f426cbb7", f"line_hash:{HASH}")
    assert result.explanation == (
        f"blamed {NOTEBOOK}, cell 7 (id f426cbb7), line 4 in <module>: innermost line of the "
        "repository",)


def test_the_key_holds_neither_execution_count_nor_kernel_file_nor_text() -> None:
    keys = {routed(in_cell(replace(CELL, execution_count=count), kernel_file=name,
                           line_number=number)).key
            for count, name, number in [(7, "<ipykernel>/1.py", 2), (30, "<ipykernel>/2.py", 4),
                                        (None, "/tmp/ipykernel_9/3.py", 1)]}
    assert len(keys) == 1
    assert routed(in_cell(replace(CELL, line_hash=line_hash("other()")))).key != keys.pop()


def test_without_an_id_the_function_names_the_code_and_without_a_hash_the_line() -> None:
    assert routed(in_cell(replace(CELL, id=None), function="ratio")).key == \
        ErrorKey(NOTEBOOK, "ratio", f"line_hash:{HASH}")
    assert routed(in_cell(replace(CELL, line_hash=None))).key == \
        ErrorKey(NOTEBOOK, "cell f426cbb7", "line 4 of the cell")


def test_a_helper_module_called_from_a_cell_is_blamed_before_the_cell() -> None:
    helper = Frame("/home/u/proj/helpers/stats.py", 3, "mean", "return sum(v) / len(v)")
    result = routed(in_cell(), helper)
    assert result.blamed is not None and result.blamed.repo_path == "helpers/stats.py"
    assert result.key == ErrorKey("helpers/stats.py", "mean", "return sum(v) / len(v)")
    assert [frame.in_app for frame in result.frames] == [True, True]


@pytest.mark.parametrize("notebook", [
    "~/elsewhere/scratch.ipynb",     # not in the repository
    "~/proj/other/analysis.py",      # a cell is never a line of a .py file
    "analysis.ipynb/../../x.ipynb",  # no path
])
def test_a_cell_of_a_notebook_outside_the_repository_is_not_blamed(notebook) -> None:
    result = routed(in_cell(replace(CELL, notebook=notebook)))
    assert result.blamed is None and result.key.function_name == "cell f426cbb7"
    assert result.explanation == ("unblamable: no frame is a line of the repository",)


def test_a_cell_without_notebook_is_known_by_the_kernel_file_cell_and_line() -> None:
    result = routed(in_cell(replace(CELL, notebook=None, line_hash=None)))
    assert result.blamed is None
    assert result.key == ErrorKey("<ipykernel>/1292013214.py", "cell f426cbb7",
                                 "line 4 of the cell")


def test_a_known_error_added_from_the_dashboard_matches_the_cell_line() -> None:
    """The dashboard prefills a known error from the key: notebook, cell and line hash."""
    key = routed(in_cell()).key
    known = KnownError(key.filename, key.function_name, key.text, source="known_errors.yaml:1")
    assert routed(in_cell(), rules=Rules(known_errors=(known,))).known_error == known
    other_line = in_cell(replace(CELL, line_hash=line_hash("x = 1")))
    assert routed(other_line, rules=Rules(known_errors=(known,))).known_error is None


def test_rules_may_name_a_function_defined_in_a_cell() -> None:
    block = LineRule(NOTEBOOK, "ratio", source="building_blocks.yaml:1")
    result = routed(in_cell(), in_cell(replace(CELL, line=3), function="ratio"),
                    rules=Rules(building_blocks=(block,)))
    assert result.blamed_index == 0
    assert result.explanation[0] == (f"skipped {NOTEBOOK}, cell 7 (id f426cbb7), line 3 in "
                                     "ratio: building block (building_blocks.yaml:1)")


# -- what the blame says, and whom it alerts ---------------------------------------------------

def blame(cell: CellBlame, json_line: int = 57) -> Blame:
    return Blame(NOTEBOOK, json_line, "Bob Builder", "bob@example.org", "c" * 40, "Shares",
                 1_790_000_000.0, "d" * 40, True, "", cell)


FOUND = CellBlame(position=5, cell_id="f426cbb7", line=4, by_id=True, checked=True)


@pytest.mark.parametrize("cell, note", [
    (FOUND, "notebook cell found by its id: the 5th cell (id f426cbb7) of "
            f"{NOTEBOOK} at dddddddddddd; its line 4 is the line raised (same hash); line 57 "
            "of the file"),
    (replace(FOUND, line=6, by_id=False),
     "notebook cell found by the hash of the line raised: the 5th cell (id f426cbb7) of "
     f"{NOTEBOOK} at dddddddddddd; the line raised (line 4 as it ran) is its line 6, moved "
     "since the commit; line 57 of the file"),
    (replace(FOUND, checked=False),
     f"notebook cell found by its id: the 5th cell (id f426cbb7) of {NOTEBOOK} at "
     "dddddddddddd; its line 4 is taken unchecked (the report carries no line hash); line 57 "
     "of the file"),
    (replace(FOUND, cell_id=None, position=2, one_json_line=True),
     f"notebook cell found by its id: the 2nd cell of {NOTEBOOK} at dddddddddddd; its line 4 "
     "is the line raised (same hash); line 57 of the file; the notebook stores the cell's "
     "source on one line, so this names the cell's last change"),
    (replace(FOUND, line=None, position=21),
     "unsaved edits, no line blamed: line 4 of the cell as it ran is not in the 21st cell (id "
     f"f426cbb7) of {NOTEBOOK} at dddddddddddd (no line of that cell has its hash); the alert "
     "names the author of the cell's last change (line 57 of the file)"),
])
def test_the_note_says_how_the_line_was_found_or_why_nothing_was_blamed(cell, note) -> None:
    assert blame_note(blame(cell), CELL) == note


@pytest.mark.parametrize("position, ordinal", [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"),
                                               (11, "11th"), (12, "12th"), (13, "13th"),
                                               (22, "22nd"), (101, "101st"), (111, "111th")])
def test_ordinals(position, ordinal) -> None:
    assert f"the {ordinal} cell" in blame_reason(blame(replace(FOUND, position=position)))


def test_the_author_of_the_cell_line_is_told_what_git_blame_named() -> None:
    result = routed(in_cell())
    decision = alerting.decide(result, "bob@example.org", 1_790_000_000.0, 0, 1, False, None,
                               Rules(), SETTINGS, blame_reason(blame(FOUND)))
    assert [(r.email, r.reason) for r in decision.recipients] == [(
        "bob@example.org",
        f"last changed line 4 of the 5th cell (id f426cbb7) of {NOTEBOOK} (git blame)")]


def test_with_unsaved_edits_the_cells_last_author_is_told_why_and_may_disown_it() -> None:
    result = routed(in_cell())
    rules = Rules(disownership=(Disownership("bob@example.org", "notebooks",
                                             "data@example.org", "disownership.yaml:1"),))
    unsaved = blame_reason(blame(replace(FOUND, line=None)))
    decision = alerting.decide(result, "bob@example.org", 1_790_000_000.0, 0, 1, False, None,
                               rules, SETTINGS, unsaved)
    assert [(r.email, r.reason) for r in decision.recipients] == [(
        "data@example.org",
        f"last changed the 5th cell (id f426cbb7) of {NOTEBOOK}, whose line raised has unsaved "
        "edits (no line blamed); bob@example.org disowned notebooks (disownership.yaml:1)")]
    assert blame_reason(None) is None
    assert blame_reason(replace(blame(FOUND), cell=None)) is None
