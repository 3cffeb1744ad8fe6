"""Client-side aggregation: repeats are sent on doublings, and nothing is lost."""

from __future__ import annotations

import pytest

import flawless.client
from flawless.client.aggregation import Aggregator
from flawless.client.capture import Captured
from flawless.client.decorators import wrap_function
from flawless.report import Frame, Report

REPORT = Captured(Report("builtins.ValueError", "x", (Frame("/srv/a.py", 1, "f"),)))


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def run(aggregator, key, times):
    sent = []
    for _ in range(times):
        count = aggregator.occurrence(key)
        if count is not None:
            aggregator.remember(key, REPORT)
            sent.append(count)
    return sent


def test_first_occurrences_then_every_doubling_with_the_held_back_count():
    aggregator = Aggregator(first=3, interval=600, clock=FakeClock())
    sent = run(aggregator, "k", 40)
    # occurrences 1, 2, 3, 4, 8, 16, 32 are sent; each stands for those held back before it
    assert sent == [1, 1, 1, 1, 4, 8, 16]
    [remainder] = aggregator.due(everything=True)
    assert remainder.report.error_count == 8
    assert sum(sent) + remainder.report.error_count == 40
    assert aggregator.due(everything=True) == []


def test_held_back_occurrences_are_released_after_the_interval():
    clock = FakeClock()
    aggregator = Aggregator(first=1, interval=600, clock=clock)
    assert run(aggregator, "k", 3) == [1, 1]
    assert aggregator.due() == []
    clock.now += 601
    [released] = aggregator.due()
    assert released.report.error_count == 1


def test_an_occurrence_after_the_interval_is_sent_at_once():
    clock = FakeClock()
    aggregator = Aggregator(first=1, interval=600, clock=clock)
    assert run(aggregator, "k", 6) == [1, 1, 2]
    clock.now += 600
    assert run(aggregator, "k", 1) == [3]


def test_distinct_errors_are_counted_apart():
    aggregator = Aggregator(first=1, clock=FakeClock())
    assert run(aggregator, "a", 3) == [1, 1]
    assert run(aggregator, "b", 1) == [1]


def test_following_more_errors_than_its_bound_forgets_the_least_recent_losing_no_count():
    aggregator = Aggregator(first=1, clock=FakeClock(), max_errors=3)
    sent = {key: run(aggregator, key, 5) for key in "abc"}   # each: 1, 1, 2, held back 1
    assert run(aggregator, "a", 1) == []                     # "a" is now the most recent
    assert sum(run(aggregator, "d", 1)) == 1                 # follows "d", forgets "b"
    [released] = aggregator.evicted()
    assert released.report.error_count == 1 and aggregator.evicted() == []
    assert run(aggregator, "b", 1) == [1]                    # "b" starts again, as new
    leftovers = aggregator.due(everything=True)
    total = sum(map(sum, sent.values())) + 1 + released.report.error_count + 1 + sum(
        item.report.error_count for item in leftovers)
    assert total == 5 * 3 + 1 + 1 + 1                        # every occurrence, once


@pytest.fixture
def sink(report_sink, use_client):
    use_client([report_sink.hostport], key=report_sink.key)
    return report_sink


def test_a_repeating_error_reaches_the_server_with_exact_counts(sink):
    @wrap_function(reraise_exception=False)
    def flaky(n):
        raise ValueError("same place")

    for n in range(100):
        flaky(n)
    assert flawless.client.flush(5)
    reports = sink.wait_for_reports(9)
    assert len(reports) == 9  # 1, 2, 3, 4, 8, 16, 32, 64, then the remainder at flush
    assert sum(report.get("error_count", 1) for report in reports) == 100
