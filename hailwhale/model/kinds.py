"""
What kind of number a metric holds, told by its name.

Most metrics are sums: buckets, children and roll-ups add up.  A metric named ``gauge``
or ending in ``.gauge`` is a level: a bucket holds the last value reported, and queries
over several buckets answer the latest one instead of adding them.  A metric named
``unique`` or ending in ``.unique`` counts distinct members (statsd sets), estimated
with HyperLogLog.
"""

import functools

SUM = "sum"
GAUGE = "gauge"
UNIQUE = "unique"


@functools.lru_cache(maxsize=4096)
def metric_kind(name: str) -> str:
    """The kind of the metric called ``name``: SUM, GAUGE or UNIQUE."""
    if name == GAUGE or name.endswith(".gauge"):
        return GAUGE
    if name == UNIQUE or name.endswith(".unique"):
        return UNIQUE
    return SUM
