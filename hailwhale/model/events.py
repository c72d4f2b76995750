"""
The event model, and parsing of events from every textual input.

An event has a pk path, a set of dimension leaves, metrics (``hits`` included) and the
time it happened.  :func:`from_fields` reads one from named fields (a query string, a
JSON object, keyword arguments); :mod:`hailwhale.formats.lines` reads them from UDP lines.
"""

from collections.abc import Mapping
from urllib.parse import parse_qsl

import attrs

from hailwhale.model import fields
from hailwhale.model.fields import Leaves, Limits
from hailwhale.model.paths import Path


@attrs.frozen
class Event:
    """
    ``metrics`` add up; ``levels`` (gauges) keep the last value; ``members`` feed unique
    counts; ``samples`` feed distributions (sketch bucket -> count, per metric).
    """

    pk: Path
    dimensions: Leaves
    metrics: Mapping[str, int | float]
    at: float
    levels: Mapping[str, int | float] = attrs.field(factory=dict)
    members: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    relative_levels: bool = False  # statsd's "+x"/"-x" gauges: changes to the last level
    samples: Mapping[str, Mapping[str, float]] = attrs.field(factory=dict)


def from_fields(raw: Mapping[str, object], now: float, limits: Limits) -> Event:
    """An event from its named fields; ``metric`` and ``dimension`` are aliases."""
    metrics = fields.metric_values(_either(raw, "metrics", "metric"), limits)
    return Event(
        pk=fields.pk(raw.get("pk"), limits),
        dimensions=fields.leaves(_either(raw, "dimensions", "dimension"), limits),
        metrics=metrics.sums,
        at=fields.timestamp(raw.get("at"), now, limits),
        levels=metrics.levels,
        members=metrics.members,
        samples=metrics.samples,
    )


def _either(raw: Mapping[str, object], name: str, alias: str) -> object:
    value = raw.get(name)
    return raw.get(alias) if value is None else value


def query_fields(query: str) -> dict[str, str]:
    """The fields of a ``/count`` query string (the first value of each name wins)."""
    found: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        found.setdefault(key, value)
    return found
