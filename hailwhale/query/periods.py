"""
Periods: from words like ``thirty`` or ``1h:1d`` to windows of points, and from windows to
the stored buckets that answer them.

A window is a run of points (the x values of a series), each ``[start, end)`` in epoch
seconds.  Calendar words (``today``, ``seven``, ``mtd``, date ranges, ...) follow the
days of a time zone (UTC unless ``tz``/``|tzoffset`` says otherwise); rolling words
(``hour``, ``day``, ``interval:length``) are the last N stored buckets.  Each point, or a
whole window, is read as the fewest stored buckets that tile it exactly
(:func:`pieces`); a window that the retained buckets cannot tile is an error that says
so, never silent zeros.
"""

import datetime
import re
import zoneinfo

import attrs

from hailwhale.model.fields import FieldError
from hailwhale.model.schema import Schema, SchemaError, format_duration, parse_duration

HOUR = 3600
MINUTE = 60
MAX_POINTS = 10_000
MAX_PIECES = 100_000
UNFOLDED_SECONDS = 600  # how far back a query reads finest buckets that may not be folded yet
UTC = datetime.UTC

# rolling word -> (point interval, number of points ending with the current one)
_ROLLING = {"hour": (MINUTE, 60), "day": (HOUR, 24), "24h": (HOUR, 24), "hours": (HOUR, 24)}
# the original's bare intervals: each named its longest period (1d the year, 1h the day, 1m the hour)
_BARE_INTERVALS = {86400: (86400, 365), HOUR: (HOUR, 24), MINUTE: (MINUTE, 60)}
# calendar word -> number of days ending with today
_LAST_DAYS = {"seven": 7, "thirty": 30, "year": 365}
CALENDAR_WORDS = ("today", "yesterday", "wtd", "mtd", "ytd")
WORDS = tuple(_ROLLING) + tuple(_LAST_DAYS) + CALENDAR_WORDS
_US_RANGE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})\s*-\s*(\d{1,2})/(\d{1,2})/(\d{4})$")
_ISO_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})$")
_OFFSET = re.compile(r"^([+-]?)(\d{1,4})$")
_FLOAT_HOURS = re.compile(r"^([+-]?)(\d{1,2})\.(\d*)$")


class PeriodError(FieldError):
    def __init__(self, message: str, field: str = "period"):
        super().__init__(field, message, "bad_period")


@attrs.frozen
class Window:
    label: str
    boundaries: tuple[int, ...]  # point i is [boundaries[i], boundaries[i + 1])

    @property
    def start(self) -> int:
        return self.boundaries[0]

    @property
    def end(self) -> int:
        return self.boundaries[-1]

    @property
    def points(self) -> list[tuple[int, int]]:
        return list(zip(self.boundaries, self.boundaries[1:]))


@attrs.frozen
class Piece:
    """
    One stored bucket (or block): ``size`` seconds from epoch second ``start``.

    A bucket coarser than the finest is *folded*: the store adds each finest bucket into
    it once that bucket has closed (``finest`` is then the finest size).  A folded piece
    holds what is before ``folded_until``; its part from there on is read from the finest
    pieces that follow it, marked ``unless_folded``: each is read only if the pk's fold has
    not reached it yet (the store checks, see :func:`fold_needed`).
    """

    size: int
    start: int
    finest: int | None = None
    folded_until: int | None = None
    unless_folded: bool = False

    @property
    def end(self) -> int:
        return self.start + self.size


def zone(tz: str | None = None, tzoffset: str | None = None) -> datetime.tzinfo:
    """
    The time zone named by an IANA name (``America/Los_Angeles``) or an hhmm offset
    (``-0700``, ``+0530``), or the float hours east of UTC the original's callers sent
    (``-5.5`` is ``-0530``, ``0.0`` is UTC, ``7.0`` is ``+0700``).
    """
    if tz:
        try:
            return zoneinfo.ZoneInfo(tz.strip())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise PeriodError(f"unknown time zone {tz!r}; use an IANA name like America/Los_Angeles", "tz") from None
    if tzoffset not in (None, ""):
        hours_match = _FLOAT_HOURS.match(str(tzoffset).strip())
        if hours_match:
            sign_text, whole, fraction = hours_match.groups()
            minutes = round(float(f"0.{fraction or 0}") * 60)
            tzoffset = f"{sign_text}{int(whole) + minutes // 60:02d}{minutes % 60:02d}"
        match = _OFFSET.match(str(tzoffset).strip())
        if not match:
            raise PeriodError(f"tzoffset {tzoffset!r} is not hhmm like -0700 or +0530", "tzoffset")
        digits = match.group(2)
        hours, minutes = (int(digits), 0) if len(digits) <= 2 else (int(digits[:-2]), int(digits[-2:]))
        if hours > 14 or minutes >= 60:
            raise PeriodError(f"tzoffset {tzoffset!r} is out of range", "tzoffset")
        sign = -1 if match.group(1) == "-" else 1
        return datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))
    return UTC


def resolve(text: str, now: float, tz: datetime.tzinfo = UTC) -> Window:
    """The window that period ``text`` names at ``now``; ``text|hhmm`` overrides ``tz``."""
    label = text.strip()
    word, bar, offset = label.partition("|")
    word = word.strip()
    if bar:
        tz = zone(tzoffset=offset)
    if word in _ROLLING:
        interval, count = _ROLLING[word]
        return _rolling(label, interval, count, now)
    bare = _bare_interval(word)
    if bare is not None:
        return _rolling(label, *bare, now)
    if ":" in word:
        interval_text, _, length_text = word.partition(":")
        try:
            interval, length = parse_duration(interval_text), parse_duration(length_text)
        except SchemaError as error:
            raise PeriodError(f"{label!r}: {error}") from None
        return _rolling(label, interval, max(length // interval, 1), now)
    today = datetime.datetime.fromtimestamp(now, tz).date()
    if word == "today":
        return _hours(label, today, today, now, tz)
    if word == "yesterday":
        yesterday = today - datetime.timedelta(days=1)
        return _hours(label, yesterday, yesterday, None, tz)
    if word in _LAST_DAYS:
        return _days(label, today - datetime.timedelta(days=_LAST_DAYS[word] - 1), today, tz)
    if word == "wtd":
        return _days(label, today - datetime.timedelta(days=today.weekday()), today, tz)
    if word == "mtd":
        return _days(label, today.replace(day=1), today, tz)
    if word == "ytd":
        return _days(label, today.replace(month=1, day=1), today, tz)
    first, last = _date_range(word, label)
    if last < first:
        raise PeriodError(f"{label!r}: the range ends before it starts")
    return _days(label, first, last, tz)


def _bare_interval(word: str) -> tuple[int, int] | None:
    """The original's bare intervals (``1d``, ``1h``, ``1m``, seconds): (interval, points) of its longest period."""
    if not word or ":" in word or not (word[0].isdigit()):
        return None
    try:
        return _BARE_INTERVALS.get(parse_duration(word))
    except SchemaError:
        return None


def _date_range(word: str, label: str) -> tuple[datetime.date, datetime.date]:
    try:
        us = _US_RANGE.match(word)
        if us:
            m1, d1, y1, m2, d2, y2 = map(int, us.groups())
            return datetime.date(y1, m1, d1), datetime.date(y2, m2, d2)
        iso = _ISO_RANGE.match(word)
        if iso:
            return datetime.date.fromisoformat(iso.group(1)), datetime.date.fromisoformat(iso.group(2))
    except ValueError as error:
        raise PeriodError(f"{label!r}: {error}") from None
    raise PeriodError(
        f"unknown period {label!r}; use one of {', '.join(WORDS)}, interval:length like 1h:1d, "
        "or a date range like 11/01/2026-11/30/2026 or 2026-11-01..2026-11-30"
    )


def _rolling(label: str, interval: int, count: int, now: float) -> Window:
    if count > MAX_POINTS:
        raise PeriodError(f"{label!r} has more than {MAX_POINTS} points")
    end = (int(now // interval) + 1) * interval
    return Window(label, tuple(range(end - count * interval, end + 1, interval)))


def _midnight(day: datetime.date, tz: datetime.tzinfo) -> int:
    return int(datetime.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def _day_after(day: datetime.date, days: int = 1) -> datetime.date:
    try:
        return day + datetime.timedelta(days=days)
    except OverflowError:
        raise PeriodError(f"{day.isoformat()} is too close to the end of the calendar") from None


def _days(label: str, first: datetime.date, last: datetime.date, tz: datetime.tzinfo) -> Window:
    count = (last - first).days + 1
    if count > MAX_POINTS:
        raise PeriodError(f"{label!r} has more than {MAX_POINTS} points")
    return Window(label, tuple(_midnight(_day_after(first, i), tz) for i in range(count + 1)))


def _hours(label: str, first: datetime.date, last: datetime.date, now: float | None, tz: datetime.tzinfo) -> Window:
    start, end = _midnight(first, tz), _midnight(_day_after(last), tz)
    if now is not None:
        end = min(end, start + (int((now - start) // HOUR) + 1) * HOUR)
    return Window(label, tuple(range(start, end, HOUR)) + (end,))


def pieces(start: int, end: int, schema: Schema, now: float, label: str = "") -> list[Piece]:
    """
    The fewest stored buckets (within retention) that tile ``[start, end)`` exactly, taking
    the largest aligned one at each step; each folded bucket that reaches the last
    :data:`UNFOLDED_SECONDS` is followed by the finest buckets of that part (:class:`Piece`).
    """
    found: list[Piece] = []
    finest = schema.finest.interval
    sizes = sorted(schema.stored, key=lambda r: -r.interval)
    moment = start
    while moment < end:
        for resolution in sizes:
            size = resolution.interval
            if moment % size == 0 and moment + size <= end and resolution.expires_at(moment) > now:
                found.append(Piece(size, moment, finest if size > finest else None))
                moment += size
                break
        else:
            raise PeriodError(_untileable(label, moment, end, schema, now))
        if len(found) > MAX_PIECES:
            raise PeriodError(f"{label!r} needs more than {MAX_PIECES} stored buckets")
    since = int((now - UNFOLDED_SECONDS) // finest) * finest
    return with_unfolded(found, since, int(now // finest) * finest + finest)


def with_unfolded(tiled: list[Piece], since: int, until: int) -> list[Piece]:
    """
    ``tiled`` with each folded piece holding what is before ``since`` (or all of it, if it
    ends before) and followed by the finest pieces of its part within ``[since, until)``:
    what a query reads when the pk's fold may not have reached ``since`` yet.  Unfolded
    pieces already there are kept; a folded piece never goes back to holding more.
    """
    found: list[Piece] = []
    for piece in tiled:
        if piece.unless_folded:
            found.append(piece)
            continue
        if piece.finest is None:
            found.append(piece)
            continue
        held = min(max(since, piece.start), piece.end)
        if piece.folded_until is not None:
            held = min(held, piece.folded_until)
        found.append(attrs.evolve(piece, folded_until=held))
        last = min(piece.end, until) if piece.folded_until is None else piece.folded_until
        found += [Piece(piece.finest, moment, unless_folded=True) for moment in range(held, last, piece.finest)]
    return found


def fold_needed(pieces: list[Piece]) -> int | None:
    """
    The latest finest bucket the pk's fold must have reached for ``pieces`` to answer
    exactly (each folded piece holds everything before its ``folded_until``); None if no
    piece needs anything folded.
    """
    needed = [
        piece.folded_until - piece.finest
        for piece in pieces
        if piece.finest is not None and piece.folded_until is not None and piece.folded_until > piece.start
    ]
    return max(needed) if needed else None


def _untileable(label: str, moment: int, end: int, schema: Schema, now: float) -> str:
    aligned = [r for r in schema.resolutions if moment % r.interval == 0 and moment + r.interval <= end]
    when = datetime.datetime.fromtimestamp(moment, UTC).isoformat()
    if not aligned:
        return (
            f"{label!r} starts or ends at {when}, which no stored interval "
            f"({', '.join(format_duration(i) for i in schema.intervals)}) is aligned to"
        )
    longest = aligned[-1]
    return (
        f"{label!r} reaches back to {when}, but {format_duration(longest.interval)} buckets "
        f"are kept for {format_duration(longest.retention)}"
    )
