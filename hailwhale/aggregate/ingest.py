"""
Where every input hands over events: parse, check, aggregate, count.

No IO and no per-line logging beyond a sampled, clipped note of bad lines: this runs
for every datagram on the reactor thread.  The datagrams read together are one run of
lines, which takes the quickest of these ways, each counting what reading the lines one
by one with :func:`hailwhale.formats.lines.parse_line` would:

1. every line was seen before in this minute (statsd traffic repeats the same lines over
   and over: ``page.views:1|c``): the run is only tallied, in C
   (:meth:`Accumulator.add_repeats`);
2. every line is a plain whole-number counter: one regular expression reads the distinct
   lines, and they are added pk by pk (:meth:`Ingest._whole_counters`);
3. line by line: a statsd line of sums seen before is looked up by its bytes (a bounded
   memo); a JSON line of the usual shape or a plain counter goes by the fast paths of
   :class:`hailwhale.formats.fast_lines.LineParser`; anything else the general way.
"""

from collections.abc import Callable

import attrs

from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.aggregate.cardinality import Cardinality
from hailwhale.aggregate.gauges import GaugeMemory
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.formats.fast_lines import LineParser
from hailwhale.model.events import Event
from hailwhale.model.fields import NO_LEAVES, FieldError, Leaves, Limits
from hailwhale.model.paths import Path

BAD_LINES_LOGGED_PER_MINUTE = 10
LOGGED_LINE_CLIP = 400
REMEMBERED_LINES = 10_000  # statsd lines of sums remembered parsed (then forgotten all at once)


class Ingest:
    def __init__(
        self,
        accumulator: Accumulator,
        stats: SelfStats,
        cardinality: Cardinality,
        limits: Limits,
        seconds: Callable[[], float],
        report_bad_line: Callable[[bytes, str], None],
        max_gauge_series: int = 100_000,
        levels_in_store: bool = False,
    ):
        """
        ``levels_in_store``: statsd's relative gauges (``+x``/``-x``) are left as changes,
        for the flush to apply to the level the store holds (so that several processes,
        and a process started again, agree); else they are applied here, to the levels
        this process remembers.
        """
        self.accumulator = accumulator
        self.gauges = None if levels_in_store else GaugeMemory(max_gauge_series)
        self.limits = limits
        self._parser = LineParser(limits)
        # statsd lines of sums seen, taken in whole (no name folded): line -> (pk, leaves, sums)
        self._known: dict[bytes, tuple[Path, Leaves, dict[str, float]]] = {}
        self._stats = stats
        self._cardinality = cardinality
        self.closed = False  # once the daemon is stopping: nothing more is taken in
        self._seconds = seconds
        self._report = report_bad_line
        self._log_window = 0.0
        self._logged_in_window = 0

    def datagram(self, data: bytes) -> None:
        """Count every line of one datagram; a bad line never stops the others."""
        self.datagrams([data])

    def datagrams(self, batch: list[bytes]) -> None:
        """Count every line of datagrams that arrived together (as one run of lines: no line spans two)."""
        self._stats.datagrams += len(batch)
        self.lines(batch)

    def lines(self, batch: list[bytes]) -> None:
        """Count every line of ``batch`` (datagrams, or a queue message's body), as one run of lines."""
        now = self._seconds()
        lines = batch[0].split(b"\n") if len(batch) == 1 else b"\n".join(batch).split(b"\n")
        if not lines[-1]:
            lines.pop()  # a datagram may end with a newline
        known: dict[bytes, tuple[Path, Leaves, dict[str, float]]]
        if self.closed:
            known = {}
        elif self.accumulator.add_repeats(lines, now):
            self._stats.lines_ok += len(lines)
            return
        elif self._whole_counters(lines, now):
            return
        else:
            known = self._known
        add_sums, note = self.accumulator.add_sums, self.accumulator.note_repeatable
        ok = 0
        for line in lines:
            seen = known.get(line)
            if seen is not None and add_sums(*seen, now):
                note(line, *seen, now)
                ok += 1
            elif line.strip():
                ok += self._line(line, now)
        self._stats.lines_ok += ok

    def _whole_counters(self, lines: list[bytes], now: float) -> bool:
        """
        Count ``lines`` if all are plain counters of whole numbers, pk by pk (whole numbers
        add up exactly in any order); whether they were.  Each distinct line is noted as
        repeatable, so that a run of them next time is only tallied.
        """
        counters = self._parser.whole_counters(lines)
        if counters is None:
            return False
        by_pk: dict = {}
        for _, pk, count, times in counters:
            counted = by_pk.get(pk)
            by_pk[pk] = (times, count * times) if counted is None else (counted[0] + times, counted[1] + count * times)
        ok = 0
        for pk, (times, total) in by_pk.items():
            if self.accumulator.add_sums(pk, NO_LEAVES, {"hits": times, "count": total}, now, events=times):
                ok += times
            else:
                self._stats.events_dropped["too_many_pending_keys"] += times
                self._stats.lines_bad["too_many_pending_keys"] += times
        self._stats.lines_ok += ok
        note = self.accumulator.note_repeatable
        for line, pk, count, _ in counters:
            note(line, pk, NO_LEAVES, {"hits": 1, "count": count}, now)
        return True

    def _line(self, line: bytes, now: float) -> bool:
        """Count one line the long way; whether it was taken in."""
        usual = self._parser.usual(line, now)
        if usual is not None:  # a JSON line of sums: no Event needed
            return self._take_sums(*usual)[0]
        counter = self._parser.counter(line)
        if counter is not None:  # a plain statsd counter: no Event needed, and the line may come again
            taken, whole = self._take_sums(*counter, now)
            if whole:
                self._remember(line, counter)
            return taken
        try:
            event, plain_sums = self._parser.unusual(line, now)
        except FieldError as error:
            self._stats.lines_bad[error.reason] += 1
            self._sample(line, str(error), now)
            return False
        reason, whole = self._take(event)
        if reason is not None:
            self._stats.lines_bad[reason] += 1
            return False
        if plain_sums and whole:
            self._remember(line, (event.pk, event.dimensions, event.metrics))
        return True

    def _remember(self, line: bytes, parts: tuple) -> None:
        """Remember the (pk, leaves, sums) a statsd line of sums, taken in whole, makes."""
        if len(self._known) >= REMEMBERED_LINES:
            self._known.clear()
        self._known[line] = parts

    def _take_sums(self, pk, leaves, sums, at) -> tuple[bool, bool]:
        """Aggregate an event of sums given by its parts: whether it was taken in (counting why not), and whole."""
        if self.closed:
            reason = "stopping"
        else:
            admitted = self._cardinality.admit(pk, leaves)
            if self.accumulator.add_sums(pk, admitted, sums, at):
                return True, admitted is leaves
            reason = "too_many_pending_keys"
        self._stats.events_dropped[reason] += 1
        self._stats.lines_bad[reason] += 1
        return False, False

    def _take(self, event: Event) -> tuple[str | None, bool]:
        """Aggregate one parsed event: the reason it was dropped (or None), and whether no name of it was folded."""
        if self.closed:
            reason = "stopping"
        else:
            bounded = self._bounded(event)
            if self.accumulator.add(self._settled(bounded)):
                self._count_members(event)
                return None, bounded is event
            reason = "too_many_pending_keys"
        self._stats.events_dropped[reason] += 1
        return reason, False

    def accept_all(self, batch: list[Event]) -> str | None:
        """Aggregate several events, all or none; the reason they were dropped, or None."""
        if self.closed:
            reason = "stopping"
        else:
            batch = [self._bounded(event) for event in batch]
            if self.accumulator.room_for(batch):
                for event in batch:
                    self.accumulator.add(self._settled(event))
                    self._count_members(event)
                return None
            reason = "too_many_pending_keys"
        self._stats.events_dropped[reason] += len(batch)
        return reason

    def _bounded(self, event: Event) -> Event:
        """
        ``event`` with its dimension names past the cardinality bounds folded (see
        :mod:`hailwhale.aggregate.cardinality`).
        """
        leaves = self._cardinality.admit(event.pk, event.dimensions)
        return event if leaves is event.dimensions else attrs.evolve(event, dimensions=leaves)

    def _settled(self, event: Event) -> Event:
        return self.gauges.settle(event) if event.levels and self.gauges is not None else event

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
