"""
The in-memory aggregation between flushes: the one mutable object of the core.

Events add up per (pk, dimension leaves, finest bucket); :meth:`Accumulator.swap` hands
the flusher an immutable :class:`Batch` and starts afresh, so nothing idles in memory.
Sums add; a level (gauge) keeps its last value, stamped with the event's arrival number
so that the flush can tell which of several keys rolling up to one node spoke last;
members of unique counts collect in sets, bounded per key; the values of distributions
add up as sketch counts (bounded by the sketch's buckets, see :mod:`hailwhale.model.sketch`).

Memory per pending key is kept small: a key is held flat, ``(bucket, leaves, *pk)``, and
its sums are one tuple, ``(names, total, total, ...)``, replaced as they add up, whose
tuple of metric names is shared by every key of the same metrics; a new key shares its pk's names and bucket
number with the keys before it (bounded memos).  :class:`Totals` shows the batch as
``(pk, leaves, bucket) -> {metric: total}``.

Lines that come again and again (statsd's ``page.views:1|c``) need not be added one by
one: once a line has been added as an event of whole-number sums, it can be noted
(:meth:`Accumulator.note_repeatable`), and a run of noted lines in the same finest bucket
is only tallied (:meth:`Accumulator.add_repeats`, in C, by ``Counter.update``); the tally
is added to the keys' totals at the next swap or change of bucket.  Whole numbers add up
exactly in any order, so the totals are the same as if each line had been added in turn.
The notes outlive a swap (not a change of bucket): a name sent once per flush interval is
read once a minute, and tallied the rest of the time.
"""

from collections import Counter
from collections.abc import ItemsView, Iterator, Mapping
from operator import add

import attrs

from hailwhale.aggregate.rollup import AggregationKey
from hailwhale.model.events import Event
from hailwhale.model.fields import Leaves
from hailwhale.model.paths import Path

MAX_REPEATABLE = 1 << 17  # distinct lines noted at once
MEMO_SIZE = 4096  # names and metric-name tuples shared at once (then forgotten all at once)
WHOLE = float(1 << 20)  # a repeated value at most this large stays exact over 2**33 repeats

Entry = tuple  # (metric names (a tuple), then the total of each)
FlatKey = tuple  # (bucket, leaves, *pk)


def _flat(pk: Path, leaves: Leaves, bucket: int) -> FlatKey:
    return (bucket, leaves) + pk


Noted = dict[bytes, tuple[FlatKey, tuple[str, ...], tuple[float, ...]]]  # line -> (key, metric names, sums)


def _settle(entries: dict[FlatKey, Entry], repeats: Mapping[bytes, int], noted: Noted) -> None:
    """Add the tallied ``repeats`` of noted lines to their entries."""
    for line, times in repeats.items():
        key, _, values = noted[line]
        entry = list(entries[key])
        for index, value in enumerate(values, 1):  # a line's sums are the first metrics of its entry
            entry[index] += value * times
        entries[key] = tuple(entry)


class Totals(Mapping):
    """
    A batch's entries as ``(pk, leaves, bucket) -> {metric: total}``, each made on demand
    from its compact entry; the repeats tallied for them are added on first reading (in the
    flush's thread, not while the swap holds the daemon's event loop).
    """

    def __init__(
        self, entries: dict[FlatKey, Entry], repeats: Mapping[bytes, int] | None = None, noted: Noted | None = None
    ):
        self._entries = entries
        self._unsettled = (repeats, noted) if repeats and noted is not None else None

    def _settled(self) -> dict[FlatKey, Entry]:
        if self._unsettled is not None:
            repeats, noted = self._unsettled
            self._unsettled = None
            _settle(self._entries, repeats, noted)
        return self._entries

    def __getitem__(self, key: AggregationKey) -> dict[str, float]:
        entry = self._settled()[_flat(*key)]
        return dict(zip(entry[0], entry[1:]))

    def __iter__(self) -> Iterator[AggregationKey]:
        return ((flat[2:], flat[1], flat[0]) for flat in self._settled())

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> "_TotalsItems":
        return _TotalsItems(self)

    def __repr__(self) -> str:
        return f"Totals({dict(self.items())!r})"


class _TotalsItems(ItemsView):
    """The entries with their totals, without looking each key up again (a flush takes them this way)."""

    _mapping: Totals

    def __iter__(self) -> Iterator[tuple[AggregationKey, dict[str, float]]]:
        for flat, entry in self._mapping._settled().items():
            yield (flat[2:], flat[1], flat[0]), dict(zip(entry[0], entry[1:]))


@attrs.frozen
class Batch:
    seq: int
    entries: Mapping[AggregationKey, Mapping[str, float]]
    events: int
    levels: Mapping[AggregationKey, Mapping[str, tuple[int, float]]] = attrs.field(factory=dict)
    members: Mapping[AggregationKey, Mapping[str, set[str]]] = attrs.field(factory=dict)
    samples: Mapping[AggregationKey, Mapping[str, Mapping[str, float]]] = attrs.field(factory=dict)
    # the gauges of ``levels`` that are changes to the series' level in the store (statsd's +x/-x), by key
    relative: Mapping[AggregationKey, set[str]] = attrs.field(factory=dict)


class Accumulator:
    def __init__(self, finest_interval: int, max_keys: int, max_members_per_key: int = 100_000):
        self._interval = finest_interval
        self._max_keys = max_keys
        self._max_members = max_members_per_key
        self._entries: dict[FlatKey, Entry] = {}
        self._levels: dict[AggregationKey, dict[str, tuple[int, float]]] = {}
        self._relative: dict[AggregationKey, set[str]] = {}
        self._members: dict[AggregationKey, dict[str, set[str]]] = {}
        self._samples: dict[AggregationKey, dict[str, dict[str, float]]] = {}
        self._sketch_buckets = 0  # distinct (key, distribution, sketch bucket) held
        self._events = 0
        self._stamp = 0
        self.events_added = 0  # since the start, swapped out or not
        self.next_seq = 1
        self.members_dropped = 0
        self._shared: dict = {}  # names and metric-name tuples, to share one copy of each
        self._bucket = 0  # the last bucket number used, to share it
        # line -> (key, its metric names, its sums in that order)
        self._repeatable: Noted = {}  # replaced, never cleared: a swapped batch still reads it
        self._repeats: Counter[bytes] = Counter()  # noted line -> times it came again, not yet in its entry
        self._swapped_keys: set[FlatKey] = set()  # keys of noted lines a swap took away and no repeat made again
        self._repeat_bucket: int | None = None

    def add(self, event: Event) -> bool:
        """
        Add ``event``; False when it would need a new key beyond the bound (nothing added).
        A distribution's sketch buckets count towards the bound like keys: each is an entry
        held until the flush.
        """
        key = self._key(event.pk, event.dimensions, event.at)
        if event.samples and self._new_sketch_buckets(key, event.samples) + self.pending_keys >= self._max_keys:
            return False
        if not self._add_to(_flat(*key), event.metrics):
            return False
        if event.levels:
            self._stamp += 1
            levels = self._levels.setdefault(key, {})
            for metric, value in event.levels.items():
                if event.relative_levels:  # a change: to the level held for this key, else to the store's
                    held = levels.get(metric)
                    if held is not None:
                        value += held[1]
                    else:
                        self._relative.setdefault(key, set()).add(metric)
                elif key in self._relative:
                    self._relative[key].discard(metric)
                levels[metric] = (self._stamp, value)
        if event.members:
            self._add_members(key, event.members)
        if event.samples:
            counts_by_metric = self._samples.setdefault(key, {})
            for metric, counts in event.samples.items():
                found = counts_by_metric.setdefault(metric, {})
                for name, count in counts.items():
                    if name not in found:
                        self._sketch_buckets += 1
                    found[name] = found.get(name, 0.0) + count
        self._events += 1
        self.events_added += 1
        return True

    def add_sums(self, pk: Path, leaves: Leaves, sums: Mapping[str, float], at: float, events: int = 1) -> bool:
        """:meth:`add` for an event of sums only, given by its parts (or for ``events`` events, summed)."""
        key = (int(at // self._interval) * self._interval, leaves) + pk
        entry = self._entries.get(key)
        if entry is not None and entry[0] == tuple(sums):  # the usual case: a key seen before, the same metrics
            self._entries[key] = (entry[0], *map(add, entry[1:], sums.values()))
        elif not self._add_to(key, sums):
            return False
        self._events += events
        self.events_added += events
        return True

    def _key(self, pk: Path, leaves: Leaves, at: float) -> AggregationKey:
        return (pk, leaves, int(at // self._interval) * self._interval)

    def _add_to(self, key: FlatKey, sums: Mapping[str, float]) -> bool:
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) + self._sketch_buckets >= self._max_keys:
                return False
            bucket, leaves, *pk = key
            if bucket == self._bucket:
                bucket = self._bucket  # the same number, one object
            self._bucket = bucket
            key = (bucket, leaves, *map(self._share, pk))
            self._entries[key] = (self._share(tuple(sums)), *sums.values())
        elif entry[0] == tuple(sums):
            self._entries[key] = (entry[0], *map(add, entry[1:], sums.values()))
        else:
            totals = dict(zip(entry[0], entry[1:]))
            for metric, value in sums.items():
                totals[metric] = totals.get(metric, 0) + value
            # new metrics come last: the others keep their place
            self._entries[key] = (self._share(tuple(totals)), *totals.values())
        return True

    def _share(self, value):
        """One copy of equal names and metric-name tuples (bounded)."""
        found = self._shared.get(value)
        if found is None:
            if len(self._shared) >= MEMO_SIZE:
                self._shared.clear()
            found = self._shared[value] = value
        return found

    def note_repeatable(self, line: bytes, pk: Path, leaves: Leaves, sums: Mapping[str, float], at: float) -> None:
        """
        Note that ``line``, just added as the event of ``sums`` under ``pk`` and ``leaves`` at
        ``at``, makes that same event whenever it comes again in this bucket (see
        :meth:`add_repeats`); lines of values that are not small whole numbers are not noted.
        """
        bucket = int(at // self._interval) * self._interval
        if bucket == self._repeat_bucket and (line in self._repeatable or len(self._repeatable) >= MAX_REPEATABLE):
            return
        if bucket != self._repeat_bucket:
            self._settle_repeats()
            self._repeatable = {}
            self._swapped_keys.clear()
            self._repeat_bucket = bucket
        key = _flat(pk, leaves, bucket)
        entry = self._entries.get(key)
        if entry is None or len(self._repeatable) >= MAX_REPEATABLE or entry[0][: len(sums)] != tuple(sums):
            return
        if all(-WHOLE <= value <= WHOLE and float(value).is_integer() for value in sums.values()):
            self._repeatable[line] = (key, entry[0][: len(sums)], tuple(sums.values()))

    def add_repeats(self, lines: list[bytes], at: float) -> bool:
        """
        Add the events of ``lines`` at ``at`` if every one of them is a line noted in this
        bucket; False, with nothing added, if any is not, or if the keys they make again
        after a swap would pass the bound, or if another event made a key of theirs again
        with other metrics first.
        """
        if (
            not lines
            or lines[0] not in self._repeatable
            or int(at // self._interval) * self._interval != self._repeat_bucket
        ):
            return False
        distinct = set(lines)
        if not self._repeatable.keys() >= distinct:
            return False
        if self._swapped_keys and not self._make_again(distinct):
            return False
        self._repeats.update(lines)
        self._events += len(lines)
        self.events_added += len(lines)
        return True

    def _make_again(self, lines: set[bytes]) -> bool:
        """
        Make again, with nothing added yet, the keys of noted ``lines`` that a swap took
        away; False, with nothing made, if they would pass the bound or if another event
        made one of them again with other metrics first.
        """
        entries, swapped, made, found = self._entries, self._swapped_keys, {}, []
        for line in lines:
            key, names, values = self._repeatable[line]
            if key in swapped:
                entry = entries.get(key)
                if entry is None:
                    made[key] = (names,) + (0,) * len(values)
                elif entry[0] is names or entry[0][: len(names)] == names:
                    found.append(key)
                else:
                    return False
        if len(entries) + len(made) + self._sketch_buckets > self._max_keys:
            return False
        entries.update(made)
        swapped.difference_update(made, found)
        return True

    def _settle_repeats(self) -> None:
        """Add the tallied repeats to their entries."""
        _settle(self._entries, self._repeats, self._repeatable)
        self._repeats.clear()

    def _add_members(self, key: AggregationKey, members: Mapping[str, frozenset[str]]) -> None:
        sets = self._members.setdefault(key, {})
        for metric, names in members.items():
            found = sets.setdefault(metric, set())
            room = self._max_members - len(found)
            new = set(names - found)
            if len(new) > room:
                self.members_dropped += len(new) - room
                new = set(sorted(new)[:room])
            found |= new

    def room_for(self, events: list[Event]) -> bool:
        """Whether all of ``events`` fit under the bound on distinct keys (and sketch buckets, counted at most)."""
        new = {_flat(*self._key(event.pk, event.dimensions, event.at)) for event in events} - self._entries.keys()
        buckets = sum(len(counts) for event in events for counts in event.samples.values())
        return self.pending_keys + len(new) + buckets <= self._max_keys

    def _new_sketch_buckets(self, key: AggregationKey, samples: Mapping[str, Mapping[str, float]]) -> int:
        held = self._samples.get(key, {})
        return sum(1 for metric, counts in samples.items() for name in counts if name not in held.get(metric, {}))

    @property
    def pending_keys(self) -> int:
        """Aggregation keys held, and the sketch buckets of their distributions."""
        return len(self._entries) + self._sketch_buckets

    @property
    def pending_events(self) -> int:
        return self._events

    def swap(self) -> Batch | None:
        """The batch of everything added since the last swap, or None if nothing was."""
        if not self._entries:
            return None
        batch = Batch(
            seq=self.next_seq,
            entries=Totals(self._entries, self._repeats, self._repeatable),
            events=self._events,
            levels=self._levels,
            members=self._members,
            samples=self._samples,
            relative={key: metrics for key, metrics in self._relative.items() if metrics},
        )
        self.next_seq += 1
        self._entries, self._levels, self._members, self._samples = {}, {}, {}, {}
        self._repeats = Counter()
        self._swapped_keys = {key for key, _, _ in self._repeatable.values()}
        self._relative = {}
        self._sketch_buckets = 0
        self._events = 0
        return batch
