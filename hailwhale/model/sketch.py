"""
Distributions that add up: a DDSketch-style sketch of values.

A value is counted in a logarithmic bucket: positive ``x`` in bucket
``ceil(log(x) / log(GAMMA))`` with ``GAMMA = (1 + ACCURACY) / (1 - ACCURACY)``, negative
values likewise by their magnitude, and values within :data:`TINY` of zero in one zero
bucket.  Every value of a bucket is within ``ACCURACY`` (1 %) of the bucket's
representative value, so any quantile read from the counts is within 1 % of the exact
quantile of the values counted.  Sketches merge by adding their counts, bucket by bucket:
over time buckets, roll-ups, pk prefixes and writers, exactly like the sums hailwhale
keeps (a sketch is a sorted set: member the bucket, score its count).

Buckets are named ``p<index>`` (positive), ``n<index>`` (negative) and ``z`` (zero).
Values from ``TINY`` to ``MAX_METRIC`` (1e-9 to 1e18) make at most about 3,100 buckets
per sign: a sketch is bounded whatever values it counts.
"""

import math
from collections.abc import Mapping

ACCURACY = 0.01
GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
TINY = 1e-9
RANK_SLACK = 1e-12  # counts weighted by 1/rate add up in floating point
ZERO = "z"


def bucket(value: float) -> str:
    """The sketch bucket counting ``value``."""
    magnitude = abs(value)
    if magnitude < TINY:
        return ZERO
    index = math.ceil(math.log(magnitude) / _LOG_GAMMA)
    return f"p{index}" if value > 0 else f"n{index}"


def representative(name: str) -> float:
    """The value a bucket stands for: within ``ACCURACY`` of every value it counts."""
    if name == ZERO:
        return 0.0
    magnitude = 2 * GAMMA ** int(name[1:]) / (GAMMA + 1)
    return magnitude if name[0] == "p" else -magnitude


def order(name: str) -> tuple[int, int]:
    """A sort key putting buckets in the order of their values."""
    if name == ZERO:
        return (0, 0)
    index = int(name[1:])
    return (1, index) if name[0] == "p" else (-1, -index)


def quantile(counts: Mapping[str, float], q: float) -> float:
    """
    The ``q`` quantile of the values counted, by nearest rank (the smallest value with at
    least ``q`` of the count at or below it; ``q`` 0 is the smallest), within ``ACCURACY``;
    0 for an empty sketch.
    """
    total = sum(counts.values())
    if total <= 0:
        return 0.0
    rank = q * total - RANK_SLACK * total
    seen = 0.0
    for name in sorted(counts, key=order):
        seen += counts[name]
        if seen >= rank:
            return representative(name)
    return representative(max(counts, key=order))
