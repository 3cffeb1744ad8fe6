"""The wake-up listener: notices heard on its own thread are handed to the reactor."""

from __future__ import annotations

import queue
import threading

from flawless.server.storage.listening import WakeupListener


class Reactor:
    """Takes what the listener's thread hands to the reactor; the test runs it."""

    def __init__(self) -> None:
        self.calls: queue.Queue = queue.Queue()

    def callFromThread(self, function, *args) -> None:  # noqa: N802 - Twisted API
        self.calls.put((function, args))

    def run_next(self) -> None:
        function, args = self.calls.get(timeout=10)
        function(*args)


class Notices:
    """Notices arriving in the given batches, then none."""

    def __init__(self, *batches: list[str]) -> None:
        self.batches = list(batches)
        self.closed = threading.Event()

    def wait(self, timeout: float) -> list[str]:
        if self.batches:
            return self.batches.pop(0)
        self.closed.wait(0.01)
        return []

    def close(self) -> None:
        self.closed.set()


def test_each_notice_wakes_its_part_on_the_reactor_and_stopping_ends_the_thread():
    woken: list[str] = []
    reactor = Reactor()
    notices = Notices(["inbox"], ["elsewhere", "outbox"])
    listener = WakeupListener(notices,
                              {"inbox": lambda: woken.append("processor"),
                               "outbox": lambda: woken.append("outbox")}, reactor)
    listener.startService()
    reactor.run_next()
    reactor.run_next()
    assert woken == ["processor", "outbox"] and listener.heard == 2
    stopped = listener.stopService()
    reactor.run_next()
    assert stopped.called and reactor.calls.empty() and notices.closed.is_set()
