"""``%load_ext flawless`` in a real IPython InteractiveShell."""

from __future__ import annotations

import textwrap

import pytest

import flawless.client
from flawless.client import ipython as extension
from flawless.report import line_hash
from support.gitrepo import ALICE, init_repo

IPython = pytest.importorskip("IPython")
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

HELPER_MODULE = textwrap.dedent('''
    from flawless.client.decorators import wrap_function

    @wrap_function
    def parse_row(row):
        return int(row["amount"])
''')


@pytest.fixture
def shell(report_sink, use_client, tmp_path, monkeypatch):
    use_client([report_sink.hostport], key=report_sink.key)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "ledger_helpers.py").write_text(HELPER_MODULE)
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "flawless")
    yield shell
    shell.run_line_magic("unload_ext", "flawless")
    extension.configure(send_cell_first_line=False, cell_locals=False, notebook="")
    InteractiveShell.clear_instance()


def reports(sink, expected):
    assert flawless.client.flush(5)
    received = sink.wait_for_reports(expected, timeout=2)
    assert len(sink.wait_for_reports(expected + 1, timeout=0.2)) == expected
    return received


def test_a_cell_error_is_reported_with_its_execution_count_and_no_cell_text(shell, report_sink):
    shell.run_cell("x = 1", store_history=True)
    shell.user_ns["__vsc_ipynb_file__"] = "/home/alice/projects/q3/analysis.ipynb"
    result = shell.run_cell("secret_note = 'CELL-CANARY'\nratio = 1 / 0", store_history=True)
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    [report] = reports(report_sink, 1)
    assert report["exception_type"] == "builtins.ZeroDivisionError"
    assert report["context"] == {"notebook": "analysis.ipynb",
                                 "execution_count": result.execution_count}
    assert result.execution_count == 2
    cell_frame = report["traceback"][0]
    assert cell_frame["filename"].startswith("<ipython-input-2-")
    assert cell_frame["text"] == "" and "frame_locals" not in cell_frame
    assert cell_frame["cell"] == {"notebook": "~/projects/q3/analysis.ipynb",
                                  "execution_count": 2, "line": 2,
                                  "line_hash": line_hash("ratio = 1 / 0")}
    assert not any("IPython" in frame["filename"] for frame in report["traceback"])
    text = report_sink.all_text()
    assert "CELL-CANARY" not in text and "alice" not in text and "ratio" not in text


def test_the_first_line_and_locals_of_a_cell_only_when_opted_in(shell, report_sink):
    extension.configure(send_cell_first_line=True, cell_locals=True)
    shell.run_cell("# load the ledger\ndef total(rows):\n    count = len(rows)\n"
                   "    return sum(rows) / count\ntotal([])", store_history=True)
    [report] = reports(report_sink, 1)
    assert report["context"]["cell"] == "# load the ledger"
    assert report["traceback"][-1]["frame_locals"] == {"rows": "[]", "count": "0"}
    assert report["traceback"][-1]["text"] == ""  # only the first line was opted in


def test_keyboard_interrupt_and_system_exit_are_not_errors(shell, report_sink):
    shell.run_cell("raise KeyboardInterrupt", store_history=True)
    shell.run_cell("raise SystemExit(3)", store_history=True)
    shell.run_cell("1 +* 2", store_history=True)  # a syntax error is not the program's error
    assert reports(report_sink, 0) == []


def test_a_wrapped_helper_failing_in_a_cell_is_reported_once_with_the_cell_context(
        shell, report_sink):
    shell.run_cell("from ledger_helpers import parse_row", store_history=True)
    result = shell.run_cell("parse_row({'amount': 'twelve'})", store_history=True)
    assert isinstance(result.error_in_exec, ValueError)
    [report] = reports(report_sink, 1)
    assert report["traceback"][-1]["function_name"] == "parse_row"
    assert report["traceback"][-1]["frame_locals"] == {"row": "{'amount': 'twelve'}"}
    assert report["context"]["execution_count"] == result.execution_count
    assert report["traceback"][0]["text"] == ""  # the calling cell's text stays private


def test_unloading_stops_reporting(shell, report_sink):
    shell.run_line_magic("unload_ext", "flawless")
    shell.run_cell("1 / 0", store_history=True)
    shell.run_line_magic("load_ext", "flawless")
    assert reports(report_sink, 0) == []


def test_a_configured_notebook_path_and_a_cell_id_that_is_no_nbformat_id(shell, report_sink):
    """VS Code sends a URI holding the notebook's path as the cell id: it never leaves."""
    shell.user_ns["__vsc_ipynb_file__"] = "/home/alice/elsewhere.ipynb"
    extension.configure(notebook="/srv/../srv/reports/q3.ipynb")
    shell.run_cell("total = 1\n1 / 0", store_history=True,
                   cell_id="vscode-notebook-cell:/home/alice/q3.ipynb#W2sZmlsZQ==")
    shell.run_cell("1 / 0", store_history=True, cell_id="c-42_x")
    first, second = reports(report_sink, 2)
    assert first["context"]["notebook"] == "q3.ipynb"
    assert first["traceback"][0]["cell"] == {"notebook": "/srv/reports/q3.ipynb",
                                             "execution_count": 1, "line": 2,
                                             "line_hash": line_hash("1 / 0")}
    assert second["traceback"][0]["cell"]["id"] == "c-42_x"
    assert "alice" not in report_sink.all_text()


def test_errors_are_listed_and_cleared_by_the_magic(shell, report_sink, capsys):
    shell.run_line_magic("flawless", "clear")
    shell.run_cell("def average(values):\n    return sum(values) / len(values)",
                   store_history=True)
    shell.run_cell("average([])", store_history=True)
    [error] = extension.errors()
    assert (error.exception_type, error.message) == ("builtins.ZeroDivisionError",
                                                     "division by zero")
    assert (error.cell.execution_count, error.cell.line, error.where) == \
        (2, 1, "In[1], line 2")
    capsys.readouterr()
    shell.run_line_magic("flawless", "")
    assert "ZeroDivisionError: division by zero" in capsys.readouterr().out
    shell.run_line_magic("flawless", "clear")
    assert extension.errors() == []
    assert capsys.readouterr().out == "Forgot 1 error.\n"
    shell.run_line_magic("flawless", "everything")
    assert capsys.readouterr().out.startswith("Usage: %flawless")


def test_a_notebook_named_from_the_working_directory_gives_its_repository_revision(
        shell, report_sink, tmp_path, monkeypatch):
    repo = init_repo(tmp_path / "proj")
    head = repo.commit(ALICE, {"notebooks/analysis.ipynb": "{}"}, "A notebook")
    monkeypatch.chdir(repo.path / "notebooks")
    extension.configure(notebook="analysis.ipynb")
    shell.run_cell("1 / 0", store_history=True)
    [report] = reports(report_sink, 1)
    assert report["revision"] == head
    assert report["traceback"][0]["cell"]["notebook"] == str(repo.path / "notebooks" /
                                                             "analysis.ipynb")
