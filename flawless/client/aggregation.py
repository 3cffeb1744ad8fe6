"""Client-side aggregation: a repeating error is not sent every time.

The first occurrences of an error are sent one by one; after that only the occurrences whose
count is a power of two, or that come at least ``interval`` seconds after the last one sent.
Each report carries in ``error_count`` the occurrences it stands for (itself plus those held
back since the last send), and what is still held back is released by :meth:`due` (every
``interval``, and all of it at exit), so the server's counts stay exact.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Hashable, Optional

from flawless.client.capture import Captured
from flawless.report import with_error_count


@dataclass
class _Occurrences:
    total: int = 0
    held_back: int = 0
    last_sent: float = 0.0
    latest: Optional[Captured] = None


class Aggregator:
    """Decides, per error, whether this occurrence is sent and for how many it stands.

    It follows at most ``max_errors`` errors (sized by bench/client_overhead.py: a flood of
    thousands of distinct sites fits, and each followed error keeps one report); a new error
    beyond that makes it forget the error seen least recently, whose held-back occurrences
    are handed over at once by :meth:`evicted`, so nothing is lost and memory stays bounded.
    """

    def __init__(self, first: int = 3, interval: float = 600.0, max_errors: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.first = first
        self.interval = interval
        self.max_errors = max_errors
        self.clock = clock
        self.reset()
        _aggregators.add(self)

    def reset(self) -> None:
        """Forget everything (in a forked child, whose parent keeps its own counts)."""
        self._lock = threading.Lock()
        self._errors: OrderedDict[Hashable, _Occurrences] = OrderedDict()
        self._evicted: list[Captured] = []

    def occurrence(self, key: Hashable) -> Optional[int]:
        """Count one occurrence; return the ``error_count`` to send now, or None to hold it."""
        now = self.clock()
        with self._lock:
            state = self._errors.get(key)
            if state is None:
                if len(self._errors) >= self.max_errors:
                    self._forget_least_recent()
                state = self._errors[key] = _Occurrences()
            else:
                self._errors.move_to_end(key)
            state.total += 1
            total = state.total
            if total <= self.first or total & (total - 1) == 0 \
                    or now - state.last_sent >= self.interval:
                count = state.held_back + 1
                state.held_back = 0
                state.last_sent = now
                return count
            state.held_back += 1
            return None

    def _forget_least_recent(self) -> None:
        _, state = self._errors.popitem(last=False)
        if state.held_back and state.latest is not None:
            self._evicted.append(_released(state))

    def evicted(self) -> list[Captured]:
        """Reports for the occurrences held back by errors forgotten to follow new ones."""
        with self._lock:
            evicted, self._evicted = self._evicted, []
        return evicted

    def remember(self, key: Hashable, captured: Captured) -> None:
        """Keep the latest report sent for ``key``: held-back occurrences are sent as it."""
        with self._lock:
            state = self._errors.get(key)
            if state is not None:
                state.latest = captured

    def due(self, everything: bool = False) -> list[Captured]:
        """Reports for the occurrences held back for ``interval`` (or all, at exit)."""
        now = self.clock()
        released = []
        with self._lock:
            for state in self._errors.values():
                if state.held_back and state.latest is not None and \
                        (everything or now - state.last_sent >= self.interval):
                    released.append(_released(state))
                    state.last_sent = now
            released += self._evicted
            self._evicted = []
        return released


def _released(state: _Occurrences) -> Captured:
    """The report standing for ``state``'s held-back occurrences (which it then clears)."""
    assert state.latest is not None
    report = replace(with_error_count(state.latest.report, state.held_back),
                     timestamp=time.time())
    state.held_back = 0
    return replace(state.latest, report=report)


_aggregators: "weakref.WeakSet[Aggregator]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for aggregator in list(_aggregators):
        aggregator.reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
