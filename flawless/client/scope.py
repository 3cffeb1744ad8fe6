"""What the program says about the work in progress: tags, context, the user's id and the
HTTP request being served, sent with every report made while it holds.

Held in a ``ContextVar``: each thread and each asyncio task has its own, and the web
integrations give each request a fresh one, so a tag set while serving one request never
reaches the report of another. A scope is immutable; setting a tag makes a new one.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from itertools import islice
from typing import Any, Callable, Mapping, Optional

from flawless.report import (MAX_CONTEXT_ITEMS, MAX_NAME_CHARS, MAX_STRING_CHARS,
                             MAX_TAG_CHARS, MAX_TAGS, MAX_USER_ID_CHARS, ContextValue,
                             RequestInfo, trim)

RequestSource = Callable[[], Optional[RequestInfo]]
_EMPTY: Mapping[str, Any] = {}


class Scope:
    """Tags, context, user id and request source of the work in progress."""

    __slots__ = ("tags", "context", "user_id", "request")

    def __init__(self, tags: Mapping[str, str] = _EMPTY,
                 context: Mapping[str, ContextValue] = _EMPTY, user_id: Optional[str] = None,
                 request: Optional[RequestSource] = None) -> None:
        self.tags = tags
        self.context = context
        self.user_id = user_id
        self.request = request

    def replace(self, **changes: Any) -> "Scope":
        """A copy with ``changes``."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Scope(**fields)


EMPTY_SCOPE = Scope()
_current: ContextVar[Scope] = ContextVar("flawless_scope", default=EMPTY_SCOPE)


def current() -> Scope:
    """The scope of the running thread or task."""
    return _current.get()


def enter(scope: Scope) -> Token:
    """Make ``scope`` the current one (a new request starts); give the token to
    :func:`leave`."""
    return _current.set(scope)


def leave(token: Token) -> None:
    """Go back to the scope before :func:`enter`."""
    try:
        _current.reset(token)
    except ValueError:  # the token belongs to another context (a framework moved us)
        _current.set(EMPTY_SCOPE)


def set_tag(name: object, value: object) -> None:
    """Tag every report made from now on in this thread, task or request (at most
    ``MAX_TAGS`` tags; ``None`` removes one)."""
    scope = current()
    key = trim(str(name), MAX_NAME_CHARS)
    tags = dict(scope.tags)
    if value is None:
        tags.pop(key, None)
    elif key in tags or len(tags) < MAX_TAGS:
        tags[key] = trim(str(value), MAX_TAG_CHARS)
    _current.set(scope.replace(tags=tags))


def plain_value(value: Any) -> Optional[ContextValue]:
    """``value`` when it can go in a report's context as it is, else None."""
    kind = type(value)
    if kind is str:
        return trim(value, MAX_STRING_CHARS)
    if kind is bool or kind is int:
        return value if kind is bool or abs(value) < 2**63 else None
    if kind is float and value == value and abs(value) != float("inf"):
        return value
    return None


def set_context(name: object, value: Any, describe: Callable[[object, Any], str]) -> None:
    """Add ``value`` to the context of every report from now on: a mapping as
    ``name.key`` entries, anything else as ``name``; what is not a plain value goes through
    ``describe(key, value)`` (a bounded, masked repr). ``None`` removes ``name``."""
    scope = current()
    prefix = trim(str(name), MAX_NAME_CHARS)
    context = {key: item for key, item in scope.context.items()
               if key != prefix and not key.startswith(prefix + ".")}
    if value is not None:
        if isinstance(value, Mapping):
            items = [(key, f"{prefix}.{key}", item)
                     for key, item in islice(value.items(), MAX_CONTEXT_ITEMS)]
        else:
            items = [(prefix, prefix, value)]
        for key, full_name, item in items:
            if len(context) >= MAX_CONTEXT_ITEMS:
                break
            plain = plain_value(item)
            context[trim(full_name, MAX_NAME_CHARS)] = \
                trim(describe(key, item), MAX_STRING_CHARS) \
                if plain is None or isinstance(plain, str) else plain
    _current.set(scope.replace(context=context))


def set_user(user_id: object) -> None:
    """Send this user id (never anything else about the user) with every report from now
    on; ``None`` forgets it."""
    scope = current()
    _current.set(scope.replace(
        user_id=None if user_id is None else trim(str(user_id), MAX_USER_ID_CHARS)))
