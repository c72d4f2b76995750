"""
The roll-up schema: which bucket intervals are kept, and for how long.

Written graphite style, ``1m:2d,1h:35d,1d:3y``: interval:retention pairs.  Buckets are
aligned to the epoch, so every interval must divide a day, and each must be a multiple
of the finest (the daemon aggregates in the finest and derives the others at flush).
"""

import re

import attrs

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400, "y": 365 * 86400}
DAY = 86400
DEFAULT = "1m:2d,1h:35d,1d:3y"
BLOCK_LEVELS = 5  # the coarsest interval is also stored in aligned blocks of 2, 4, ... 32 intervals

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo|y)?\s*$")


class SchemaError(ValueError):
    pass


def parse_duration(text: str) -> int:
    """Seconds in ``text``: ``90``, ``90s``, ``5m``, ``1h``, ``2d``, ``1w``, ``1mo`` (30 d), ``3y`` (365 d)."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise SchemaError(f"{text!r} is not a duration like 90s, 5m, 1h, 2d, 1w, 1mo or 3y")
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


def format_duration(seconds: int) -> str:
    for unit in ("y", "d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


@attrs.frozen
class Resolution:
    interval: int
    retention: int

    def bucket(self, moment: float) -> int:
        """The epoch-aligned start of the bucket holding ``moment``."""
        return int(moment // self.interval) * self.interval

    def expires_at(self, bucket: int) -> int:
        """When a bucket's data is dropped: its end plus the retention."""
        return bucket + self.interval + self.retention


@attrs.frozen
class Schema:
    resolutions: tuple[Resolution, ...]

    @property
    def finest(self) -> Resolution:
        return self.resolutions[0]

    @property
    def intervals(self) -> tuple[int, ...]:
        return tuple(resolution.interval for resolution in self.resolutions)

    def resolution(self, interval: int) -> Resolution | None:
        for resolution in self.resolutions:
            if resolution.interval == interval:
                return resolution
        return None

    @property
    def blocks(self) -> tuple[Resolution, ...]:
        """
        Aligned blocks of 2, 4, ... 32 coarsest intervals, kept as long as the coarsest:
        written at flush, so that a long window reads a few blocks instead of every day.
        """
        coarsest = self.resolutions[-1]
        return tuple(Resolution(coarsest.interval << level, coarsest.retention) for level in range(1, BLOCK_LEVELS + 1))

    @property
    def stored(self) -> tuple[Resolution, ...]:
        """Every bucket size written, finest first."""
        return self.resolutions + self.blocks

    def longest_retention(self) -> int:
        """The longest retention: an event no older than this lands in at least one bucket still kept."""
        return max(r.retention for r in self.resolutions)

    def __str__(self) -> str:
        return ",".join(f"{format_duration(r.interval)}:{format_duration(r.retention)}" for r in self.resolutions)


def parse_schema(text: str) -> Schema:
    resolutions = []
    for part in text.split(","):
        interval_text, sep, retention_text = part.partition(":")
        if not sep:
            raise SchemaError(f"{part!r} is not interval:retention, e.g. 1m:2d")
        interval, retention = parse_duration(interval_text), parse_duration(retention_text)
        if DAY % interval:
            raise SchemaError(f"interval {interval_text.strip()} does not divide a day")
        if retention < interval:
            raise SchemaError(f"retention {retention_text.strip()} is shorter than its interval")
        resolutions.append(Resolution(interval, retention))
    resolutions.sort(key=lambda r: r.interval)
    intervals = [r.interval for r in resolutions]
    if len(set(intervals)) != len(intervals):
        raise SchemaError("an interval is listed twice")
    if any(interval % intervals[0] for interval in intervals):
        raise SchemaError("every interval must be a multiple of the finest")
    return Schema(tuple(resolutions))
