"""Runners for in-process tests of the shell: calls run when the test says, in its thread."""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer


class ManualRunner:
    """Queues each blocking call; :meth:`run_all` runs the queue, so a test can hold a
    commit or a git call back and look at what happens meanwhile."""

    def __init__(self) -> None:
        self.queued: list[tuple[Callable[..., Any], tuple, dict, defer.Deferred]] = []

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        result: defer.Deferred = defer.Deferred()
        self.queued.append((function, args, kwargs, result))
        return result

    def run_all(self) -> int:
        """Run every queued call (and those they queue); return how many ran."""
        ran = 0
        while self.queued:
            function, args, kwargs, result = self.queued.pop(0)
            defer.maybeDeferred(function, *args, **kwargs).chainDeferred(result)
            ran += 1
        return ran
