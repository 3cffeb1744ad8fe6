"""The client's own failures stay in the client.

Every entry point the program calls, or that runs on its behalf (decorators, hooks,
middleware, signal receivers), reports through :func:`never_raises`: whatever goes wrong
while reporting (a hostile ``__repr__``, a broken configuration, a bug of ours) is logged
at debug level on the ``flawless.client`` logger and counted, and the program goes on with
its own exception, unchanged.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, TypeVar

log = logging.getLogger("flawless.client")

F = TypeVar("F", bound=Callable[..., Any])

internal_errors = [0]  # how many times the client failed and swallowed it


def swallowed(where: str) -> None:
    """Call from an ``except`` block: note that reporting failed in ``where``."""
    internal_errors[0] += 1
    try:
        log.debug("flawless: %s failed", where, exc_info=True)
    except Exception:  # a handler of the program's logging may fail too
        pass


def never_raises(func: F) -> F:
    """``func``, returning None instead of raising any ``Exception``."""
    where = getattr(func, "__qualname__", "reporting")

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception:
            swallowed(where)
            return None
    return guarded  # type: ignore[return-value]
