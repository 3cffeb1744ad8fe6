"""``wrap_function`` and ``wrap_class``: report exceptions raised through a function.

An exception is reported once, by the innermost wrapper it passes; the outer wrappers, the
excepthook, the logging handler and the IPython extension see it marked and stay quiet.
``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` are not errors. Whatever goes
wrong while reporting, the function's own exception propagates unchanged.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any, Callable, Optional, TypeVar, overload

import flawless.client
from flawless.client.guard import never_raises, swallowed

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

# Wrapping these would report exceptions that are part of normal control flow
# (AttributeError from __getattr__ under hasattr(), StopIteration from __next__, ...).
_WRAPPED_DUNDERS = frozenset({"__init__", "__call__", "__enter__", "__exit__"})


@never_raises
def _report(error_threshold: Optional[int], caller: Any) -> None:
    # The stack from the wrapper's caller: the wrapper's own frame is dropped from reports.
    flawless.client.get_client().record(sys.exc_info(), preceding_stack=caller,
                                        error_threshold=error_threshold)


def _is_coroutine_function(func: Any) -> bool:
    try:
        return inspect.iscoroutinefunction(func)
    except Exception:  # a callable whose attributes raise
        return False


def _wraps(func: Any) -> Callable[[F], F]:
    """``functools.wraps``, or nothing when ``func``'s attributes cannot be copied."""
    def decorate(wrapper: F) -> F:
        try:
            return functools.update_wrapper(wrapper, func)  # type: ignore[return-value]
        except Exception:
            swallowed("copying a wrapped function's attributes")
            return wrapper
    return decorate


def _wrap(func: F, error_threshold: Optional[int], reraise_exception: bool) -> F:
    if _is_coroutine_function(func):
        @_wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except Exception:
                _report(error_threshold, sys._getframe(1))
                if reraise_exception:
                    raise
                return None
        return async_wrapper  # type: ignore[return-value]

    @_wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception:
            _report(error_threshold, sys._getframe(1))
            if reraise_exception:
                raise
            return None
    return wrapper  # type: ignore[return-value]


@overload
def wrap_function(func: F) -> F: ...
@overload  # noqa: E302
def wrap_function(*, error_threshold: Optional[int] = None,
                  reraise_exception: bool = True) -> Callable[[F], F]: ...


def wrap_function(func: Optional[F] = None, *, error_threshold: Optional[int] = None,
                  reraise_exception: bool = True) -> Any:
    """Report exceptions raised by ``func``; usable bare (``@wrap_function``) or with
    options (``@wrap_function(error_threshold=7, reraise_exception=False)``; without
    re-raising, the call returns None)."""
    if func is not None:
        return _wrap(func, error_threshold, reraise_exception)
    return lambda inner: _wrap(inner, error_threshold, reraise_exception)


def wrap_class(cls: Optional[C] = None, *, error_threshold: Optional[int] = None,
               reraise_exception: bool = True) -> Any:
    """Wrap every method, classmethod and staticmethod defined in ``cls`` (and ``__init__``,
    ``__call__``, ``__enter__``, ``__exit__``) with :func:`wrap_function`."""
    def decorate(target: C) -> C:
        for name, attribute in list(vars(target).items()):
            if name.startswith("__") and name not in _WRAPPED_DUNDERS:
                continue
            if isinstance(attribute, (classmethod, staticmethod)):
                wrapped = type(attribute)(_wrap(attribute.__func__, error_threshold,
                                                reraise_exception))
            elif inspect.isfunction(attribute):
                wrapped = _wrap(attribute, error_threshold, reraise_exception)
            else:
                continue
            try:
                setattr(target, name, wrapped)
            except Exception:  # a metaclass refusing it: that method stays unwrapped
                swallowed(f"wrapping {name}")
        return target
    return decorate(cls) if cls is not None else decorate
