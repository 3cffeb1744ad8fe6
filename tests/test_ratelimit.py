"""Token buckets: per-name rates, bursts, Retry-After, bounded memory."""

from __future__ import annotations

from flawless.server.ingest.ratelimit import TokenBuckets, retry_after_header


def test_a_burst_is_allowed_then_the_rate_applies():
    buckets = TokenBuckets(rate=10, burst=20)
    assert all(buckets.take("k", 1, now=0.0) is None for _ in range(20))
    wait = buckets.take("k", 1, now=0.0)
    assert wait is not None and abs(wait - 0.1) < 1e-9
    assert buckets.take("k", 1, now=0.1) is None


def test_one_name_does_not_starve_another():
    buckets = TokenBuckets(rate=1, burst=1)
    assert buckets.take("flood", 1, now=0.0) is None
    assert buckets.take("flood", 1, now=0.0) is not None
    assert buckets.take("quiet", 1, now=0.0) is None


def test_a_zero_rate_means_no_limit():
    buckets = TokenBuckets(rate=0, burst=0)
    assert not buckets.enabled
    assert all(buckets.take("k", 1000, now=0.0) is None for _ in range(100))


def test_a_cost_larger_than_the_burst_waits_for_a_full_bucket_only():
    buckets = TokenBuckets(rate=10, burst=10)
    assert buckets.take("k", 500, now=0.0) is None
    assert buckets.take("k", 500, now=0.0) == 1.0


def test_memory_is_bounded_by_the_number_of_tracked_names():
    buckets = TokenBuckets(rate=1, burst=1, max_tracked=100)
    for number in range(10000):
        buckets.take(f"10.0.{number // 256}.{number % 256}", 1, now=0.0)
    assert len(buckets._buckets) == 100


def test_retry_after_is_whole_seconds_and_at_least_one():
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(2.5) == "3"
