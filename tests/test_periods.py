import datetime

import pytest

from hailwhale import periods
from hailwhale.periods import PeriodError, Window
from hailwhale.schema import parse_schema

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
UTC = datetime.timezone.utc


def at(*args) -> float:
    return datetime.datetime(*args, tzinfo=UTC).timestamp()


NOW = at(2026, 11, 28, 13, 45, 30)  # a Saturday


def span(window: Window) -> tuple[int, str, str]:
    iso = lambda t: datetime.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    return len(window.buckets), iso(window.buckets[0]), iso(window.buckets[-1])


@pytest.mark.parametrize(
    "word, interval, expected",
    [
        ("hour", 60, (60, "2026-11-28 12:46", "2026-11-28 13:45")),
        ("day", 3600, (24, "2026-11-27 14:00", "2026-11-28 13:00")),
        ("24h", 3600, (24, "2026-11-27 14:00", "2026-11-28 13:00")),
        ("today", 3600, (14, "2026-11-28 00:00", "2026-11-28 13:00")),
        ("yesterday", 3600, (24, "2026-11-27 00:00", "2026-11-27 23:00")),
        ("seven", 86400, (7, "2026-11-22 00:00", "2026-11-28 00:00")),
        ("thirty", 86400, (30, "2026-10-30 00:00", "2026-11-28 00:00")),
        ("year", 86400, (365, "2025-11-29 00:00", "2026-11-28 00:00")),
        ("wtd", 86400, (6, "2026-11-23 00:00", "2026-11-28 00:00")),
        ("mtd", 86400, (28, "2026-11-01 00:00", "2026-11-28 00:00")),
        ("ytd", 86400, (332, "2026-01-01 00:00", "2026-11-28 00:00")),
        ("1m:1h", 60, (60, "2026-11-28 12:46", "2026-11-28 13:45")),
        ("1h:1d", 3600, (24, "2026-11-27 14:00", "2026-11-28 13:00")),
        ("1d:1mo", 86400, (30, "2026-10-30 00:00", "2026-11-28 00:00")),
        ("1m:5m", 60, (5, "2026-11-28 13:41", "2026-11-28 13:45")),
    ],
)
def test_period_windows(word, interval, expected):
    """Each period word is a window of stored buckets ending with the current one."""
    window = periods.resolve(word, NOW, SCHEMA)

    assert (interval, expected) == (window.interval, span(window))


def test_first_of_the_year():
    """On January 1st, ytd and mtd are today alone and yesterday is December 31st."""
    now = at(2027, 1, 1, 0, 0, 5)

    assert [1, 1, (24, "2026-12-31 00:00", "2026-12-31 23:00")] == [
        len(periods.resolve("ytd", now, SCHEMA).buckets),
        len(periods.resolve("mtd", now, SCHEMA).buckets),
        span(periods.resolve("yesterday", now, SCHEMA)),
    ]


@pytest.mark.parametrize(
    "word, message",
    [
        ("fortnight", "unknown period"),
        ("5m:1h", "not stored"),
        ("1m:1w", "kept for 2d"),
        ("1d:5y", "kept for 3y"),
        ("1x:1d", "not a duration"),
    ],
)
def test_unanswerable_periods_say_why(word, message):
    """A period the stored buckets cannot answer is an error that says why, never zeros."""
    with pytest.raises(PeriodError) as caught:
        periods.resolve(word, NOW, SCHEMA)

    assert message in str(caught.value)


def test_coarser_schema_falls_back_to_finer_stored_interval():
    """Without hourly buckets, 'today' reads the finest interval that divides an hour."""
    schema = parse_schema("5m:2d,1d:1y")

    assert 300 == periods.resolve("today", NOW, schema).interval
