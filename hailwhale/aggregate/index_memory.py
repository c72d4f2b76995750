"""
What a writer remembers of the index sets it wrote (children, child pks, metric names),
so that a flush of names seen a second ago does not write them again.

Every flush would plan the index members of every key it writes; in a steady stream of
the same names nearly all are in the store already, and writing them costs a set
addition and an expiry check per tag and flush.  The plan
(:func:`hailwhale.aggregate.rollup.plan_some`) asks :class:`IndexMemory` whether an
aggregation key's members (a function of its pk, its leaves and its metric names) were
written within ``refresh`` seconds, and leaves them out if so; the store keeps index
sets that much longer than the data written with them (``INDEX_MARGIN`` in
:mod:`hailwhale.store.client`), so skipping a rewrite never lets an index expire before
its data.  Bounded: past ``most`` keys it forgets everything and writes them again.
"""

from collections.abc import Hashable


class IndexMemory:
    def __init__(self, refresh: float, most: int):
        self._refresh = refresh
        self._most = most
        self._written: dict[Hashable, float] = {}  # what an index member derives from -> when planned

    def __len__(self) -> int:
        return len(self._written)

    def unwritten(self, key: Hashable, now: float) -> bool:
        """True if the index members of ``key`` were not written within the refresh time; noted as written now."""
        written = self._written
        if written.get(key, -float("inf")) > now - self._refresh:
            return False
        if len(written) >= self._most:
            written.clear()
        written[key] = now
        return True
