"""
Where every input hands over events: parse, check, aggregate, count.

No IO and no per-line logging beyond a sampled, clipped note of bad lines: this runs
for every datagram on the reactor thread.
"""

from collections.abc import Callable

from hailwhale import lines
from hailwhale.accumulator import Accumulator
from hailwhale.events import Event
from hailwhale.fields import FieldError, Limits
from hailwhale.schema import Schema
from hailwhale.selfstats import SelfStats
from hailwhale.statsd import GaugeMemory

BAD_LINES_LOGGED_PER_MINUTE = 10
LOGGED_LINE_CLIP = 400


class Ingest:
    def __init__(
        self,
        accumulator: Accumulator,
        stats: SelfStats,
        schema: Schema,
        limits: Limits,
        seconds: Callable[[], float],
        report_bad_line: Callable[[bytes, str], None],
        max_gauge_series: int = 100_000,
    ):
        self.accumulator = accumulator
        self.gauges = GaugeMemory(max_gauge_series)
        self.limits = limits
        self._stats = stats
        self._life = schema.longest_life()
        self._seconds = seconds
        self._report = report_bad_line
        self._log_window = 0.0
        self._logged_in_window = 0

    def datagram(self, data: bytes) -> None:
        """Count every line of one datagram; a bad line never stops the others."""
        self._stats.datagrams += 1
        now = self._seconds()
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                event = lines.parse_line(line, now, self.limits)
            except FieldError as error:
                self._stats.lines_bad[error.reason] += 1
                self._sample(line, str(error), now)
                continue
            reason = self.accept(event, now)
            if reason is None:
                self._stats.lines_ok += 1
            else:
                self._stats.lines_bad[reason] += 1

    def too_old(self, event: Event, now: float) -> bool:
        """Whether every bucket ``event`` would go in is already past its retention."""
        return event.at + self._life <= now

    def accept(self, event: Event, now: float) -> str | None:
        """Aggregate one parsed event; the reason it was dropped, or None."""
        if self.too_old(event, now):
            reason = "too_old"
        elif not self.accumulator.add(self._settled(event)):
            reason = "too_many_pending_keys"
        else:
            self._count_members(event)
            return None
        self._stats.events_dropped[reason] += 1
        return reason

    def accept_all(self, batch: list[Event], now: float) -> str | None:
        """Aggregate several events, all or none; the reason they were dropped, or None."""
        if any(self.too_old(event, now) for event in batch):
            reason = "too_old"
        elif not self.accumulator.room_for(batch):
            reason = "too_many_pending_keys"
        else:
            for event in batch:
                self.accumulator.add(self._settled(event))
                self._count_members(event)
            return None
        self._stats.events_dropped[reason] += len(batch)
        return reason

    def _settled(self, event: Event) -> Event:
        return self.gauges.settle(event) if event.levels else event

    def _count_members(self, event: Event) -> None:
        if event.members:
            self._stats.unique_members_dropped = self.accumulator.members_dropped

    def count_http(self, accepted: int) -> None:
        self._stats.http_events_ok += accepted

    def count_http_error(self, reason: str) -> None:
        self._stats.http_bad_requests[reason] += 1

    def _sample(self, line: bytes, message: str, now: float) -> None:
        if now - self._log_window >= 60:
            self._log_window, self._logged_in_window = now, 0
        if self._logged_in_window < BAD_LINES_LOGGED_PER_MINUTE:
            self._logged_in_window += 1
            self._report(line[:LOGGED_LINE_CLIP], message)
