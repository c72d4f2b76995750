import datetime
import zoneinfo

import pytest

from hailwhale.model.schema import parse_schema
from hailwhale.query import periods
from hailwhale.query.periods import PeriodError, Piece

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
UTC = datetime.UTC
LA = zoneinfo.ZoneInfo("America/Los_Angeles")
DAY = 86400


def at(*args, tz=UTC) -> int:
    return int(datetime.datetime(*args, tzinfo=tz).timestamp())


NOW = at(2026, 11, 28, 13, 45, 30)  # a Saturday


def iso(moment: int, tz=UTC) -> str:
    return datetime.datetime.fromtimestamp(moment, tz).strftime("%Y-%m-%d %H:%M")


def span(window, tz=UTC) -> tuple[int, str, str]:
    """(number of points, first point start, last point end) in ``tz``."""
    return len(window.points), iso(window.start, tz), iso(window.end, tz)


@pytest.mark.parametrize(
    "word, expected",
    [
        ("hour", (60, "2026-11-28 12:46", "2026-11-28 13:46")),
        ("day", (24, "2026-11-27 14:00", "2026-11-28 14:00")),
        ("24h", (24, "2026-11-27 14:00", "2026-11-28 14:00")),
        ("today", (14, "2026-11-28 00:00", "2026-11-28 14:00")),
        ("yesterday", (24, "2026-11-27 00:00", "2026-11-28 00:00")),
        ("seven", (7, "2026-11-22 00:00", "2026-11-29 00:00")),
        ("thirty", (30, "2026-10-30 00:00", "2026-11-29 00:00")),
        ("year", (365, "2025-11-29 00:00", "2026-11-29 00:00")),
        ("wtd", (6, "2026-11-23 00:00", "2026-11-29 00:00")),
        ("mtd", (28, "2026-11-01 00:00", "2026-11-29 00:00")),
        ("ytd", (332, "2026-01-01 00:00", "2026-11-29 00:00")),
        ("1m:1h", (60, "2026-11-28 12:46", "2026-11-28 13:46")),
        ("1h:1d", (24, "2026-11-27 14:00", "2026-11-28 14:00")),
        ("1d:1mo", (30, "2026-10-30 00:00", "2026-11-29 00:00")),
        ("5m:1h", (12, "2026-11-28 12:50", "2026-11-28 13:50")),
        ("11/01/2026-11/03/2026", (3, "2026-11-01 00:00", "2026-11-04 00:00")),
        ("2026-11-01..2026-11-03", (3, "2026-11-01 00:00", "2026-11-04 00:00")),
    ],
)
def test_period_windows(word, expected):
    """Each period is a run of points ending with the current one (calendar words in whole days)."""
    assert expected == span(periods.resolve(word, NOW))


def test_first_of_the_year():
    """On January 1st, ytd and mtd are today alone and yesterday is December 31st."""
    now = at(2027, 1, 1, 0, 0, 5)

    assert [1, 1, (24, "2026-12-31 00:00", "2027-01-01 00:00")] == [
        len(periods.resolve("ytd", now).points),
        len(periods.resolve("mtd", now).points),
        span(periods.resolve("yesterday", now)),
    ]


def test_time_zone_moves_day_boundaries():
    """With tz, today and the day words follow that zone's midnights."""
    window = periods.resolve("today", NOW, LA)  # 05:45 in Los Angeles

    assert ((6, "2026-11-28 00:00", "2026-11-28 06:00"), "2026-11-28 08:00") == (span(window, LA), iso(window.start))


def test_tzoffset_in_the_period_text():
    """'today|-0700' is today in UTC-7; hhmm offsets keep their minutes (+0530 is 5.5 hours)."""
    assert ("2026-11-28 07:00", "2026-11-27 18:30") == (
        iso(periods.resolve("today|-0700", NOW).start),
        iso(periods.resolve("today|+0530", NOW).start),
    )


def test_daylight_saving_days_have_their_real_length():
    """Days across a DST change are 23 or 25 hours long; points follow the zone's midnights."""
    window = periods.resolve("2026-11-01..2026-11-02", NOW, LA)  # US DST ended on November 1st

    assert [25 * 3600, 24 * 3600] == [end - start for start, end in window.points]


@pytest.mark.parametrize("word", ["fortnight", "1x:1d", "13/40/2026-11/03/2026", "2026-11-03..2026-11-01"])
def test_unknown_periods(word):
    """A period that cannot be read is an error naming it."""
    with pytest.raises(PeriodError) as caught:
        periods.resolve(word, NOW)

    assert word in str(caught.value)


def test_zone_names_and_offsets():
    """tz takes IANA names, tzoffset takes hhmm; anything else is an error naming the field."""
    assert (LA, datetime.timezone(datetime.timedelta(hours=-7))) == (
        periods.zone("America/Los_Angeles"),
        periods.zone(tzoffset="-0700"),
    )
    with pytest.raises(PeriodError, match="tz: unknown time zone"):
        periods.zone("Mars/Olympus")
    with pytest.raises(PeriodError, match="tzoffset"):
        periods.zone(tzoffset="7h")


def test_pieces_take_the_largest_aligned_stored_buckets():
    """A window is tiled by the largest aligned stored buckets: blocks of days, days, hours, minutes."""
    window = periods.resolve("thirty", NOW)

    found = periods.pieces(window.start, window.end, SCHEMA, NOW)

    assert [(4, "2026-10-30 00:00"), (8, "2026-11-03 00:00"), (16, "2026-11-11 00:00"), (2, "2026-11-27 00:00")] == [
        (p.size // DAY, iso(p.start)) for p in found if not p.unless_folded
    ]


def test_pieces_fall_back_to_hours_for_shifted_days():
    """A Los Angeles day is read as 24 hourly buckets (no UTC day bucket is aligned to it)."""
    start = at(2026, 11, 27, tz=LA)

    assert [(3600, start + 3600 * i) for i in range(24)] == [
        (p.size, p.start) for p in periods.pieces(start, start + DAY, SCHEMA, NOW) if not p.unless_folded
    ]


def test_the_recent_part_of_a_folded_bucket_is_also_read_from_finest_buckets():
    """
    A day bucket holds the minutes folded into it; the last ten minutes up to now are also
    read from minute buckets, each only while the pk's fold has not reached it.
    """
    day = NOW // DAY * DAY
    since, minute = (NOW - 600) // 60 * 60, NOW // 60 * 60

    found = periods.pieces(day, day + DAY, SCHEMA, NOW)

    assert [Piece(DAY, day, 60, since)] + [
        Piece(60, m, unless_folded=True) for m in range(since, minute + 60, 60)
    ] == found
    assert since - 60 == periods.fold_needed(found)


def test_pieces_from_where_the_fold_has_reached():
    """When the fold is further behind, the finest pieces go back to where it has reached, in time order."""
    day = NOW // DAY * DAY
    found = periods.pieces(day, day + DAY, SCHEMA, NOW)
    reach = NOW // 60 * 60 - 3600

    extended = periods.with_unfolded(found, reach + 60, 0)

    finest = [p.start for p in extended if p.unless_folded]
    assert (list(range(reach + 60, NOW // 60 * 60 + 60, 60)), reach, Piece(DAY, day, 60, reach + 60)) == (
        finest,
        periods.fold_needed(extended),
        extended[0],
    )


def test_a_bucket_entirely_in_the_past_needs_its_whole_fold():
    """A day before the last ten minutes has no finest pieces: the fold must have reached its last minute."""
    yesterday = NOW // DAY * DAY - DAY

    found = periods.pieces(yesterday, yesterday + DAY, SCHEMA, NOW)

    assert ([Piece(DAY, yesterday, 60, yesterday + DAY)], yesterday + DAY - 60) == (found, periods.fold_needed(found))


@pytest.mark.parametrize(
    "start, end, message",
    [
        (NOW // 60 * 60 - 3 * DAY, NOW // 60 * 60 - 3 * DAY + 60, "1m buckets are kept for 2d"),
        (NOW // 3600 * 3600 - 40 * DAY, NOW // 3600 * 3600 - 40 * DAY + 3600, "1h buckets are kept for 35d"),
        (NOW // DAY * DAY - 1200 * DAY, NOW // DAY * DAY, "1d buckets are kept for 3y"),
        (NOW // 60 * 60 + 30, NOW // 60 * 60 + 90, "no stored interval"),
    ],
)
def test_windows_the_buckets_cannot_answer(start, end, message):
    """A window the retained buckets cannot tile is an error that says why, never zeros."""
    with pytest.raises(PeriodError) as caught:
        periods.pieces(start, end, SCHEMA, NOW, "p")

    assert message in str(caught.value)
