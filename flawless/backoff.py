"""Exponential backoff with jitter: the one rule for every retry, client and server.

Standard library only (the client imports it too).
"""

from __future__ import annotations

import random
from typing import Callable


def backoff_delay(attempts: int, first: float, maximum: float,
                  unit_random: Callable[[], float] = random.random) -> float:
    """Seconds to wait after ``attempts`` failed attempts (1 or more): ``first``, doubling
    with each attempt, capped at ``maximum``, then scaled into its upper half at random so
    that many failures do not all retry at the same moment."""
    nominal = min(maximum, first * 2.0 ** min(max(attempts, 1) - 1, 64))
    return nominal * (0.5 + unit_random() / 2.0)
