"""The pure notebook reader: every cell line's JSON line and hash, as nbformat and other
writers lay them out; finding a reported cell line by id or hash; refusing what is no
notebook with the line and the reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flawless.report import NotebookCell, line_hash
from flawless.server.core.notebooks import (CellNotFound, NotNotebook, is_notebook_path, locate,
                                            parse_notebook, same_hash)

nbformat = pytest.importorskip("nbformat")


def notebook(*sources: str, kinds: tuple[str, ...] = ()) -> str:
    """The text nbformat writes for cells with these sources (code cells unless ``kinds``
    says otherwise)."""
    book = nbformat.v4.new_notebook()
    makers = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}
    book.cells = [makers[kinds[index] if index < len(kinds) else "code"](source)
                  for index, source in enumerate(sources)]
    return nbformat.writes(book)


def element_on(text: str, json_line: int) -> str:
    """The JSON string written alone on a line of an indented notebook."""
    return json.loads(text.split("\n")[json_line - 1].strip().rstrip(","))


# -- reading ------------------------------------------------------------------------------------

source_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(st.lists(source_text, min_size=1, max_size=5))
def test_each_source_line_is_mapped_to_the_json_line_nbformat_wrote_it_on(sources) -> None:
    text = notebook(*sources)
    cells = parse_notebook(text)
    assert [cell.position for cell in cells] == list(range(1, len(sources) + 1))
    for cell, source in zip(cells, sources):
        lines = source.splitlines(keepends=True)
        assert [element_on(text, line.json_line) for line in cell.lines] == lines
        assert [line.line_hash for line in cell.lines] == [line_hash(line) for line in lines]
        written = text.split("\n")
        assert written[cell.first_json_line - 1].strip() == "{"
        assert written[cell.last_json_line - 1].strip() in ("}", "},")


def test_ids_types_and_the_lines_of_each_cell() -> None:
    text = notebook("import pandas as pd\ndf = pd.read_csv('x.csv')\n", "# Title", "",
                    kinds=("code", "markdown", "code"))
    first, title, empty = parse_notebook(text)
    ids = [cell["id"] for cell in json.loads(text)["cells"]]
    assert [first.id, title.id, empty.id] == ids
    assert [first.cell_type, title.cell_type, empty.cell_type] == ["code", "markdown", "code"]
    assert [line.json_line for line in first.lines] == [10, 11]
    assert first.blame_range() == (10, 11) and not first.one_json_line()
    assert empty.lines == () and empty.blame_range() == (empty.first_json_line,
                                                         empty.last_json_line)


def test_a_source_written_as_one_string_puts_every_line_on_one_json_line() -> None:
    text = json.dumps({"cells": [{"cell_type": "code", "id": "a1", "metadata": {},
                                  "outputs": [], "source": "x = 1\ny = 2\nz = x / 0"}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)
    [cell] = parse_notebook(text)
    assert [line.json_line for line in cell.lines] == [8, 8, 8] and cell.one_json_line()
    assert cell.lines[2].line_hash == line_hash("z = x / 0")


def test_a_compact_notebook_is_all_on_line_one_and_keys_may_come_in_any_order() -> None:
    text = json.dumps({"nbformat": 4, "cells": [
        {"source": ["a = 1\n", "b = 2"], "outputs": [{"data": {"image/png": "QUJD" * 1000}}],
         "id": "x", "cell_type": "code"}]})
    [cell] = parse_notebook(text)
    assert cell.id == "x" and [line.json_line for line in cell.lines] == [1, 1]


def test_escapes_and_lines_cut_by_any_line_break_are_counted_as_the_kernel_counts_them() -> None:
    source = "s = '\\u00e9 \u00e9 \U0001f600'\r\nt = 1\x0cu = 2\u2028v = 1 / 0"
    text = notebook(source)
    [cell] = parse_notebook(text)
    assert [line.line_hash for line in cell.lines] == [line_hash(line)
                                                       for line in source.splitlines()]
    assert len({line.json_line for line in cell.lines}) == 4


def test_a_json_line_holding_several_lines_of_a_cell_maps_each_to_it() -> None:
    """A writer that splits only at \\n: a form feed inside an element is a line for Python."""
    text = json.dumps({"cells": [{"cell_type": "code", "source": ["a = 1\x0cb = 2\n", "c = 3"]}]},
                      indent=1)
    [cell] = parse_notebook(text)
    lines = [line.json_line for line in cell.lines]
    assert len(lines) == 3 and lines[0] == lines[1] < lines[2]


@pytest.mark.parametrize("text, reason", [
    ("", "line 1: expected a notebook (an object)"),
    ("[]", "line 1: expected a notebook (an object)"),
    ('{"metadata": {}}', "no 'cells' in the notebook"),
    ('{"cells": 3}', "line 1: expected cells (an array)"),
    ('{"cells": [1]}', "line 1: expected a cell (an object)"),
    ('{\n "cells": [\n  {"source": [1]}]}', "line 3: a source line must be a string"),
    ('{"cells": [{"source": 7}]}', "line 1: source must be a string"),
    ('{"cells": [{"id": 7}]}', "line 1: a cell id must be a string"),
    ('{"cells": [\n{"x": [1,, 2]}]}', "line 2: Expecting value"),
    ('{"cells": [{\n"source": [\n"a",\n"b\\q"]}]}', "line 4: Invalid \\escape"),
    ('{"cells": [{"source": ["a\nb"]}]}', "line 1: Invalid control character at"),
    ('{"cells": []} {}', "line 1: text after the notebook"),
    ('{"cells": [] "x": 1}', "line 1: expected ',' or '}'"),
    ('{"cells": [{} {}]}', "line 1: expected ',' or ']'"),
    ('{"cells" []}', "line 1: expected ':'"),
    ('{"cells": [], "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "line 1: values nested too deeply"),
])
def test_what_is_no_notebook_is_refused_with_the_line_and_the_reason(text, reason) -> None:
    with pytest.raises(NotNotebook) as refused:
        parse_notebook(text)
    assert str(refused.value) == reason


def test_only_ipynb_files_are_notebooks() -> None:
    assert is_notebook_path("notebooks/Analysis.IPYNB") and is_notebook_path("a.ipynb")
    assert not is_notebook_path("shop/cart.py") and not is_notebook_path("ipynb")


# -- locating -----------------------------------------------------------------------------------

CELLS_TEXT = notebook("import math",
                      "x = 1\ny = 0\nz = x / y",
                      "print(z)\nz = x / y",
                      "# z = x / y",
                      "w = 2\nw = 2",
                      kinds=("code", "code", "code", "markdown", "code"))
CELLS = parse_notebook(CELLS_TEXT)
IDS = [cell.id for cell in CELLS]


def reported(line: int, text: str, cell_id: object = None, **fields: object) -> NotebookCell:
    return NotebookCell(line=line, id=cell_id, line_hash=line_hash(text),  # type: ignore[arg-type]
                        **fields)  # type: ignore[arg-type]


def test_the_cell_is_found_by_id_and_the_line_checked_by_its_hash() -> None:
    location = locate(CELLS, reported(3, "z = x / y", IDS[1]))
    assert (location.cell, location.line, location.by_id, location.checked) == \
        (CELLS[1], 3, True, True)
    assert element_on(CELLS_TEXT, location.json_line) == "z = x / y"


def test_a_line_moved_within_its_cell_is_found_where_the_commit_has_it() -> None:
    location = locate(CELLS, reported(5, "z = x / y", IDS[1]))   # two lines added above
    assert location.line == 3 and location.cell == CELLS[1]


def test_of_two_equal_lines_the_nearest_is_taken_and_on_a_tie_the_later() -> None:
    assert locate(CELLS, reported(1, "w = 2", IDS[4])).line == 1
    assert locate(CELLS, reported(2, "w = 2", IDS[4])).line == 2
    assert locate(CELLS, reported(9, "w = 2", IDS[4])).line == 2


def test_a_line_no_longer_in_its_cell_has_unsaved_edits() -> None:
    location = locate(CELLS, reported(3, "z = x / (y + 0)", IDS[1]))
    assert location.cell == CELLS[1] and location.line is None and location.json_line is None


def test_without_a_hash_the_line_of_a_cell_found_by_id_is_taken_unchecked() -> None:
    location = locate(CELLS, NotebookCell(line=2, id=IDS[1]))
    assert (location.line, location.checked) == (2, False)
    assert locate(CELLS, NotebookCell(line=4, id=IDS[1])).line is None


def test_without_a_known_id_the_cell_is_the_one_code_cell_holding_the_line() -> None:
    for cell_id in (None, "not-in-the-notebook"):
        location = locate(CELLS, reported(2, "y = 0", cell_id))
        assert (location.cell, location.line, location.by_id) == (CELLS[1], 2, False)


def test_a_line_in_several_cells_is_the_one_at_the_reported_line_or_none() -> None:
    assert locate(CELLS, reported(3, "z = x / y")).cell == CELLS[1]
    assert locate(CELLS, reported(2, "z = x / y")).cell == CELLS[2]
    with pytest.raises(CellNotFound, match="the line raised is in 2 cells"):
        locate(CELLS, reported(1, "z = x / y"))


def test_markdown_cells_never_hold_the_line_raised() -> None:
    with pytest.raises(CellNotFound, match="no code cell holds the line raised"):
        locate(CELLS, reported(1, "# z = x / y"))


def test_a_cell_not_committed_is_not_found() -> None:
    with pytest.raises(CellNotFound, match="no code cell holds"):
        locate(CELLS, reported(1, "brand_new()", "new-cell"))
    with pytest.raises(CellNotFound, match="no cell id the notebook has, and no line hash"):
        locate(CELLS, NotebookCell(line=1, id="new-cell"))


def test_a_hostile_line_number_costs_no_more_than_the_cell() -> None:
    assert locate(CELLS, reported(10**9, "z = x / y", IDS[1])).line == 3
    assert locate(CELLS, NotebookCell(line=10**9, id=IDS[1])).line is None


@pytest.mark.parametrize("length", [8, 12, 16, 40, 64])
def test_a_reported_hash_of_8_to_64_digits_is_compared_on_what_both_have(length) -> None:
    ours = line_hash("z = x / y")
    theirs = (ours + "0" * 64)[:length]
    assert same_hash(ours, theirs) and not same_hash(ours, "f" * length)
