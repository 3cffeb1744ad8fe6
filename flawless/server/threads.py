"""Named, bounded thread pools for blocking work, as services of the server's tree.

Every blocking call (git, the database, SMTP) goes through a :class:`Runner`: in the server
a :class:`PoolService`, in tests of the shell an :class:`InlineRunner` that runs the call at
once, so those tests need no threads and no real clock.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Protocol

from twisted.application import service
from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool


class Runner(Protocol):
    """Runs a blocking call somewhere other than the reactor thread."""

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Deferred result of ``function(*args, **kwargs)``."""


class PoolService(service.Service):
    """One named thread pool of at most ``size`` threads, started and stopped with the tree.

    Stopping lets the calls already queued finish first.
    """

    def __init__(self, name: str, size: int, reactor: Any):
        self.setName(name)
        self.size = size
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=size, name=f"flawless-{name}")

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Deferred result of ``function(*args, **kwargs)`` run in one of the pool's threads."""
        return threads.deferToThreadPool(self._reactor, self._pool, function, *args, **kwargs)

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Start the pool (its threads are created on demand)."""
        super().startService()
        self._pool.start()

    def stopService(self) -> defer.Deferred:  # noqa: N802 - Twisted API
        """Let queued calls finish, then join the threads (in a thread of its own, so the
        reactor is never blocked and no other pool is needed)."""
        super().stopService()
        stopped: defer.Deferred = defer.Deferred()

        def stop() -> None:
            self._pool.stop()
            self._reactor.callFromThread(stopped.callback, None)

        threading.Thread(target=stop, name=f"flawless-{self.name}-stop", daemon=True).start()
        return stopped


class InlineRunner:
    """Runs each call at once in the caller's thread: for in-process tests of the shell."""

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Deferred result of ``function(*args, **kwargs)``, already fired."""
        return defer.maybeDeferred(function, *args, **kwargs)
