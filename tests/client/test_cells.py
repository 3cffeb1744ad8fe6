"""Where a frame's line lies in a notebook cell, and the errors a kernel keeps."""

from __future__ import annotations

import linecache
import sys

import pytest

from flawless.client.capture import CaptureOptions, capture
from flawless.client.cells import CellBook, CellRun, source_line, valid_cell_id
from flawless.client.kernel_errors import ErrorLog, KernelError, errors_table
from flawless.client.scrub import Scrubber
from flawless.report import Frame, NotebookCell, Report, line_hash, report_to_dict

CELL_FILE = "/tmp/ipykernel_4242/1234.py"


@pytest.mark.parametrize("source, compiled, line, expected", [
    ("a = 1\nb = 2", ["a = 1\n", "b = 2\n"], 2, (2, "b = 2")),
    ("\n  \na = 1\nb = 2", ["a = 1\n", "b = 2\n"], 2, (4, "b = 2")),       # blank lines dropped
    ("  a = 1\n  b = 2", ["a = 1\n", "b = 2\n"], 1, (1, "  a = 1")),        # dedented
    ("%time f()\nx", ["get_ipython().run_line_magic('time', 'f()')\n", "x\n"], 1,
     (1, "%time f()")),                                                     # the line as typed
    ("%%time\nf()\ng()", ["get_ipython().run_cell_magic('time', '', 'f()\\ng()')\n"], 1,
     (1, "%%time")),                                                        # counts disagree
    ("\n\nx", [], 7, (7, "")),                                              # source forgotten
])
def test_the_line_as_typed_of_a_compiled_line(source, compiled, line, expected):
    assert source_line(source, compiled, line) == expected


def test_only_nbformat_ids_are_cell_ids():
    assert valid_cell_id("9f2c-a_1") == "9f2c-a_1"
    for other in ("vscode-notebook-cell:/home/alice/a.ipynb#W1", "", "x" * 65, 7, None, "a b"):
        assert valid_cell_id(other) is None


@pytest.fixture
def compiled_cell():
    """A cell compiled the way IPython does it: its lines in linecache, blank lines dropped."""
    source = "\n\nnote = 'typed'\nshare = 10 / count"
    linecache.cache[CELL_FILE] = (0, None, ["note = 'typed'\n", "share = 10 / count\n"],
                                  CELL_FILE)
    yield source
    linecache.cache.pop(CELL_FILE, None)


def test_a_cell_the_book_has_is_described_with_its_id_and_count(compiled_cell):
    book = CellBook(lambda filename: None)
    book.remember(CELL_FILE, CellRun(compiled_cell, "c1", 7))
    assert book.describe(CELL_FILE, 2) == NotebookCell(line=4, id="c1", execution_count=7)
    book.notebook = "/work/q3.ipynb"
    assert book.describe(CELL_FILE, 2) == NotebookCell(
        line=4, notebook="/work/q3.ipynb", id="c1", execution_count=7,
        line_hash=line_hash("share = 10 / count"))


def test_a_cell_run_before_the_book_is_described_from_the_compiled_source(compiled_cell):
    book = CellBook({CELL_FILE: 3}.get)
    book.notebook = "q3.ipynb"
    assert book.describe(CELL_FILE, 2) == NotebookCell(
        line=2, notebook="q3.ipynb", execution_count=3, line_hash=line_hash("share = 10 / count"))
    assert book.describe("/srv/app/cart.py", 2) is None


def test_a_terminal_cell_is_found_by_the_number_in_its_name(compiled_cell):
    """IPython 8's terminal names a cell after text pre_run_cell is not told; a kernel's
    cell names hold no number, and a cell the book lacks (run silently) is not guessed at."""
    terminal = "<ipython-input-7-0123456789ab>"
    linecache.cache[terminal] = linecache.cache[CELL_FILE]
    try:
        book = CellBook({terminal: 7, CELL_FILE: 7}.get)
        book.remember("<ipython-input-7-ba9876543210>", CellRun(compiled_cell, "c1", 7))
        assert book.describe(terminal, 2) == NotebookCell(line=4, id="c1", execution_count=7)
        assert book.describe(CELL_FILE, 2) == NotebookCell(line=2, execution_count=7)
    finally:
        linecache.cache.pop(terminal)


def test_the_book_keeps_the_last_cells_only():
    book = CellBook(lambda filename: None, max_cells=2)
    for number in range(1, 4):
        book.remember(f"cell{number}", CellRun(f"x = {number}", None, number))
    book.remember("cell2", CellRun("x = 2", None, 4))  # run again: now the newest
    book.remember("cell5", CellRun("x = 5", None, 5))
    assert [book.run_of(f"cell{n}") is not None for n in range(1, 6)] == \
        [False, True, False, False, True]


def test_capture_describes_the_frames_running_a_cell(compiled_cell):
    book = CellBook(lambda filename: None)
    book.remember(CELL_FILE, CellRun(compiled_cell, "c1", 7))
    code = compile("note = 'typed'\nshare = 10 / count\n", CELL_FILE, "exec")
    try:
        exec(code, {"count": 0})
    except ZeroDivisionError:
        exc_info = sys.exc_info()
    report = capture(exc_info, CaptureOptions(), Scrubber().is_sensitive_name,
                     describe_cell=book.describe).report
    assert report.traceback[-1].cell == NotebookCell(line=4, id="c1", execution_count=7)
    assert report_to_dict(report)["traceback"][-1]["cell"] == \
        {"id": "c1", "execution_count": 7, "line": 4}

    def broken(filename, line_number):
        raise RuntimeError("a describer must never cost the report")

    again = capture(exc_info, CaptureOptions(), Scrubber().is_sensitive_name,
                    describe_cell=broken).report
    assert again.traceback[-1].cell is None and again.traceback[-1].filename == CELL_FILE


def test_the_notebook_path_is_shortened_like_filenames():
    scrubber = Scrubber(home="/home/nbuser7")
    frame = Frame(CELL_FILE, 2, "<module>", cell=NotebookCell(
        line=4, notebook="/home/nbuser7/proj/q3.ipynb", execution_count=7))
    [scrubbed] = scrubber.scrub_report(Report("builtins.ValueError", "", (frame,))).traceback
    assert scrubbed.cell == NotebookCell(line=4, notebook="~/proj/q3.ipynb", execution_count=7)
    assert scrubbed.filename == "<ipykernel>/1234.py"


def error(number: int, cell: NotebookCell = None, frames=()) -> KernelError:
    return KernelError("builtins.ValueError", f"bad value {number}\nsecond line", tuple(frames),
                       cell, 1_700_000_000.0 + number)


def test_the_error_log_keeps_the_last_errors():
    log = ErrorLog(max_errors=3)
    for number in range(5):
        log.add(error(number))
    assert [entry.message.split()[2] for entry in log.errors()] == ["2", "3", "4"]
    log.clear()
    assert log.errors() == []


def test_the_table_has_a_row_per_error():
    cell = NotebookCell(line=3, id="c1", execution_count=12)
    rows = errors_table([
        error(1, cell, [Frame(CELL_FILE, 2, "<module>", cell=cell),
                        Frame("/srv/app/helpers/stats.py", 9, "mean")]),
        error(2, NotebookCell(line=1), [Frame(CELL_FILE, 1, "<module>",
                                              cell=NotebookCell(line=1))]),
        error(3, None, [Frame("x" * 100, 1, "f")])]).splitlines()
    assert rows[0].split() == ["#", "time", "cell", "cell", "id", "error", "raised", "at"]
    assert rows[1].split()[2:] == ["In[12]", "c1", "ValueError:", "bad", "value", "1",
                                   "second", "line", "stats.py:9", "in", "mean"]
    assert "In[ ]" in rows[2] and rows[2].endswith("In[ ], line 1")
    assert len(rows) == 4 and all(len(row) < 200 for row in rows)
    assert errors_table([]) == "No errors caught in this kernel."
