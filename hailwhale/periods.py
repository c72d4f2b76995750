"""
Period words to windows of stored buckets, as of a given ``now`` (UTC).

A window is one stored interval and the starts of its buckets, oldest first, the
current (partial) bucket included.  A window the retained buckets cannot answer is an
error, never silent zeros.
"""

import datetime

import attrs

from hailwhale.fields import FieldError
from hailwhale.schema import DAY, Schema, SchemaError, format_duration, parse_duration

HOUR = 3600
MINUTE = 60
MAX_BUCKETS = 100_000

# word -> (preferred interval, number of buckets ending with the current one)
_ROLLING = {
    "hour": (MINUTE, 60),
    "day": (HOUR, 24),
    "24h": (HOUR, 24),
    "seven": (DAY, 7),
    "thirty": (DAY, 30),
    "year": (DAY, 365),
}
CALENDAR_WORDS = ("today", "yesterday", "wtd", "mtd", "ytd")
WORDS = tuple(_ROLLING) + CALENDAR_WORDS


class PeriodError(FieldError):
    def __init__(self, message: str):
        super().__init__("period", message, "bad_period")


@attrs.frozen
class Window:
    interval: int
    buckets: tuple[int, ...]


def resolve(text: str, now: float, schema: Schema) -> Window:
    """The window that period ``text`` names at ``now``."""
    word = text.strip()
    if word in _ROLLING:
        preferred, count = _ROLLING[word]
        interval = _stored_interval(schema, preferred, word)
        end = int(now // interval) * interval
        start = end - (count * preferred // interval - 1) * interval
    elif word in CALENDAR_WORDS:
        interval = _stored_interval(schema, HOUR if word in ("today", "yesterday") else DAY, word)
        start, end = _calendar(word, now, interval)
    elif ":" in word:
        interval_text, _, length_text = word.partition(":")
        try:
            interval, length = parse_duration(interval_text), parse_duration(length_text)
        except SchemaError as error:
            raise PeriodError(f"period {word!r}: {error}") from None
        if schema.resolution(interval) is None:
            raise PeriodError(f"period {word!r}: interval {interval_text} is not stored; stored intervals: {_stored(schema)}")
        end = int(now // interval) * interval
        start = end - (max(length // interval, 1) - 1) * interval
    else:
        raise PeriodError(f"unknown period {word!r}; use one of {', '.join(WORDS)} or interval:length like 1h:1d")
    if (end - start) // interval + 1 > MAX_BUCKETS:
        raise PeriodError(f"period {word!r} spans more than {MAX_BUCKETS} buckets")
    resolution = schema.resolution(interval)
    if resolution.expires_at(start) <= now:
        raise PeriodError(
            f"period {word!r} reaches back to {_iso(start)}, but {format_duration(interval)} buckets "
            f"are kept for {format_duration(resolution.retention)}"
        )
    return Window(interval, tuple(range(start, end + 1, interval)))


def _calendar(word: str, now: float, interval: int) -> tuple[int, int]:
    moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    today = int(midnight.timestamp())
    current = int(now // interval) * interval
    if word == "today":
        return today, current
    if word == "yesterday":
        return today - DAY, today - interval
    if word == "wtd":
        return today - moment.weekday() * DAY, current
    if word == "mtd":
        return int(midnight.replace(day=1).timestamp()), current
    return int(midnight.replace(month=1, day=1).timestamp()), current


def _stored_interval(schema: Schema, preferred: int, word: str) -> int:
    if schema.resolution(preferred) is not None:
        return preferred
    finer = [i for i in schema.intervals if i < preferred and preferred % i == 0]
    if not finer:
        raise PeriodError(f"period {word!r} needs {format_duration(preferred)} buckets or finer; stored intervals: {_stored(schema)}")
    return max(finer)


def _stored(schema: Schema) -> str:
    return ", ".join(format_duration(i) for i in schema.intervals)


def _iso(moment: int) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).isoformat()
