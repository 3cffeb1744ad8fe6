"""A notebook committed to a real repository by two authors (Alice, then Bob), calling a
helper module written by a third (Carol), and the reports a kernel sends about its cells."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from flawless.report import line_hash
from support.gitrepo import ALICE, BOB, CAROL, GitRepo, init_repo

NOTEBOOK = "notebooks/analysis.ipynb"
CANARY = "TYPED-CANARY"   # typed in cells (and committed): must never be stored or mailed
HELPER = '''\
def mean(values):
    """The arithmetic mean of values."""
    return sum(values) / len(values)
'''
ALICE_CELLS = [
    "from helpers.stats import mean",
    "%load_ext flawless",
    f"# {CANARY} weights of the panel\nweights = []\nmean(weights)",
    "values = [1, 2]\nscale = 10\nshare = scale / len(values)",
]
BOB_CELLS = [
    f"def ratio(total, count):\n    # {CANARY} per-count share\n    return total / count",
    f"\n\nnote = '{CANARY}'\nshare = ratio(10, 0)",
]
RATIO, CALLS_RATIO, CALLS_MEAN, SCALED = 4, 5, 2, 3   # positions (0-based) of the cells
# Alice's last cell as it is being edited, not saved: its line 3 is new.
EDITED_SCALED = "values = [1, 2]\nscale = 100\nshare = scale / (len(values) - 2)"


def notebook_of(sources: list[str]) -> Any:
    """An nbformat 4.5 notebook whose code cells are ``sources``, each with its own id."""
    import nbformat
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.validate(notebook)
    assert (notebook.nbformat, notebook.nbformat_minor) >= (4, 5)
    return notebook


def team_notebook_repo(path: Path) -> tuple[GitRepo, Any]:
    """Carol writes ``helpers/stats.py``; Alice the notebook's first four cells; Bob adds two
    cells and changes line 2 of Alice's last one. Returns the repository and the notebook
    as committed (its cells carry their ids)."""
    import nbformat
    repo = init_repo(path)
    repo.commit(CAROL, {"helpers/__init__.py": "", "helpers/stats.py": HELPER},
                "Statistics helpers", date="2026-11-01T10:00:00+00:00")
    notebook = notebook_of(ALICE_CELLS)
    repo.commit(ALICE, {NOTEBOOK: nbformat.writes(notebook)}, "Panel weights",
                date="2026-11-02T10:00:00+00:00")
    notebook.cells.extend(nbformat.v4.new_code_cell(source) for source in BOB_CELLS)
    notebook.cells[SCALED].source = notebook.cells[SCALED].source.replace(
        "scale = 10", "scale = 100")
    nbformat.validate(notebook)
    repo.commit(BOB, {NOTEBOOK: nbformat.writes(notebook)}, "Shares per count",
                date="2026-11-03T10:00:00+00:00")
    return repo, nbformat.read(repo.path / NOTEBOOK, as_version=4)


@dataclass(frozen=True)
class CellLine:
    """A line of a cell as a kernel describes it."""

    source: str
    line: int
    cell_id: Optional[str]
    execution_count: Optional[int] = 7

    def wire(self, notebook: Optional[str] = f"~/proj/{NOTEBOOK}") -> dict[str, Any]:
        """The frame's ``cell`` object as the kernel sends it."""
        cell: dict[str, Any] = {"line": self.line}
        if notebook is not None:
            cell["notebook"] = notebook
            cell["line_hash"] = line_hash(self.source.splitlines()[self.line - 1])
        if self.cell_id is not None:
            cell["id"] = self.cell_id
        if self.execution_count is not None:
            cell["execution_count"] = self.execution_count
        return cell


def cell_frame(cell: CellLine, function: str = "<module>", kernel_file: int = 1292013214,
               **wire: Any) -> dict[str, Any]:
    """A wire frame running a cell's line, as ipykernel compiles it (no text, no locals)."""
    return {"filename": f"<ipykernel>/{kernel_file}.py", "line_number": cell.line,
            "function_name": function, "text": "", "cell": cell.wire(**wire)}


def cell_report(*frames: dict[str, Any], revision: Optional[str] = None) -> dict[str, Any]:
    """A wire report of a ZeroDivisionError raised through ``frames``."""
    report: dict[str, Any] = {"exception_type": "builtins.ZeroDivisionError",
                              "exception_message": "division by zero",
                              "traceback": list(frames), "hostname": "lab-1",
                              "context": {"notebook": "analysis.ipynb", "execution_count": 7}}
    if revision is not None:
        report["revision"] = revision
    return report
