"""``%load_ext flawless`` in a real Jupyter kernel running a notebook (nbformat 4.5, with
cell ids) committed to a repository by two authors, driven as JupyterLab drives it.

Also run against IPython 8 by ``.ci/run`` (a second virtualenv with ``ipython<9``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ipykernel")
nbformat = pytest.importorskip("nbformat")

from flawless.report import line_hash  # noqa: E402
from support import notebooks  # noqa: E402
from support.alerts import parts  # noqa: E402
from support.gitrepo import ALICE, BOB, init_repo  # noqa: E402
from support.kernel import NotebookKernel  # noqa: E402
from support.notebooks import (BOB_CELLS, CANARY, NOTEBOOK, notebook_of,  # noqa: E402
                               team_notebook_repo)

USER = "nbuser7"          # the user name in the home directory: must never leave the kernel
STATS = notebooks.HELPER
ALICE_CELLS = notebooks.ALICE_CELLS[:3]


@pytest.fixture
def project(tmp_path):
    """``~/proj``, a repository in which alice wrote a helper module and the first cells of
    the notebook, and bob his two cells; HOME is ``.../home/nbuser7``."""
    home = tmp_path / "home" / USER
    repo = init_repo(home / "proj")
    notebook = notebook_of(ALICE_CELLS)
    repo.commit(ALICE, {"helpers/__init__.py": "", "helpers/stats.py": STATS,
                        NOTEBOOK: nbformat.writes(notebook)}, "Panel weights")
    alice_cell = notebook.cells.pop()
    notebook.cells.extend(nbformat.v4.new_code_cell(source) for source in BOB_CELLS)
    notebook.cells.append(alice_cell)
    nbformat.validate(notebook)
    repo.commit(BOB, {NOTEBOOK: nbformat.writes(notebook)}, "Shares per count")
    return home, repo, nbformat.read(repo.path / NOTEBOOK, as_version=4)


@pytest.fixture
def server(report_sink_on, project):
    """The real server on the project's repository, behind a proxy keeping what was sent."""
    return report_sink_on(project[1].path)


def kernel_env(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), "PYTHONPATH": str(home / "proj"), **extra}


def frames_in_cells(report: dict) -> list[dict]:
    return [frame for frame in report["traceback"] if "cell" in frame]


def test_a_notebook_frame_names_its_cell_line_and_hash_never_its_text(project, server):
    home, repo, notebook = project
    env = kernel_env(home, FLAWLESS_HOSTPORTS=server.hostport, FLAWLESS_KEY=server.key,
                     JPY_SESSION_NAME=str(repo.path / NOTEBOOK))
    with NotebookKernel(repo.path / "notebooks", env) as kernel:
        runs = kernel.run_notebook(notebook)
    assert [run.status for run in runs] == ["ok", "ok", "ok", "error", "error"]
    ids = [cell.id for cell in notebook.cells]
    counts = [run.execution_count for run in runs]
    assert counts == [1, 2, 3, 4, 5]
    reports = server.wait_for_reports(2)
    helper, division = sorted(reports, key=lambda report: report["traceback"][-1]["function_name"])

    notebook_path = f"~/proj/{NOTEBOOK}"
    calling, defining = frames_in_cells(division)
    assert calling["cell"] == {"notebook": notebook_path, "id": ids[3],
                               "execution_count": counts[3], "line": 4,
                               "line_hash": line_hash("share = ratio(10, 0)")}
    assert calling["line_number"] == 2  # IPython compiled the cell without its blank lines
    assert defining["cell"] == {"notebook": notebook_path, "id": ids[2],
                                "execution_count": counts[2], "line": 3,
                                "line_hash": line_hash("return total / count")}
    assert defining["function_name"] == "ratio"
    assert division["context"] == {"notebook": "analysis.ipynb",
                                   "execution_count": counts[3]}
    assert division["revision"] == repo.head()  # the notebook's, though no frame is a file

    [cell_frame] = frames_in_cells(helper)
    assert cell_frame["cell"]["id"] == ids[4] and cell_frame["cell"]["line"] == 3
    assert helper["traceback"][-1] == {"filename": "~/proj/helpers/stats.py", "line_number": 3,
                                       "function_name": "mean",
                                       "text": "return sum(values) / len(values)",
                                       "frame_locals": {"values": "[]"}}
    assert helper["revision"] == repo.head()
    assert all(frame["text"] == "" and "frame_locals" not in frame
               for report in (division, helper) for frame in frames_in_cells(report))

    everything = server.all_text()  # what left the kernel, what the server stored and mailed
    assert CANARY not in everything and USER not in everything
    stored = server.upstream.query("SELECT last_report FROM errors")
    assert any(f'"id":"{ids[3]}"' in row[0] for row in stored)


def test_without_a_notebook_path_or_cell_ids_nothing_typed_leaves_the_kernel(project, server,
                                                                             smtp_sink):
    """As on Colab: no notebook path, no cell id in the requests."""
    home, repo, notebook = project
    env = kernel_env(home, FLAWLESS_HOSTPORTS=server.hostport, FLAWLESS_KEY=server.key)
    with NotebookKernel(repo.path / "notebooks", env) as kernel:
        for cell in notebook.cells:
            kernel.execute(cell.source)
    reports = server.wait_for_reports(2)
    cells = [frame["cell"] for report in reports for frame in frames_in_cells(report)]
    assert len(cells) == 3
    assert all(set(cell) == {"execution_count", "line"} for cell in cells)
    assert all("notebook" not in report["context"] for report in reports)
    everything = server.all_text()
    assert CANARY not in everything and USER not in everything
    # The error raised in cells goes to the default contact, the helper's to its author.
    assert sorted(recipients for recipients, _ in smtp_sink.wait_for(2)) == \
        [["alice@example.com"], ["oncall@example.com"]]


def test_errors_are_kept_in_the_kernel_with_no_server(project):
    home, repo, notebook = project
    env = kernel_env(home, JPY_SESSION_NAME=str(repo.path / NOTEBOOK))
    with NotebookKernel(repo.path / "notebooks", env) as kernel:
        runs = kernel.run_notebook(notebook)
        listed = kernel.execute(
            "import json, flawless.client\n"
            "from flawless.client.ipython import errors\n"
            "print(json.dumps([[e.exception_type, e.message, e.cell.id, e.cell.execution_count,"
            " e.cell.line, e.where, e.frames[-1].text, e.time > 0] for e in errors()]))\n"
            "print(flawless.client.stats()['dropped_unconfigured'])")
        table = kernel.execute("%flawless").stdout
        cleared = kernel.execute("%flawless clear").stdout
        after = kernel.execute("%flawless").stdout
    ids = [cell.id for cell in notebook.cells]
    errors_json, dropped = listed.stdout.splitlines()
    assert json.loads(errors_json) == [
        ["builtins.ZeroDivisionError", "division by zero", ids[3], runs[3].execution_count, 4,
         f"In[{runs[2].execution_count}], line 3", "return total / count", True],
        ["builtins.ZeroDivisionError", "division by zero", ids[4], runs[4].execution_count, 3,
         "stats.py:3 in mean", "return sum(values) / len(values)", True],
    ]
    assert dropped == "2"
    header, first, second = table.splitlines()
    assert header.split() == ["#", "time", "cell", "cell", "id", "error", "raised", "at"]
    assert f"In[{runs[3].execution_count}]" in first and ids[3] in first
    assert "ZeroDivisionError: division by zero" in second and "stats.py:3 in mean" in second
    assert cleared == "Forgot 2 errors.\n"
    assert after == "No errors caught in this kernel.\n"


def test_the_server_blames_each_cell_line_on_its_author_and_says_when_a_cell_is_unsaved(
        tmp_path, report_sink_on, smtp_sink):
    """Carol wrote the helper module, Alice the first cells, Bob two more cells and a line of
    Alice's last one. The notebook runs as saved, then Alice's last cell is edited and run
    again without saving."""
    home = tmp_path / "home" / USER
    repo, notebook = team_notebook_repo(home / "proj")
    server = report_sink_on(repo.path)
    env = kernel_env(home, FLAWLESS_HOSTPORTS=server.hostport, FLAWLESS_KEY=server.key,
                     JPY_SESSION_NAME=str(repo.path / notebooks.NOTEBOOK))
    ids = [cell.id for cell in notebook.cells]
    with NotebookKernel(repo.path / "notebooks", env) as kernel:
        runs = kernel.run_notebook(notebook)
        edited = kernel.execute(notebooks.EDITED_SCALED, ids[notebooks.SCALED])
    assert [run.status for run in runs] == ["ok", "ok", "error", "ok", "ok", "error"]
    assert edited.status == "error"

    mails = {message["Subject"].split(" (")[0]: (recipients, " ".join(parts(message)[0].split()))
             for recipients, message in smtp_sink.wait_for(3)}
    assert len(mails) == 3
    helper_to, helper = mails["ZeroDivisionError in mean"]
    assert helper_to == ["carol@example.net"]                # not Alice, whose cell called it
    assert "last changed helpers/stats.py:3 (git blame)" in helper
    bobs_to, bobs = mails["ZeroDivisionError in ratio"]
    assert bobs_to == ["bob@example.org"]
    ratio = notebooks.RATIO
    assert (f">> analysis.ipynb, cell {runs[ratio].execution_count} (id {ids[ratio]}), line 3, "
            "in ratio") in bobs
    assert f"last changed line 3 of the 5th cell (id {ids[ratio]}) of notebooks/analysis.ipynb" \
        in bobs
    unsaved_to, unsaved = mails["ZeroDivisionError in <module>"]
    assert unsaved_to == ["bob@example.org"]                 # the cell's last change is Bob's
    assert "No line blamed; the cell's last change, commit" in unsaved
    assert (f"unsaved edits, no line blamed: line 3 of the cell as it ran is not in the 4th cell "
            f"(id {ids[notebooks.SCALED]}) of notebooks/analysis.ipynb") in unsaved

    everything = server.all_text() + server.upstream.log()   # sent, stored, mailed, logged
    assert notebooks.CANARY not in everything and "scale = 10" not in everything
    assert USER not in everything
