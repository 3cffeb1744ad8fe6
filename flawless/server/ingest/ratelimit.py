"""Token buckets per ingest key and per client address (pure: the clock is passed in)."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

MAX_TRACKED_CLIENTS = 10000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One bucket per name: ``rate`` tokens a second, holding at most ``burst``.

    Idle buckets are forgotten beyond ``MAX_TRACKED_CLIENTS`` names, so a flood of distinct
    addresses cannot grow memory without bound.
    """

    def __init__(self, rate: float, burst: float, max_tracked: int = MAX_TRACKED_CLIENTS):
        self.rate = rate
        self.burst = max(burst, rate)
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._max_tracked = max_tracked

    @property
    def enabled(self) -> bool:
        """False when the rate is 0 (no limit)."""
        return self.rate > 0

    def take(self, name: str, cost: float, now: float) -> Optional[float]:
        """Take ``cost`` tokens; None when allowed, else the seconds to wait before retrying."""
        if not self.enabled:
            return None
        bucket = self._buckets.pop(name, None) or _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[name] = bucket
        while len(self._buckets) > self._max_tracked:
            self._buckets.popitem(last=False)
        cost = min(cost, self.burst)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return None
        return (cost - bucket.tokens) / self.rate


def retry_after_header(wait: float) -> str:
    """The Retry-After value (whole seconds, at least 1) for a wait."""
    return str(max(1, math.ceil(wait)))
