"""
The last level of each gauge series, for statsd's relative gauges (``+x``/``-x``): kept in
the process (:class:`GaugeMemory`), or in the store, where a flush sets or changes each
series' level (:func:`level_series`, then :func:`settled` with what the store answered).
"""

import json
from collections import OrderedDict
from collections.abc import Collection, Mapping

import attrs

from hailwhale.aggregate.rollup import AggregationKey
from hailwhale.model import keys, kinds
from hailwhale.model.events import Event
from hailwhale.model.paths import encode


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


Step = tuple[AggregationKey, str, int, bool, float]  # (key, metric, stamp, is a change, value)


def level_series(
    levels: Mapping[AggregationKey, Mapping[str, tuple[int, float]]],
    relative: Mapping[AggregationKey, Collection[str]],
) -> dict[str, list[tuple[str, list[Step]]]]:
    """
    A batch's statsd gauges (the metric ``gauge``, the only one a change can be sent for)
    as the store's level series (pk, leaves, metric) they set or change, by pk tag: each
    series' name and its steps, in bucket order (then arrival order).  Other gauges
    (collectd's ``<data source>.gauge``) need no level in the store.
    """
    by_series: dict[tuple, list[tuple[int, Step]]] = {}
    for key, metrics in levels.items():
        pk, leaves, bucket = key
        changes = relative.get(key, ())
        for metric, (stamp, value) in metrics.items():
            if metric != kinds.GAUGE:
                continue
            by_series.setdefault((pk, leaves, metric), []).append(
                (bucket, (key, metric, stamp, metric in changes, value))
            )
    found: dict[str, list[tuple[str, list[Step]]]] = {}
    for (pk, leaves, metric), steps in by_series.items():
        steps.sort(key=lambda step: (step[0], step[1][2]))
        name = json.dumps([metric, sorted(encode(leaf) for leaf in leaves)], separators=(",", ":"))
        found.setdefault(keys.tag(pk), []).append((name, [step for _, step in steps]))
    return found


def settled(
    levels: Mapping[AggregationKey, Mapping[str, tuple[int, float]]],
    series: Mapping[str, list[tuple[str, list[Step]]]],
    results: Mapping[str, list[list[float]]],
) -> dict[AggregationKey, dict[str, tuple[int, float]]]:
    """``levels`` with each step's value replaced by the level the store worked out for it (``results``, by tag)."""
    found = {key: dict(metrics) for key, metrics in levels.items()}
    for tag, named in series.items():
        for (_, steps), values in zip(named, results[tag], strict=True):
            for (key, metric, stamp, _, _), value in zip(steps, values, strict=True):
                found[key][metric] = (stamp, value)
    return found
