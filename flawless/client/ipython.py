"""IPython and Jupyter: ``%load_ext flawless`` reports exceptions raised in cells.

Each report carries in ``context`` the notebook's file name where it can be known (VS Code
and Jupyter server tell the kernel) and the cell's ``execution_count``. By default no text
and no locals of notebook cells leave the kernel: call :func:`configure` to opt in to the
cell's first line (``send_cell_first_line``) or to cell locals (``cell_locals``).
``KeyboardInterrupt`` and ``SystemExit`` are not errors. An exception already reported by a
wrapped helper function is not reported a second time.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from types import TracebackType
from typing import Any, Optional

import flawless.client
from flawless.client.guard import never_raises

_NOTEBOOK_NAME_VARIABLE = "__vsc_ipynb_file__"
_NOTEBOOK_ENV = "JPY_SESSION_NAME"
_options = {"send_cell_first_line": False}
_registered: dict[int, tuple[Any, Any]] = {}


def configure(send_cell_first_line: Optional[bool] = None,
              cell_locals: Optional[bool] = None) -> None:
    """Opt in (or out again) to sending the first line of failing cells and cell locals."""
    if send_cell_first_line is not None:
        _options["send_cell_first_line"] = send_cell_first_line
    if cell_locals is not None:  # a capture setting of the client in use
        client = flawless.client.get_client()
        client.settings = replace(client.settings, capture=replace(
            client.settings.capture, cell_locals=cell_locals))


def notebook_name(shell: Any) -> Optional[str]:
    """The notebook's file name (never its directory), when the front end tells it."""
    path = shell.user_ns.get(_NOTEBOOK_NAME_VARIABLE) or os.environ.get(_NOTEBOOK_ENV)
    if not isinstance(path, str) or not path:
        return None
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


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


def load_ipython_extension(shell: Any) -> None:
    """Register the cell hooks on ``shell`` (an ``InteractiveShell``)."""
    if id(shell) in _registered:
        return
    shell_dirs = _shell_directories(shell)
    client_of = flawless.client.get_client

    @never_raises
    def pre_run_cell(info: Any) -> None:
        count = shell.execution_count if getattr(info, "store_history", True) else None
        client_of().ambient_context = _cell_context(shell, getattr(info, "raw_cell", ""), count)

    @never_raises
    def post_run_cell(result: Any) -> None:
        client = client_of()
        context, client.ambient_context = client.ambient_context, None
        error = result.error_in_exec
        if error is None or not isinstance(error, Exception):
            return
        tb = _skip_shell_frames(error.__traceback__, shell_dirs)
        client.record((type(error), error, tb), context=context)

    shell.events.register("pre_run_cell", pre_run_cell)
    shell.events.register("post_run_cell", post_run_cell)
    _registered[id(shell)] = (pre_run_cell, post_run_cell)


def unload_ipython_extension(shell: Any) -> None:
    """Remove the cell hooks from ``shell``."""
    hooks = _registered.pop(id(shell), None)
    if hooks is None:
        return
    shell.events.unregister("pre_run_cell", hooks[0])
    shell.events.unregister("post_run_cell", hooks[1])
