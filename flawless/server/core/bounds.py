"""PURE: the hourly bounds on alerts, per destination and per channel.

Hours are wall-clock hours (UTC): an entry over a bound is held until its hour is over, then
sent with the others held for the same destination as one digest. Digests pass the bounds,
so a destination gets at most its bound of alerts plus one digest an hour, and no alert is
ever dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HOUR_SECONDS = 3600.0
EVERY_DESTINATION = "*"   # the destination under which a channel's total is counted


@dataclass(frozen=True)
class HourlyBounds:
    """At most ``per_destination`` entries an hour to one destination (a mail recipient, a
    webhook, a repository) and ``per_channel`` to all of a channel's; 0 means no bound."""

    per_destination: int = 0
    per_channel: int = 0

    def admits(self, destination_count: int, channel_count: int) -> bool:
        """Whether one more entry fits after ``destination_count`` to its destination and
        ``channel_count`` to its channel this hour."""
        return ((not self.per_destination or destination_count < self.per_destination)
                and (not self.per_channel or channel_count < self.per_channel))


def hour_start(timestamp: float) -> float:
    """The start of the wall-clock hour (UTC) holding ``timestamp``."""
    return math.floor(timestamp / HOUR_SECONDS) * HOUR_SECONDS


def hour_end(timestamp: float) -> float:
    """The end of the wall-clock hour holding ``timestamp``: when what it held is digested."""
    return hour_start(timestamp) + HOUR_SECONDS
