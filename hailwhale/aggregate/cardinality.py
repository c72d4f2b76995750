"""
The cardinality guard: a bound on the distinct children of every dimension of every pk.

Each dimension node an event counts under is a child of its parent (a dimension name is
a child of the root), under each pk prefix the event counts under.  The guard remembers,
per (pk prefix, parent), the names it has let through, up to ``max_children``; a new
name past that bound, under any of the event's pk prefixes, is folded into
:data:`OVERFLOW` together with everything below it.  So a sender inventing a million
values adds one ``_other`` child to the store, not a million, and a name let through once
stays let through (for as long as the daemon runs: the guard starts empty).  What the
guard remembers is bounded too: past ``max_tracked`` names in all, a name it would have to
remember is folded wherever it goes.
"""

from collections import Counter

from hailwhale.model.fields import Leaves
from hailwhale.model.paths import Path

OVERFLOW = "_other"
MEMO_SIZE = 1 << 16


class Cardinality:
    def __init__(self, max_children: int, max_tracked: int, memo_size: int = MEMO_SIZE):
        self._max_children = max_children
        self._max_tracked = max_tracked
        self._children: dict[tuple[Path, Path], set[str]] = {}
        # (pk, leaves) seen let through whole: they always will be, since nothing is forgotten
        self._passed: set[tuple[Path, Leaves]] = set()
        self._memo_size = memo_size
        self.tracked = 0  # names remembered, over every (pk prefix, parent)
        self.folded: Counter[str] = Counter()  # reason -> names folded into OVERFLOW

    def admit(self, pk: Path, leaves: Leaves) -> Leaves:
        """``leaves`` with every name past the bounds folded into OVERFLOW; ``leaves`` itself when none is."""
        if not leaves or (pk, leaves) in self._passed:
            return leaves
        prefixes = [pk[:length] for length in range(1, len(pk) + 1)]
        kept = [(leaf, self._leaf(prefixes, leaf)) for leaf in leaves]
        if all(before is after for before, after in kept):
            if len(self._passed) >= self._memo_size:
                self._passed.clear()
            self._passed.add((pk, leaves))
            return leaves
        return frozenset(after for _, after in kept)

    def _leaf(self, prefixes: list[Path], leaf: Path) -> Path:
        for depth, name in enumerate(leaf):
            if name == OVERFLOW:
                continue
            reason = self._place(prefixes, leaf[:depth], name)
            if reason is not None:
                self.folded[reason] += 1
                return leaf[:depth] + (OVERFLOW,)
        return leaf

    def _place(self, prefixes: list[Path], parent: Path, name: str) -> str | None:
        """Let ``name`` through under ``parent`` for every prefix, or say why not (remembering nothing then)."""
        new = []
        for prefix in prefixes:
            key = (prefix, parent)
            children = self._children.get(key)
            if children is None:
                new.append(key)
            elif name not in children:
                if len(children) >= self._max_children:
                    return "max_children"
                new.append(key)
        if not new:
            return None
        if self.tracked + len(new) > self._max_tracked:
            return "max_tracked"
        for key in new:
            self._children.setdefault(key, set()).add(name)
        self.tracked += len(new)
        return None
