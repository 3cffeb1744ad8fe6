"""Queue entries in the outbox within the hourly bounds (in the caller's transaction), and
the entries of an error's alerts and issue updates on the channels they go to.

An entry within the bounds of its destination and channel for the current wall-clock hour
is queued for delivery and counted; one past them is held until the hour is over, when the
outbox sends everything held for that destination as one digest. Nothing is dropped.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Sequence

from flawless.server.core.bounds import EVERY_DESTINATION, HourlyBounds, hour_end, hour_start
from flawless.server.core.channels import (ISSUE_CHANNELS, ChannelChoice, choose_channels,
                                           issue_update_due)
from flawless.server.core.model import Decision, Occurrence, Route, Rules
from flawless.server.core.tally import ErrorTally
from flawless.server.delivery.composing import Composer
from flawless.server.delivery.render import Alert
from flawless.server.storage.interface import Transaction
from flawless.server.storage.records import NewEntry


def queue_within_bounds(transaction: Transaction, entries: Sequence[NewEntry], now: float,
                        bounds: HourlyBounds) -> int:
    """Queue ``entries`` (holding those past the bounds); return how many are due now."""
    hour = hour_start(now)
    due = 0
    for entry in entries:
        if bounds.admits(transaction.hour_count(entry.channel, entry.destination, hour),
                         transaction.hour_count(entry.channel, EVERY_DESTINATION, hour)):
            transaction.count_in_hour(entry.channel, entry.destination, hour)
            transaction.count_in_hour(entry.channel, EVERY_DESTINATION, hour)
            transaction.queue_entry(entry, now)
            due += 1
        else:
            transaction.queue_entry(entry, now, held_until=hour_end(now))
    return due


class AlertQueue:
    """Queues what one error's batch of occurrences sends, on every channel it goes to."""

    def __init__(self, composer: Composer, bounds: HourlyBounds,
                 default_channels: Sequence[str], issue_comment_interval: float):
        self.composer = composer
        self._bounds = bounds
        self._default_channels = tuple(default_channels)
        self._comment_interval = issue_comment_interval
        self._configured = composer.destinations.configured()

    def channels_for(self, route: Route, rules: Rules) -> ChannelChoice:
        """Where the alerts of the error ``route`` names go."""
        return choose_channels(route.key.filename, rules.channels, self._default_channels,
                               self._configured)

    def queue_error(self, transaction: Transaction, tally: ErrorTally, error_id: int,
                    rules: Rules, now: float) -> int:
        """Queue the alerts of one error's batch, and an update of its issues when it
        happened again; return how many entries are due now."""
        entries: list[NewEntry] = []
        for occurrence, decision, count in tally.alerts:
            alert = self._alert(tally, occurrence, decision, count, error_id)
            channels = self.channels_for(occurrence.route, rules).channels
            entries += self.composer.alert(alert, channels, now, error_id)
            for channel in ISSUE_CHANNELS:
                if channel in channels:
                    transaction.set_issue_update(error_id, channel, now, count)
        if (not tally.alerts and tally.alerted_before and tally.latest is not None
                and tally.latest.route.known_error is None):  # a known error has its own rule
            entries += self._issue_updates(transaction, tally, error_id, rules, now)
        return queue_within_bounds(transaction, entries, now, self._bounds)

    def queue_notes(self, transaction: Transaction, notes: Sequence[EmailMessage],
                    now: float) -> int:
        """Queue notice mails; return how many are due now."""
        entries = [entry for note in notes for entry in self.composer.note(note)]
        return queue_within_bounds(transaction, entries, now, self._bounds)

    def _issue_updates(self, transaction: Transaction, tally: ErrorTally, error_id: int,
                       rules: Rules, now: float) -> list[NewEntry]:
        latest, decision = tally.latest, tally.decision
        assert latest is not None and decision is not None
        channels = self.channels_for(latest.route, rules).channels
        entries: list[NewEntry] = []
        for channel in ISSUE_CHANNELS:
            if channel not in channels:
                continue
            last = transaction.issue_update(error_id, channel)
            if not issue_update_due(last[0] if last else None, now, self._comment_interval):
                continue
            since_count = tally.count - (last[1] if last else tally.count_before)
            alert = self._alert(tally, latest, decision, tally.count, error_id)
            entries += self.composer.issue_update(alert, channel, since_count,
                                                  last[0] if last else None, error_id)
            transaction.set_issue_update(error_id, channel, now, tally.count)
        return entries

    def _alert(self, tally: ErrorTally, occurrence: Occurrence, decision: Decision,
               count: int, error_id: int) -> Alert:
        return Alert(report=occurrence.report, route=occurrence.route, blame=occurrence.blame,
                     decision=decision, count=count, first_seen=tally.first_seen,
                     last_seen=tally.last_seen, base_url=self.composer.base_url(),
                     error_id=error_id)
