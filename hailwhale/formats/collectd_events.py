"""
From collectd value lists to events.

- pk: ``["collectd", host, plugin]``.
- dimensions: one path, ``[type, type_instance, plugin_instance]`` with the empty ones
  left out, so that a type (which fixes what the metrics mean) is the first level, its
  instances below it (``["cpu", "user", "0"]``, ``["if_octets", "eth0"]``).
- metrics: ``hits`` 1 per value list; each value named by its data source (types.db):
  a GAUGE as a level, ``<name>.gauge``; a COUNTER or DERIVE as its increase since the
  series' last sample (:mod:`hailwhale.formats.cumulative`); an ABSOLUTE as it is.
- time: the value list's own time (TIME or TIME_HR).

A packet's value lists are all checked before any counter state changes, so a packet
that cannot be taken leaves nothing behind.
"""

import math
from collections import Counter
from collections.abc import Iterable

from hailwhale.formats import typesdb
from hailwhale.formats.collectd import COUNTER, DERIVE, GAUGE, PacketError, ValueList
from hailwhale.formats.cumulative import Cumulative
from hailwhale.formats.typesdb import Types
from hailwhale.model import fields, kinds
from hailwhale.model.events import Event
from hailwhale.model.fields import MAX_METRIC, FieldError, Limits

PK_ROOT = "collectd"
CUMULATIVE = frozenset((COUNTER, DERIVE))
# The same identifiers come back every interval, and building their pk, dimensions and
# names is most of a value list's cost: keep them, emptied when this many are held.
MAX_SHAPES = 100_000


class ValueListEvents:
    def __init__(self, types: Types, limits: Limits, cumulative: Cumulative, skipped: Counter):
        self._types = types
        self._limits = limits
        self._cumulative = cumulative
        self._skipped = skipped  # reason -> values not counted
        self._shapes: dict[tuple, tuple] = {}

    def events(self, value_lists: Iterable[ValueList], now: float) -> list[Event]:
        """One event per value list, or :class:`PacketError` (and no state changed) if any is unfit."""
        shaped = [self._shape(value_list, now) for value_list in value_lists]
        found = []
        for value_list, identifier, pk, dimensions, names in shaped:
            sums, levels = self._metrics(value_list, identifier, names)
            found.append(Event(pk, dimensions, sums, value_list.time, levels=levels))
        return found

    def _shape(self, value_list: ValueList, now: float):
        if value_list.time > now + self._limits.max_future_seconds:
            raise PacketError("too_new", f"a value list more than {self._limits.max_future_seconds} s in the future")
        if self._limits.max_past_seconds is not None and value_list.time < now - self._limits.max_past_seconds:
            raise PacketError("too_old", f"a value list more than {self._limits.max_past_seconds} s in the past")
        identifier = (
            value_list.host,
            value_list.plugin,
            value_list.plugin_instance,
            value_list.type,
            value_list.type_instance,
        )
        kinds = tuple(kind for kind, _ in value_list.values)
        shape = self._shapes.get((identifier, kinds))
        if shape is None:
            shape = self._new_shape(value_list)
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
            self._shapes[identifier, kinds] = shape
        return (value_list, identifier, *shape)

    def _new_shape(self, value_list: ValueList) -> tuple:
        """The pk, dimensions and metric names of an identifier (and its values' types)."""
        if len(value_list.values) + 1 > self._limits.max_metrics:
            raise PacketError("too_many_metrics", f"{len(value_list.values)} values in one value list")
        path = [part for part in (value_list.type, value_list.type_instance, value_list.plugin_instance) if part]
        try:
            pk = fields.pk([PK_ROOT, value_list.host, value_list.plugin], self._limits)
            dimensions = fields.leaves(path, self._limits)
        except FieldError as error:
            raise PacketError(error.reason, str(error)) from None
        return pk, dimensions, metric_names(self._types, value_list)

    def _metrics(self, value_list: ValueList, identifier: tuple, names: tuple[str, ...]):
        """The sums (``hits``, increases, ABSOLUTEs) and the levels (GAUGEs) of one value list."""
        sums: dict[str, int | float] = {"hits": 1}
        levels: dict[str, float] = {}
        for index, ((kind, value), name) in enumerate(zip(value_list.values, names)):
            if kind in CUMULATIVE:
                increase = self._cumulative.increase((identifier, index), kind, int(value), value_list.time)
                if increase is None:
                    continue
                value = increase
            if not math.isfinite(value):
                self._skipped["not_finite"] += 1
            elif abs(value) > MAX_METRIC:
                self._skipped["out_of_range"] += 1
            else:
                (levels if kind == GAUGE else sums)[name] = value
        return sums, levels


def metric_names(types: Types, value_list: ValueList) -> tuple[str, ...]:
    """The metric name of each value: its data source's name, ``.gauge`` after a GAUGE's."""
    names = typesdb.data_source_names(types, value_list.type, len(value_list.values))
    return tuple(_metric_name(name, kind) for name, (kind, _) in zip(names, value_list.values))


def _metric_name(data_source: str, kind: int) -> str:
    if kind == GAUGE:
        return f"{data_source}.gauge"
    # hits is the value-list count, and the other kinds' names would change how it adds up
    return f"ds_{data_source}" if data_source == "hits" or kinds.metric_kind(data_source) != kinds.SUM else data_source
