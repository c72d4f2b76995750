"""
Which pk tags have finest buckets to fold into the coarser sizes, and up to where.

A flush writes finest buckets only; the store folds each into the coarser sizes once it
has closed (``lua/fold.lua``).  :class:`FoldSchedule` remembers, per tag, the oldest and
newest finest bucket written and not yet folded, and says which tags are due: those whose
oldest such bucket closed at least ``grace`` seconds ago (by then the flushes that carry
its events are done).  Nothing is lost if it forgets a tag (a restart): the store keeps
its notes, and a scan finds them (:meth:`recovered`).
"""

from collections.abc import Iterable, Mapping


class FoldSchedule:
    def __init__(self, finest: int, grace: float):
        self._finest = finest
        self._grace = grace
        self._pending: dict[str, tuple[int, int]] = {}  # tag -> (oldest, newest) finest bucket not folded

    def __len__(self) -> int:
        return len(self._pending)

    def written(self, buckets: Mapping[str, tuple[int, int]]) -> None:
        """Tags just written, each with the oldest and newest finest bucket it was written in."""
        for tag, (oldest, newest) in buckets.items():
            known = self._pending.get(tag)
            self._pending[tag] = (oldest, newest) if known is None else (min(known[0], oldest), max(known[1], newest))

    def recovered(self, tags: Iterable[str]) -> None:
        """Tags found with buckets noted and not folded (after a restart): due at once."""
        self.written(dict.fromkeys(tags, (-1, -1)))

    def target(self, now: float) -> int:
        """The latest finest bucket closed at least ``grace`` seconds before ``now``."""
        return int((now - self._grace) // self._finest) * self._finest - self._finest

    def due(self, target: int) -> list[str]:
        """The tags with a bucket up to ``target`` not folded yet."""
        return [tag for tag, (oldest, _) in self._pending.items() if oldest <= target]

    def folded(self, tags: Iterable[str], target: int) -> None:
        """``tags`` are folded up to ``target``: only their newer buckets, if any, are left."""
        for tag in tags:
            known = self._pending.get(tag)
            if known is None:
                continue
            if known[1] > target:
                self._pending[tag] = (target + self._finest, known[1])
            else:
                del self._pending[tag]
