"""PURE: what a committed notebook says about a line a kernel reported from one of its cells.

nbformat writes a notebook as indented JSON with one source line per JSON line, so git blame
of the ``.ipynb`` names who last changed each line of each cell. :func:`parse_notebook` reads
the notebook's text and keeps, for every cell, its id and, for every line of its source, the
JSON line it is written on and the ``line_hash`` of its text (never the text itself).
:func:`locate` finds a reported cell line in it: the cell by id, else by the line's hash; the
line by its hash, within the cell.

The reader walks the document's structure itself (the standard ``json`` module gives no
positions) and hands every value it does not need (outputs, metadata) to the standard
decoder whole, so a notebook full of images costs one fast pass.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from flawless.report import LINE_HASH_CHARS, NotebookCell, line_hash

NOTEBOOK_SUFFIX = ".ipynb"
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STRING = r'"[^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*"'  # unrolled: one pass, no backtracking
_ONE_STRING = re.compile(_STRING)
_ARRAY_OF_STRINGS = re.compile(  # a cell's source as nbformat writes it, recognised at once
    rf"\[[ \t\n\r]*(?:{_STRING}[ \t\n\r]*(?:,[ \t\n\r]*{_STRING}[ \t\n\r]*)*)?\]")
_DECODER = json.JSONDecoder()


class NotNotebook(ValueError):
    """The text is not a notebook this reader understands; says where and why."""


class CellNotFound(ValueError):
    """No cell of the committed notebook holds the reported line; says why."""


@dataclass(frozen=True)
class SourceLine:
    """One line of a committed cell's source: the JSON line it is on and its line hash."""

    json_line: int
    line_hash: str


@dataclass(frozen=True)
class CommittedCell:
    """One cell of a committed notebook."""

    position: int                 # 1-based, among all the notebook's cells
    id: Optional[str]
    cell_type: str
    first_json_line: int          # where the cell's JSON object opens and closes
    last_json_line: int
    lines: tuple[SourceLine, ...]

    def blame_range(self) -> tuple[int, int]:
        """The JSON lines holding the cell's source (the whole cell when it is empty)."""
        if not self.lines:
            return self.first_json_line, self.last_json_line
        return self.lines[0].json_line, self.lines[-1].json_line

    def one_json_line(self) -> bool:
        """Whether several source lines share one JSON line (a writer other than nbformat
        stored the source as one string): a blame then names the cell's last change."""
        return len(self.lines) > 1 and self.lines[0].json_line == self.lines[-1].json_line


@dataclass(frozen=True)
class CellLocation:
    """Where a reported cell line is in the committed notebook."""

    cell: CommittedCell
    line: Optional[int]       # 1-based line of the committed cell; None: the line has unsaved
                              # edits (its hash matches no line of the cell)
    by_id: bool               # the cell was found by its id (else by the line's hash)
    checked: bool             # the report's line hash was compared (False when it had none)

    @property
    def json_line(self) -> Optional[int]:
        """The notebook file's line to blame, None when the line has unsaved edits."""
        return None if self.line is None else self.cell.lines[self.line - 1].json_line


def is_notebook_path(path: str) -> bool:
    """Whether a repository path names a notebook."""
    return path.lower().endswith(NOTEBOOK_SUFFIX)


# -- reading ---------------------------------------------------------------------------------


class _Reader:
    """A cursor over JSON text that knows the line (git's: after each ``\\n``) it is on."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self._line = 1
        self._counted_to = 0
        self.closed_at = 0        # the line of the last object's closing brace

    def line(self) -> int:
        """The line of the next value (whitespace skipped)."""
        self.skip()
        return self._line_at(self.position)

    def _line_at(self, offset: int) -> int:
        """The line of ``offset``, no earlier than any asked before."""
        self._line += self.text.count("\n", self._counted_to, offset)
        self._counted_to = offset
        return self._line

    def skip(self) -> None:
        match = _WHITESPACE.match(self.text, self.position)
        assert match is not None  # the pattern matches the empty string
        self.position = match.end()

    def fail(self, reason: str) -> NotNotebook:
        return NotNotebook(f"line {self.line()}: {reason}")

    def take(self, char: str) -> bool:
        """Consume ``char`` when it comes next."""
        self.skip()
        if self.text.startswith(char, self.position):
            self.position += 1
            return True
        return False

    def expect(self, char: str, what: str) -> None:
        if not self.take(char):
            raise self.fail(f"expected {what}")

    def value(self) -> Any:
        """The next JSON value, decoded whole."""
        self.skip()
        try:
            value, self.position = _DECODER.raw_decode(self.text, self.position)
        except json.JSONDecodeError as error:
            raise NotNotebook(f"line {error.lineno}: {error.msg}") from None
        except RecursionError:
            raise self.fail("values nested too deeply") from None
        return value

    def string(self, what: str) -> str:
        value = self.value()
        if not isinstance(value, str):
            raise self.fail(f"{what} must be a string")
        return value

    def _closes(self) -> bool:
        line = self.line()
        if self.take("}"):
            self.closed_at = line
            return True
        return False

    def strings(self) -> Optional[list[tuple[int, str]]]:
        """(line, text) of each element of the array of strings that comes next, or None
        (nothing read) when what comes next is not an array of strings."""
        self.skip()
        array = _ARRAY_OF_STRINGS.match(self.text, self.position)
        if array is None:
            return None
        counted = self._line, self._counted_to
        try:
            found = [(self._line_at(element.start()), json.loads(element.group()))
                     for element in _ONE_STRING.finditer(self.text, array.start(), array.end())]
        except json.JSONDecodeError:  # a bad escape: read one by one to say where
            self._line, self._counted_to = counted
            return None
        self.position = array.end()
        return found

    def members(self, what: str) -> Iterator[str]:
        """The keys of the object that comes next; the caller reads each member's value."""
        self.expect("{", f"{what} (an object)")
        if self._closes():
            return
        while True:
            key = self.string("a key")
            self.expect(":", "':'")
            yield key
            if self._closes():
                return
            self.expect(",", "',' or '}'")

    def items(self, what: str) -> Iterator[None]:
        """Once per element of the array that comes next; the caller reads each element."""
        self.expect("[", f"{what} (an array)")
        if self.take("]"):
            return
        while True:
            yield None
            if self.take("]"):
                return
            self.expect(",", "',' or ']'")


def _source_lines(pieces: list[tuple[int, str]]) -> tuple[SourceLine, ...]:
    """The source's lines (as ``str.splitlines`` cuts the joined source, the way a kernel
    numbers a cell's lines), each with the JSON line its first character is written on."""
    starts, lines_of_pieces, offset = [], [], 0
    for json_line, piece in pieces:
        starts.append(offset)
        lines_of_pieces.append(json_line)
        offset += len(piece)
    source = "".join(piece for _, piece in pieces)
    result, offset = [], 0
    for text in source.splitlines(keepends=True):
        json_line = lines_of_pieces[bisect.bisect_right(starts, offset) - 1]
        result.append(SourceLine(json_line, line_hash(text)))
        offset += len(text)
    return tuple(result)


def _source(reader: _Reader) -> list[tuple[int, str]]:
    """A cell's source as (JSON line, text) pieces: an array of strings, or one string."""
    pieces = reader.strings()
    if pieces is not None:
        return pieces
    reader.skip()
    if reader.text.startswith("[", reader.position):  # read one by one to say what is wrong
        return [(reader.line(), reader.string("a source line")) for _ in reader.items("source")]
    return [(reader.line(), reader.string("source"))]


def _cell(reader: _Reader, position: int) -> CommittedCell:
    first = reader.line()
    cell_id: Optional[str] = None
    cell_type = ""
    pieces: list[tuple[int, str]] = []
    for key in reader.members("a cell"):
        if key == "source":
            pieces = _source(reader)
        elif key == "id":
            cell_id = reader.string("a cell id")
        elif key == "cell_type":
            cell_type = reader.string("cell_type")
        else:
            reader.value()
    return CommittedCell(position, cell_id, cell_type, first, reader.closed_at,
                         _source_lines(pieces))


def parse_notebook(text: str) -> tuple[CommittedCell, ...]:
    """The cells of a notebook (nbformat 4 JSON), in order. Raises :class:`NotNotebook`."""
    reader = _Reader(text)
    cells: Optional[tuple[CommittedCell, ...]] = None
    for key in reader.members("a notebook"):
        if key == "cells":
            found = []
            for _ in reader.items("cells"):
                found.append(_cell(reader, len(found) + 1))
            cells = tuple(found)
        else:
            reader.value()
    reader.skip()
    if reader.position != len(reader.text):
        raise reader.fail("text after the notebook")
    if cells is None:
        raise NotNotebook("no 'cells' in the notebook")
    return cells


# -- locating --------------------------------------------------------------------------------


def same_hash(committed: str, reported: str) -> bool:
    """Whether a reported line hash (8 to 64 hex digits) names a committed line's hash."""
    length = min(LINE_HASH_CHARS, len(reported))
    return committed[:length] == reported[:length]


def _nearest(cell: CommittedCell, line: int, digest: str) -> Optional[int]:
    """The line of ``cell`` nearest ``line`` with hash ``digest`` (the later one on a tie:
    code is more often pushed down than pulled up)."""
    matching = [number for number, source in enumerate(cell.lines, 1)
                if same_hash(source.line_hash, digest)]
    return min(matching, key=lambda number: (abs(number - line), -number), default=None)


def _by_hash(cells: tuple[CommittedCell, ...], reported: NotebookCell) -> CellLocation:
    digest = reported.line_hash
    if digest is None:
        raise CellNotFound("the report names no cell id the notebook has, and no line hash")
    holding = [cell for cell in cells if cell.cell_type == "code"
               and any(same_hash(line.line_hash, digest) for line in cell.lines)]
    if not holding:
        raise CellNotFound("no code cell holds the line raised (a cell not committed, or "
                           "edited since)")
    if len(holding) > 1:
        at_line = [cell for cell in holding if reported.line <= len(cell.lines)
                   and same_hash(cell.lines[reported.line - 1].line_hash, digest)]
        if len(at_line) != 1:
            raise CellNotFound(f"the line raised is in {len(holding)} cells, and the report "
                               "names none of them by id")
        holding = at_line
    [cell] = holding
    return CellLocation(cell, _nearest(cell, reported.line, digest), by_id=False, checked=True)


def locate(cells: tuple[CommittedCell, ...], reported: NotebookCell) -> CellLocation:
    """Where the reported cell line is in the committed notebook ``cells``.

    The cell is the one with the reported id, else the only code cell holding a line with
    the reported hash. In a cell found by id, the line is the reported one when its hash
    matches (or when the report has no hash), else the nearest line with that hash, else
    none: the line has unsaved edits. Raises :class:`CellNotFound`.
    """
    with_id = [cell for cell in cells if reported.id is not None and cell.id == reported.id]
    if len(with_id) != 1:
        return _by_hash(cells, reported)
    [cell] = with_id
    digest = reported.line_hash
    if digest is None:
        line = reported.line if reported.line <= len(cell.lines) else None
        return CellLocation(cell, line, by_id=True, checked=False)
    return CellLocation(cell, _nearest(cell, reported.line, digest), by_id=True, checked=True)
