"""Wake-ups from the other servers sharing the database, heard on a thread of their own."""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from flawless.server.storage.interface import Wakeups

log = Logger()

WAIT_SECONDS = 1.0


class WakeupListener(service.Service):
    """Calls ``handlers[notice]`` on the reactor for each notice another server sends
    (``inbox``: reports were stored; ``outbox``: alerts were queued). One thread, blocked on
    the database connection, never on the reactor; it ends within WAIT_SECONDS of a stop."""

    name = "wakeups"

    def __init__(self, wakeups: Wakeups, handlers: Mapping[str, Callable[[], None]],
                 reactor: Any):
        self._wakeups = wakeups
        self._handlers = dict(handlers)
        self._reactor = reactor
        self._stopping = threading.Event()
        self._stopped: defer.Deferred = defer.Deferred()
        self.heard = 0

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Start listening."""
        super().startService()
        threading.Thread(target=self._listen, name="flawless-wakeups", daemon=True).start()

    def _listen(self) -> None:
        try:
            while not self._stopping.is_set():
                for notice in self._wakeups.wait(WAIT_SECONDS):
                    handler = self._handlers.get(notice)
                    if handler is not None:
                        self._reactor.callFromThread(self._wake, handler)
        finally:
            self._wakeups.close()
            self._reactor.callFromThread(self._stopped.callback, None)

    def _wake(self, handler: Callable[[], None]) -> None:
        self.heard += 1
        handler()

    def stopService(self) -> defer.Deferred:  # noqa: N802 - Twisted API
        """Stop listening; fires once the thread has ended."""
        super().stopService()
        self._stopping.set()
        return self._stopped
