"""
The last level of each gauge series, for statsd's relative gauges (``+x``/``-x``).
"""

from collections import OrderedDict

import attrs

from hailwhale.model.events import Event


class GaugeMemory:
    """
    The last level of each gauge series, for statsd's relative gauges; bounded, forgetting
    the least recently set series first (a change to a forgotten series starts from 0,
    as it does for a series never seen, and after a restart).
    """

    def __init__(self, max_series: int):
        self._max = max_series
        self._levels: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self._levels)

    def settle(self, event: Event) -> Event:
        """``event`` with its levels made absolute, remembering them."""
        levels = dict(event.levels)
        for metric, value in levels.items():
            series = (event.pk, event.dimensions, metric)
            if event.relative_levels:
                value = levels[metric] = self._levels.get(series, 0.0) + value
            self._levels[series] = value
            self._levels.move_to_end(series)
            if len(self._levels) > self._max:
                self._levels.popitem(last=False)
        if not event.relative_levels:
            return event
        return attrs.evolve(event, levels=levels, relative_levels=False)
