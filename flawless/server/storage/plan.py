"""Processing worked out before the write lock is taken, then written in a short transaction.

Working out a batch (tallies, decisions, rendered mail, encoded records) takes most of its
time; holding the database's one writer for all of it would make every acknowledgement
wait. So the processor first runs its unit of work against a :class:`PlanningTransaction`,
which reads the stored state of the errors it needs and records every write as a
:class:`Plan`; the backend then replays the plan in one transaction, checking that each
error is still as it was read (its count) and raising :class:`PlanConflict` otherwise, in
which case the processor runs the unit of work again inside a transaction of its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Sequence

from flawless.server.core.model import ErrorKey, ErrorRecord, ErrorState, Resolution
from flawless.server.storage.records import NewEntry

HourKey = tuple[str, str, float]   # (channel, destination, hour start)


class PlanConflict(Exception):
    """An error changed between the reading of a plan and its writing."""


@dataclass
class Plan:
    """The writes of one unit of processing, in order, and what they were worked out from.

    Errors new when planned have no id yet: they are given placeholder ids (-1, -2, ...)
    that the writes refer to, and that the backend maps to the ids it inserts them with."""

    read: dict[ErrorKey, ErrorState] = field(default_factory=dict)
    resolutions: dict[int, Resolution] = field(default_factory=dict)  # as read, by error id
    hours: dict[HourKey, int] = field(default_factory=dict)   # hourly counts as read
    writes: list[tuple[str, tuple]] = field(default_factory=list)
    result: Any = None


class PlanningTransaction:
    """A Transaction (see interface.py) that reads through ``read_states`` and only
    records what it would write."""

    def __init__(self, read_states: Callable[[Sequence[ErrorKey]], dict[ErrorKey, ErrorState]],
                 read_hour: Callable[[str, str, float], int] = lambda *key: 0,
                 read_issue_update: Callable[[int, str], Optional[tuple[float, int]]]
                 = lambda *key: None,
                 read_resolutions: Callable[[Sequence[int]], dict[int, Resolution]]
                 = lambda error_ids: {}):
        self._read_states = read_states
        self._read_hour = read_hour
        self._read_issue_update = read_issue_update
        self._read_resolutions = read_resolutions
        self.plan = Plan()
        self._placeholders = 0
        self._admitted: Counter[HourKey] = Counter()
        self._issue_updates: dict[tuple[int, str], tuple[float, int]] = {}

    def error_state(self, key: ErrorKey) -> Optional[ErrorState]:
        """Counts and alert state of the error with this identity, if seen before."""
        return self.error_states([key]).get(key)

    def error_states(self, keys: Sequence[ErrorKey]) -> dict[ErrorKey, ErrorState]:
        """:meth:`error_state` of many errors at once (those seen before)."""
        states = self._read_states(keys)
        self.plan.read.update(states)
        return states

    def save_error(self, record: ErrorRecord) -> int:
        """Insert or update an error; return its id (a placeholder for a new one)."""
        return self.save_errors([record])[0]

    def save_errors(self, records: Sequence[ErrorRecord]) -> list[int]:
        """:meth:`save_error` of many errors at once; their ids in the same order."""
        ids = []
        for record in records:
            if not record.error_id:
                self._placeholders += 1
                ids.append(-self._placeholders)
            else:
                ids.append(record.error_id)
        self.plan.writes.append(("save_errors", (list(records), ids)))
        return ids

    def resolutions(self, error_ids: Sequence[int]) -> dict[int, Resolution]:
        """How these errors were resolved (those ever resolved), as read now."""
        found = self._read_resolutions(error_ids)
        self.plan.resolutions.update(found)
        return found

    def save_resolution(self, error_id: int, resolution: Resolution) -> None:
        """Store how the error is resolved (it must still be as read when written)."""
        self.plan.writes.append(("save_resolution", (error_id, resolution)))

    def count_occurrences(self, error_id: int, when: float, occurrences: int) -> None:
        """Add occurrences to the error's week and day counters."""
        self.count_many_occurrences([(error_id, when, occurrences)])

    def count_many_occurrences(self, counts: Sequence[tuple[int, float, int]]) -> None:
        """:meth:`count_occurrences` of many (error id, when, occurrences) at once."""
        self.plan.writes.append(("count_many_occurrences", (list(counts),)))

    def queue_entry(self, entry: NewEntry, now: float,
                    held_until: Optional[float] = None) -> int:
        """Store an entry for delivery (its id is known once written: 0 here)."""
        self.plan.writes.append(("queue_entry", (entry, now, held_until)))
        return 0

    def hour_count(self, channel: str, destination: str, hour_start: float) -> int:
        """Entries admitted to a destination in an hour: as read (the replay checks it is
        still so), plus those this plan admits."""
        key = (channel, destination, hour_start)
        if key not in self.plan.hours:
            self.plan.hours[key] = self._read_hour(*key)
        return self.plan.hours[key] + self._admitted[key]

    def count_in_hour(self, channel: str, destination: str, hour_start: float) -> None:
        """Add one admitted entry to a destination's count for an hour."""
        self._admitted[(channel, destination, hour_start)] += 1
        self.plan.writes.append(("count_in_hour", (channel, destination, hour_start)))

    def issue_update(self, error_id: int, channel: str) -> Optional[tuple[float, int]]:
        """When an error's issue was last queued an update (the processor alone writes it)."""
        if (error_id, channel) in self._issue_updates:
            return self._issue_updates[(error_id, channel)]
        return None if error_id < 0 else self._read_issue_update(error_id, channel)

    def set_issue_update(self, error_id: int, channel: str, now: float, count: int) -> None:
        """Remember that an update of an error's issue was queued now, at ``count``."""
        self._issue_updates[(error_id, channel)] = (now, count)
        self.plan.writes.append(("set_issue_update", (error_id, channel, now, count)))

    def postpone(self, inbox_id: int, attempts: int, next_attempt_at: float,
                 error: str) -> None:
        """Leave a request's reports in the inbox for a later attempt."""
        self.plan.writes.append(("postpone", (inbox_id, attempts, next_attempt_at, error)))

    def remove_from_inbox(self, inbox_id: int) -> None:
        """Mark a request's reports processed."""
        self.plan.writes.append(("remove_from_inbox", (inbox_id,)))

    def bump_stat(self, name: str, by: int = 1) -> None:
        """Add to a named counter."""
        self.plan.writes.append(("bump_stat", (name, by)))


def replay(plan: Plan, transaction: Any,
           save_checked: Callable[[Sequence[ErrorRecord], Plan], list[int]]) -> Any:
    """Write ``plan`` in ``transaction``: ``save_checked`` saves errors, raising
    PlanConflict when one is no longer as read, and returns their real ids; every other
    write goes to the transaction's own method, placeholder ids mapped to real ones."""
    real: dict[int, int] = {}

    def mapped(error_id: Optional[int]) -> Optional[int]:
        return real.get(error_id, error_id) if error_id is not None and error_id < 0 \
            else error_id

    for key, count in plan.hours.items():
        if transaction.hour_count(*key) != count:
            raise PlanConflict(f"the hourly count of {key[0]} {key[1]} changed")
    for name, args in plan.writes:
        if name == "save_errors":
            records, ids = args
            real.update((placeholder, saved) for placeholder, saved
                        in zip(ids, save_checked(records, plan)) if placeholder < 0)
        elif name == "count_many_occurrences":
            transaction.count_many_occurrences([(mapped(error_id), when, count)
                                                for error_id, when, count in args[0]])
        elif name == "queue_entry":
            entry: NewEntry = args[0]
            transaction.queue_entry(replace(entry, error_id=mapped(entry.error_id)), *args[1:])
        elif name == "set_issue_update":
            transaction.set_issue_update(mapped(args[0]), *args[1:])
        elif name == "save_resolution":
            error_id, resolution = args
            # marked resolved or reopened from the dashboard meanwhile: work it out again
            if transaction.resolutions([error_id]).get(error_id) != plan.resolutions.get(error_id):
                raise PlanConflict(f"error {error_id} was resolved or reopened meanwhile")
            transaction.save_resolution(error_id, resolution)
        else:
            getattr(transaction, name)(*args)
    return plan.result
