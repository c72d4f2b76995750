"""
Cumulative counters turned into increments: what a COUNTER or DERIVE rose by since the
series' last sample.

The last (type, value, time) of each series is remembered, the least recently updated
series forgotten first beyond ``max_series``.  The rules, counted by outcome:

- ``first_sample``: a series seen for the first time (or again after being forgotten, or
  with another data-source type) yields nothing; its value is the base for the next one.
- ``stale``: a sample no newer than the last one (a duplicate or reordered datagram)
  yields nothing and is not remembered, so it cannot count twice.
- ``wrap``: a COUNTER below its last value wrapped around, as in collectd: at 2^32 if the
  last value fitted in 32 bits, else at 2^64.
- ``reset``: a DERIVE below its last value restarted (types.db gives DERIVE types a
  minimum of 0); that sample yields nothing and is the new base.
"""

from collections import Counter, OrderedDict
from collections.abc import Hashable

from hailwhale.formats.collectd import COUNTER

_WRAP_32 = 1 << 32
_WRAP_64 = 1 << 64


class Cumulative:
    def __init__(self, max_series: int, outcomes: Counter):
        self._max = max_series
        self._last: OrderedDict[Hashable, tuple[int, int, float]] = OrderedDict()
        self._outcomes = outcomes

    def __len__(self) -> int:
        return len(self._last)

    def increase(self, series: Hashable, kind: int, value: int, at: float) -> int | None:
        """How much the COUNTER or DERIVE ``series`` rose to ``value`` at ``at``; None if unknown."""
        last = self._last.get(series)
        if last is not None and last[0] == kind:
            _, previous, previous_at = last
            if at <= previous_at:
                self._outcomes["stale"] += 1
                return None
            self._last.move_to_end(series)
            self._last[series] = (kind, value, at)
            if value >= previous:
                return value - previous
            if kind == COUNTER:
                self._outcomes["wrap"] += 1
                return (_WRAP_32 if previous < _WRAP_32 else _WRAP_64) - previous + value
            self._outcomes["reset"] += 1
            return None
        if last is not None:
            self._last.move_to_end(series)
        elif len(self._last) >= self._max:
            self._last.popitem(last=False)
            self._outcomes["evicted"] += 1
        self._last[series] = (kind, value, at)
        self._outcomes["first_sample"] += 1
        return None
