"""The one backoff rule: doubling from the first delay, capped, jittered into its upper half."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flawless.backoff import backoff_delay


def test_starts_at_the_first_delay_and_doubles() -> None:
    assert backoff_delay(1, 2.0, 3600.0, lambda: 0.999999) <= 2.0
    assert backoff_delay(1, 2.0, 3600.0, lambda: 0.0) == 1.0
    assert backoff_delay(3, 2.0, 3600.0, lambda: 0.5) == 2 * backoff_delay(2, 2.0, 3600.0,
                                                                            lambda: 0.5)


@given(attempts=st.integers(min_value=-5, max_value=10**6),
       unit=st.floats(min_value=0.0, max_value=0.999999))
def test_never_above_the_cap_nor_below_half_of_it_once_reached(attempts: int,
                                                               unit: float) -> None:
    delay = backoff_delay(attempts, 2.0, 3600.0, lambda: unit)
    assert 1.0 <= delay <= 3600.0
    if attempts >= 13:
        assert delay >= 1800.0
