"""The public test helpers that tests lean on for their calendar."""

import datetime

from hailwhale.testing import upcoming

UTC = datetime.UTC


def at(*args) -> float:
    return datetime.datetime(*args, tzinfo=UTC).timestamp()


def test_upcoming_is_the_next_such_moment_after_the_given_one():
    """The same day when the time of day is still ahead, else the next day; never the moment itself."""
    assert (at(2026, 11, 28, 13, 45, 30), at(2026, 11, 29, 13, 45, 30), at(2026, 11, 29, 13, 45, 30)) == (
        upcoming(13, 45, 30, after=at(2026, 11, 28, 1, 40)),
        upcoming(13, 45, 30, after=at(2026, 11, 28, 13, 45, 30)),
        upcoming(13, 45, 30, after=at(2026, 11, 28, 20, 0)),
    )


def test_upcoming_finds_the_calendar_situation_asked_for():
    """A month's first day, a Saturday in winter, a leap day: the first one ahead."""
    assert (at(2026, 12, 1, 0, 0, 30), at(2027, 12, 4, 9, 0), at(2028, 2, 29)) == (
        upcoming(0, 0, 30, where=lambda day: day.day == 1, after=at(2026, 11, 28)),
        upcoming(9, where=lambda day: day.weekday() == 5 and day.month == 12, after=at(2026, 12, 31)),
        upcoming(where=lambda day: (day.month, day.day) == (2, 29), after=at(2026, 3, 1)),
    )


def test_upcoming_defaults_to_the_real_clock():
    """Without ``after`` the moment is ahead of the clock, by at most a day for any time of day."""
    now = datetime.datetime.now(UTC).timestamp()

    assert 0 < upcoming(1, 40) - now <= 86400
