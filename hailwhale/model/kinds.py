"""
What kind of number a metric holds, told by its name.

Most metrics are sums: buckets, children and roll-ups add up.  A metric named ``gauge``
or ending in ``.gauge`` is a level: a bucket holds the last value reported, and queries
over several buckets answer the latest one instead of adding them.  A metric named
``unique`` or ending in ``.unique`` counts distinct members (statsd sets), estimated
with HyperLogLog.  A metric named ``dist`` or ending in ``.dist`` is a distribution of
values (statsd timers and histograms), kept as a mergeable sketch (:mod:`hailwhale.model.sketch`)
and read as quantiles: ``latency.dist:p99``, ``:p50``, ``:p999``, ``:min``, ``:max``.
"""

import functools
import re

SUM = "sum"
GAUGE = "gauge"
UNIQUE = "unique"
DISTRIBUTION = "dist"
QUANTILE = "quantile"  # a quantile of a distribution, as read: ``latency.dist:p99``

_QUANTILE = re.compile(r"^(.+):(p\d+(?:\.\d+)?|min|max|median)$")
NAMED_QUANTILES = {"min": 0.0, "median": 0.5, "max": 1.0}


@functools.lru_cache(maxsize=4096)
def metric_kind(name: str) -> str:
    """The kind of the metric called ``name``: SUM, GAUGE, UNIQUE, DISTRIBUTION or (when read) QUANTILE."""
    if name == GAUGE or name.endswith(".gauge"):
        return GAUGE
    if name == UNIQUE or name.endswith(".unique"):
        return UNIQUE
    if name == DISTRIBUTION or name.endswith(".dist"):
        return DISTRIBUTION
    if quantile_of(name) is not None:
        return QUANTILE
    return SUM


@functools.lru_cache(maxsize=4096)
def quantile_of(name: str) -> tuple[str, float] | None:
    """
    ``(distribution, q)`` for a quantile read like ``latency.dist:p99`` (q 0.99): ``:pNN``
    is NN per cent (``:p5`` 5 %, ``:p50`` 50 %), with more digits the fraction they write
    (``:p999`` 0.999, ``:p9999`` 0.9999) or a decimal point (``:p99.9``); ``:min``,
    ``:median`` and ``:max``.  None for any other name.
    """
    match = _QUANTILE.match(name)
    if match is None or metric_kind(match.group(1)) != DISTRIBUTION:
        return None
    base, written = match.groups()
    if written in NAMED_QUANTILES:
        return base, NAMED_QUANTILES[written]
    digits = written[1:]
    if "." in digits:
        q = round(float(digits) / 100, 12)
    elif len(digits) <= 2:
        q = int(digits) / 100
    else:
        q = int(digits) / 10 ** len(digits)
    return (base, q) if 0 <= q <= 1 else None
