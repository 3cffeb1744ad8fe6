"""Uncaught exceptions and logged ones: ``sys.excepthook``, ``threading.excepthook`` and a
``logging.Handler``.

The hooks report, then call the hook that was installed before them, so other tools (and
the usual traceback on stderr) keep working, whatever happened while reporting.
``KeyboardInterrupt`` and ``SystemExit`` are not errors and are not reported.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from typing import Any, Optional

import flawless.client
from flawless.client.guard import never_raises

_previous_excepthook: Optional[Any] = None
_previous_threading_excepthook: Optional[Any] = None


def _is_error(exception_type: Optional[type]) -> bool:
    return isinstance(exception_type, type) and issubclass(exception_type, Exception)


@never_raises
def _report_uncaught(exception_type: type, value: BaseException,
                     tb: Optional[TracebackType]) -> None:
    if _is_error(exception_type):
        flawless.client.get_client().record((exception_type, value, tb))


@never_raises
def _report_thread(args: Any) -> None:
    if _is_error(args.exc_type):
        thread = args.thread.name if args.thread is not None else "?"
        flawless.client.get_client().record(
            (args.exc_type, args.exc_value, args.exc_traceback),
            additional_info=f"uncaught in thread {thread}")


def _excepthook(exception_type: type, value: BaseException,
                tb: Optional[TracebackType]) -> None:
    _report_uncaught(exception_type, value, tb)
    (_previous_excepthook or sys.__excepthook__)(exception_type, value, tb)


def _threading_excepthook(args: Any) -> None:
    _report_thread(args)
    (_previous_threading_excepthook or threading.__excepthook__)(args)


def install_excepthook() -> None:
    """Report uncaught exceptions of the main thread (idempotent)."""
    global _previous_excepthook
    if sys.excepthook is not _excepthook:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook


def uninstall_excepthook() -> None:
    """Put back the hook that was there before :func:`install_excepthook`."""
    global _previous_excepthook
    if sys.excepthook is _excepthook:
        sys.excepthook = _previous_excepthook or sys.__excepthook__
        _previous_excepthook = None


def install_threading_excepthook() -> None:
    """Report exceptions that end a ``threading.Thread`` (idempotent)."""
    global _previous_threading_excepthook
    if threading.excepthook is not _threading_excepthook:
        _previous_threading_excepthook = threading.excepthook
        threading.excepthook = _threading_excepthook


def uninstall_threading_excepthook() -> None:
    """Put back the hook that was there before :func:`install_threading_excepthook`."""
    global _previous_threading_excepthook
    if threading.excepthook is _threading_excepthook:
        threading.excepthook = _previous_threading_excepthook or threading.__excepthook__
        _previous_threading_excepthook = None


class FlawlessHandler(logging.Handler):
    """Reports the exception of records logged with ``exc_info`` (``log.exception(...)``).

    The log message goes in ``additional_info`` (scrubbed like everything else). Records of
    the client's own logger are ignored, so a failing send cannot report itself; a failure
    while reporting is swallowed like any other of the client's.
    """

    def __init__(self, level: int = logging.ERROR) -> None:
        super().__init__(level)

    @never_raises
    def emit(self, record: logging.LogRecord) -> None:
        """Report ``record``'s exception, if it carries one."""
        if record.name.startswith("flawless.client") or not record.exc_info:
            return
        exception_type, value, tb = record.exc_info
        if not _is_error(exception_type):
            return
        try:
            message: Optional[str] = f"logged by {record.name}: {record.getMessage()}"
        except Exception:  # a message whose arguments do not format
            message = f"logged by {record.name}"
        flawless.client.get_client().record((exception_type, value, tb),
                                            additional_info=message)
