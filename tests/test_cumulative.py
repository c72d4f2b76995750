"""COUNTER and DERIVE samples into increases: first samples, wraps, resets, stale samples, the series bound."""

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from hailwhale.formats.collectd import COUNTER, DERIVE
from hailwhale.formats.cumulative import Cumulative


def run(samples, max_series=10):
    """The increases of (series, kind, value, time) samples, and the outcomes counted."""
    outcomes = Counter()
    cumulative = Cumulative(max_series, outcomes)
    return [cumulative.increase(*sample) for sample in samples], dict(outcomes)


def test_first_sample_yields_nothing_then_increases():
    """The first sample of a series is only a base; later ones give what the counter rose by."""
    assert ([None, 5, 0, 10], {"first_sample": 1}) == run(
        [("s", DERIVE, 100, 1.0), ("s", DERIVE, 105, 2.0), ("s", DERIVE, 105, 3.0), ("s", DERIVE, 115, 4.0)]
    )


def test_counter_wraps_at_32_or_64_bits():
    """A COUNTER that falls wrapped: at 2^32 when its last value fitted in 32 bits, else at 2^64."""
    increases, outcomes = run(
        [
            ("a", COUNTER, 2**32 - 10, 1.0),
            ("a", COUNTER, 5, 2.0),
            ("b", COUNTER, 2**64 - 3, 1.0),
            ("b", COUNTER, 4, 2.0),
        ]
    )

    assert ([None, 15, None, 7], 2) == (increases, outcomes["wrap"])


def test_derive_that_falls_is_a_restart():
    """A DERIVE below its last value restarted: that sample yields nothing and is the new base."""
    assert ([None, None, 3], {"first_sample": 1, "reset": 1}) == run(
        [("s", DERIVE, 1000, 1.0), ("s", DERIVE, 10, 2.0), ("s", DERIVE, 13, 3.0)]
    )


def test_stale_samples_are_ignored():
    """A duplicate or older sample yields nothing and leaves the base as it was, so nothing counts twice."""
    assert ([None, 10, None, None, 5], {"first_sample": 1, "stale": 2}) == run(
        [
            ("s", DERIVE, 0, 1.0),
            ("s", DERIVE, 10, 3.0),
            ("s", DERIVE, 10, 3.0),
            ("s", DERIVE, 5, 2.0),
            ("s", DERIVE, 15, 4.0),
        ]
    )


def test_another_type_starts_the_series_afresh():
    """A series whose data-source type changed starts again from its new first sample."""
    assert ([None, None, 1], {"first_sample": 2}) == run(
        [("s", DERIVE, 5, 1.0), ("s", COUNTER, 7, 2.0), ("s", COUNTER, 8, 3.0)]
    )


def test_series_are_bounded_least_recently_updated_first():
    """Beyond max_series the least recently updated series is forgotten (counted); its next sample is a first one."""
    increases, outcomes = run(
        [
            ("a", DERIVE, 0, 1.0),
            ("b", DERIVE, 0, 1.0),
            ("a", DERIVE, 1, 2.0),
            ("c", DERIVE, 0, 2.0),
            ("a", DERIVE, 2, 3.0),
            ("b", DERIVE, 5, 3.0),
        ],
        max_series=2,
    )

    assert ([None, None, 1, None, 1, None], {"first_sample": 4, "evicted": 2}) == (increases, outcomes)


@given(st.lists(st.integers(0, 2**40), min_size=1, max_size=30))
def test_increases_of_a_rising_counter_add_up_to_its_rise(values):
    """For a counter that only rises, the increases add up to last minus first."""
    rising = sorted(values)
    increases, _ = run([("s", DERIVE, value, float(i)) for i, value in enumerate(rising)])

    assert rising[-1] - rising[0] == sum(increase or 0 for increase in increases)
