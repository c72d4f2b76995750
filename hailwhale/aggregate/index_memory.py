"""
What a writer remembers of the index sets it wrote (children, child pks, metric names),
so that a flush of names seen a second ago does not write them again.

Every flush plans the index members of every key it writes; in a steady stream of the
same names nearly all are in the store already, and writing them costs a set addition
and an expiry check per tag and flush.  :class:`IndexMemory` drops from a plan the
members written within its ``refresh`` seconds; the store keeps index sets that much
longer than the data written with them (``INDEX_MARGIN`` in
:mod:`hailwhale.store.client`), so skipping a rewrite never lets an index expire before
its data.  Bounded: past ``most`` members it forgets everything and writes them again.
"""

import attrs

from hailwhale.aggregate.rollup import TagWrite, WritePlan
from hailwhale.model.paths import Path


class IndexMemory:
    def __init__(self, refresh: float, most: int):
        self._refresh = refresh
        self._most = most
        self._written: dict[tuple[Path, str, str], float] = {}  # (pk, key suffix, member) -> when planned

    def __len__(self) -> int:
        return len(self._written)

    def unwritten(self, plan: WritePlan, now: float) -> WritePlan:
        """``plan`` without the index members written within the refresh time; the rest are noted as written."""
        if len(self._written) > self._most:
            self._written.clear()
        written, stale = self._written, now - self._refresh
        writes: list[TagWrite] = []
        for write in plan.writes:
            if not write.sets:
                writes.append(write)
                continue
            pk, sets = write.pk, {}
            for suffix, members in write.sets.items():
                fresh = []
                for member in members:
                    key = (pk, suffix, member)
                    if written.get(key, stale) <= stale:
                        written[key] = now
                        fresh.append(member)
                if fresh:
                    sets[suffix] = fresh
            if sets or write.sums or write.levels or write.uniques or write.samples:
                writes.append(write._replace(sets=sets))
        return attrs.evolve(plan, writes=tuple(writes))
