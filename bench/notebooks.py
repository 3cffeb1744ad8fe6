"""Benchmark: blaming a line of a notebook's cell, against reading and blaming plain files.

Run: python bench/notebooks.py   [--rounds N] [--cells N]

1. Reading: the notebook reader (every source line's JSON line and hash) on a notebook of
   CELLS code cells, every fourth with a 40 KB image output (about 4 MB), against the
   standard library's ``json.loads`` of the same text, which finds no line at all.
2. Blaming, cold (a new Repository each time, so nothing is cached): the first blame of a
   cell line of that notebook (read the blob, find the cell by id, blame its JSON line)
   against the first blame of a line of a Python file as long as the notebook's source.
Figures are milliseconds, medians of alternating rounds; lower is better.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO_ROOT, alternate, machine_line, print_table, ratio_text

sys.path.insert(0, str(REPO_ROOT))

from flawless.report import NotebookCell, line_hash  # noqa: E402
from flawless.server.core.notebooks import parse_notebook  # noqa: E402
from flawless.server.git.notebooks import blame_cell  # noqa: E402
from flawless.server.git.repository import Repository  # noqa: E402

LINES_PER_CELL = 10
IMAGE = base64.b64encode(bytes(range(256)) * 120).decode()  # about 40 KB of base64


def cell_source(number: int) -> list[str]:
    return [f"value_{number}_{line} = compute({number}, {line})  # step {line}\n"
            for line in range(LINES_PER_CELL)]


def notebook_text(cells: int) -> str:
    """A notebook as nbformat writes it: indented, sorted keys, one source line a line."""
    book = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    for number in range(cells):
        outputs = [{"data": {"image/png": IMAGE, "text/plain": ["<Figure>"]}, "metadata": {},
                    "output_type": "display_data"}] if number % 4 == 0 else []
        book["cells"].append({"cell_type": "code", "execution_count": number + 1,
                              "id": f"cell-{number:04d}", "metadata": {}, "outputs": outputs,
                              "source": cell_source(number)})
    return json.dumps(book, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def timed(function, repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - started) * 1000 / repeat


def repository_with(directory: Path, text: str, cells: int) -> str:
    """A repository holding the notebook and a .py file of its source; its head sha."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=directory, check=True, capture_output=True,
                              text=True, env={"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@x.io",
                                              "GIT_COMMITTER_NAME": "A",
                                              "GIT_COMMITTER_EMAIL": "a@x.io", "HOME": "/"}
                              ).stdout
    git("init", "-q", "-b", "main")
    (directory / "analysis.ipynb").write_text(text)
    (directory / "analysis.py").write_text("".join(line for number in range(cells)
                                                   for line in cell_source(number)))
    git("add", ".")
    git("commit", "-q", "-m", "Analysis")
    return git("rev-parse", "HEAD").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cells", type=int, default=400)
    args = parser.parse_args()
    text = notebook_text(args.cells)
    print(f"{machine_line()}\nnotebook: {args.cells} cells, {len(text) / 2**20:.1f} MiB")
    reading = alternate(args.rounds, {
        "reader": lambda: timed(lambda: parse_notebook(text), 3),
        "json.loads": lambda: timed(lambda: json.loads(text), 3),
    })
    middle = args.cells // 2
    wanted = NotebookCell(line=7, notebook="analysis.ipynb", id=f"cell-{middle:04d}",
                          line_hash=line_hash(cell_source(middle)[6]))
    py_line = middle * LINES_PER_CELL + 7
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        sha = repository_with(directory, text, args.cells)
        blaming = alternate(args.rounds, {
            "cell line": lambda: timed(lambda: blame_cell(
                Repository(str(directory)), "analysis.ipynb", wanted, sha)),
            ".py line": lambda: timed(lambda: Repository(str(directory)).blame_line(
                "analysis.py", py_line, sha)),
        })
    rows = [
        ["read a notebook: every line's JSON line and hash", f"{reading.median('reader'):,.1f}",
         f"json.loads: {reading.median('json.loads'):,.1f}",
         ratio_text(reading.median("reader"), reading.median("json.loads"), False)],
        ["first blame of a cell line (cold)", f"{blaming.median('cell line'):,.1f}",
         f"a .py line: {blaming.median('.py line'):,.1f}",
         ratio_text(blaming.median("cell line"), blaming.median(".py line"), False)],
    ]
    print_table("Notebooks (ms, medians; lower is better)", ["what", "ours", "peer", "ratio"],
                rows)


if __name__ == "__main__":
    main()
