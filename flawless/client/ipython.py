"""IPython and Jupyter: ``%load_ext flawless`` reports exceptions raised in cells.

Each frame running a cell's code carries its ``cell``: the notebook's path, the cell's
nbformat id (when the front end sends it, as JupyterLab does), its execution count, the line
within the cell and a hash of that line, so a server can blame the line in the committed
notebook. The notebook's path comes from :func:`configure`, else from VS Code
(``__vsc_ipynb_file__``) or Jupyter server (``JPY_SESSION_NAME``); without one (Colab) no
hash is sent either. Each report's ``context`` names the notebook file and the cell's
``execution_count``. By default no text and no locals of notebook cells leave the kernel:
:func:`configure` opts in to the cell's first line (``send_cell_first_line``) or to cell
locals (``cell_locals``).

:func:`errors` lists the errors cells raised in this kernel, whether or not a server is
configured; the ``%flawless`` magic shows them as a table and ``%flawless clear`` forgets them.
``KeyboardInterrupt`` and ``SystemExit`` are not errors. An exception already reported by a
wrapped helper function is not reported a second time.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import sys
from dataclasses import replace
from types import TracebackType
from typing import Any, Optional

import flawless.client
from flawless.client.capture import ExcInfo, capture
from flawless.client.cells import CellBook, CellRun, valid_cell_id
from flawless.client.core import Client
from flawless.client.kernel_errors import ErrorLog, KernelError, errors_table

log = logging.getLogger("flawless.client")

_NOTEBOOK_NAME_VARIABLE = "__vsc_ipynb_file__"
_NOTEBOOK_ENV = "JPY_SESSION_NAME"
_CELL_LABEL = re.compile(r"In\[(\d+)\]")
_options: dict[str, Any] = {"send_cell_first_line": False, "notebook": None}
_registered: dict[int, tuple[Any, Any, CellBook]] = {}
_error_log = ErrorLog()


def configure(send_cell_first_line: Optional[bool] = None,
              cell_locals: Optional[bool] = None, notebook: Optional[str] = None) -> None:
    """Opt in (or out again) to sending the first line of failing cells and cell locals;
    name the notebook's path where the front end does not tell it (``""`` forgets it)."""
    if send_cell_first_line is not None:
        _options["send_cell_first_line"] = send_cell_first_line
    if notebook is not None:
        _options["notebook"] = notebook or None
    if cell_locals is not None:  # a capture setting of the client in use
        client = flawless.client.get_client()
        client.settings = replace(client.settings, capture=replace(
            client.settings.capture, cell_locals=cell_locals))


def errors() -> list[KernelError]:
    """The errors cells raised in this kernel (the last 100), oldest first."""
    return _error_log.errors()


def notebook_path(shell: Any) -> Optional[str]:
    """The notebook's path, lexically normalised: as configured, else as the front end tells
    it; made absolute when it names a file from the working directory, so the revision can
    be read from its repository. Sent shortened like every filename (no home directory, so
    no user name)."""
    path = (_options["notebook"] or shell.user_ns.get(_NOTEBOOK_NAME_VARIABLE)
            or os.environ.get(_NOTEBOOK_ENV))
    if not isinstance(path, str) or not path.strip():
        return None
    if not os.path.isabs(path) and os.path.isfile(path):
        path = os.path.abspath(path)
    return posixpath.normpath(path.replace("\\", "/"))


def notebook_name(shell: Any) -> Optional[str]:
    """The notebook's file name (never its directory), when it is known."""
    path = notebook_path(shell)
    return path.rsplit("/", 1)[-1] if path else None


def _cell_context(shell: Any, raw_cell: str, execution_count: Optional[int]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    name = notebook_name(shell)
    if name:
        context["notebook"] = name
    if execution_count is not None:
        context["execution_count"] = execution_count
    if _options["send_cell_first_line"] and raw_cell:
        context["cell"] = raw_cell.strip().splitlines()[0] if raw_cell.strip() else ""
    return context


def _running_execution_count(shell: Any, info: Any) -> Optional[int]:
    """The execution count of the cell about to run, None when it is run without history.

    IPython 9.8 and later count a cell before ``pre_run_cell``, earlier versions after it:
    the display hook's ``prompt_count`` is the running cell's number in both.
    """
    if not getattr(info, "store_history", False):
        return None
    return shell.displayhook.prompt_count


def _compiled_execution_count(shell: Any, filename: str) -> Optional[int]:
    """The execution count ``filename`` was compiled under, when it is a cell of ``shell``."""
    label = shell.compile.format_code_name(filename)  # ("Cell", "In[7]") for the shell's cells
    match = _CELL_LABEL.fullmatch(label[1]) if label else None
    return int(match.group(1)) if match else None


def _remember_cell(shell: Any, book: CellBook, info: Any,
                   execution_count: Optional[int]) -> None:
    raw_cell = getattr(info, "raw_cell", None) or ""
    transformed = getattr(info, "transformed_cell", None) or raw_cell  # IPython 9 gives it
    number = shell.execution_count if execution_count is None else execution_count
    filename = shell.compile.get_code_name(raw_cell, transformed, number)
    book.remember(filename, CellRun(raw_cell, valid_cell_id(getattr(info, "cell_id", None)),
                                    execution_count))


def _kernel_error(client: Client, exc_info: ExcInfo, book: CellBook) -> KernelError:
    """The error as the kernel keeps it: every frame with its source line, no locals."""
    options = replace(client.settings.capture, locals_frames=0, cell_text=True)
    report = capture(exc_info, options, client.scrubber.is_sensitive_name,
                     describe_cell=book.describe).report
    cell = next((frame.cell for frame in report.traceback if frame.cell is not None), None)
    return KernelError(report.exception_type, report.exception_message, report.traceback, cell,
                       report.timestamp or 0.0)


def _shell_directories(shell: Any) -> tuple[str, ...]:
    """Where the shell's code lives: IPython, and ipykernel for a Jupyter kernel."""
    directories = set()
    for cls in type(shell).__mro__:
        package = sys.modules.get(cls.__module__.split(".")[0])
        filename = getattr(package, "__file__", None)
        if filename and cls.__module__ != "builtins":
            directories.add(os.path.dirname(os.path.abspath(filename)) + os.sep)
    return tuple(directories)


def _skip_shell_frames(tb: Optional[TracebackType],
                       shell_dirs: tuple[str, ...]) -> Optional[TracebackType]:
    """The traceback from the cell on: the shell's own frames tell nothing about the error."""
    while tb is not None and tb.tb_next is not None and \
            tb.tb_frame.f_code.co_filename.startswith(shell_dirs):
        tb = tb.tb_next
    return tb


def _flawless_magic(line: str) -> None:
    """``%flawless``: the errors caught in this kernel; ``%flawless clear``: forget them."""
    command = line.strip()
    if command == "clear":
        count = len(_error_log.errors())
        _error_log.clear()
        print(f"Forgot {count} error{'' if count == 1 else 's'}.")
    elif command:
        print("Usage: %flawless          the errors caught in this kernel\n"
              "       %flawless clear    forget them")
    else:
        print(errors_table(_error_log.errors()))


def load_ipython_extension(shell: Any) -> None:
    """Register the cell hooks and the ``%flawless`` magic on ``shell``."""
    if id(shell) in _registered:
        return
    shell_dirs = _shell_directories(shell)
    client_of = flawless.client.get_client
    book = CellBook(lambda filename: _compiled_execution_count(shell, filename))

    def pre_run_cell(info: Any) -> None:
        try:
            count = _running_execution_count(shell, info)
            book.notebook = notebook_path(shell)
            _remember_cell(shell, book, info, count)
            client = client_of()
            client.describe_cell = book.describe
            client.ambient_context = _cell_context(shell, getattr(info, "raw_cell", ""), count)
        except Exception:  # never break the user's cell
            log.debug("flawless: cell bookkeeping failed", exc_info=True)

    def post_run_cell(result: Any) -> None:
        try:
            client = client_of()
            context, client.ambient_context = client.ambient_context, None
            error = result.error_in_exec
            if error is None or not isinstance(error, Exception):
                return
            exc_info = (type(error), error, _skip_shell_frames(error.__traceback__, shell_dirs))
            _error_log.add(_kernel_error(client, exc_info, book))
            client.record(exc_info, context=context)
        except Exception:  # never break the user's kernel
            log.debug("flawless: reporting a cell's error failed", exc_info=True)

    shell.events.register("pre_run_cell", pre_run_cell)
    shell.events.register("post_run_cell", post_run_cell)
    shell.register_magic_function(_flawless_magic, "line", "flawless")
    _registered[id(shell)] = (pre_run_cell, post_run_cell, book)


def unload_ipython_extension(shell: Any) -> None:
    """Remove the cell hooks and the ``%flawless`` magic from ``shell``."""
    hooks = _registered.pop(id(shell), None)
    if hooks is None:
        return
    shell.events.unregister("pre_run_cell", hooks[0])
    shell.events.unregister("post_run_cell", hooks[1])
    shell.magics_manager.magics["line"].pop("flawless", None)
    client = flawless.client.get_client()
    if client.describe_cell == hooks[2].describe:
        client.describe_cell = None
