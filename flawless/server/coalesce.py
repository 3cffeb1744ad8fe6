"""One call per key at a time: callers asking for a key already in flight share its outcome."""

from __future__ import annotations

from typing import Any, Callable, Hashable

from twisted.internet import defer
from twisted.python.failure import Failure


class Coalescer:
    """Shares the outcome of an asynchronous call among everyone who asks while it runs."""

    def __init__(self) -> None:
        self._waiting: dict[Hashable, list[defer.Deferred]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def run(self, key: Hashable, start: Callable[[], defer.Deferred]) -> defer.Deferred:
        """A Deferred of ``start()``'s outcome; ``start`` is called only when no call for
        ``key`` is in flight."""
        waiter: defer.Deferred = defer.Deferred()
        waiters = self._waiting.get(key)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        self._waiting[key] = [waiter]
        defer.maybeDeferred(start).addBoth(self._settle, key)
        return waiter

    def _settle(self, outcome: Any, key: Hashable) -> None:
        for waiter in self._waiting.pop(key):
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)
