"""
Roll-up: from aggregated events to what a flush writes.

The daemon aggregates by (pk, dimension leaves, finest bucket).  At flush, each entry
fans out to every pk prefix x every dimension node (the root included) x every metric,
in its finest bucket only, and registers each node with its parent so queries can walk
the tree (and each pk with its parent pk, and each metric name with every pk prefix, for
browsing: :func:`_index`).  The coarser buckets (hours, days, and blocks of days) are not written at
flush: the store folds each finest bucket into them once it has closed (see
:mod:`hailwhale.store.client` and ``lua/fold.lua``), and writes an event straight into
them only when its finest bucket was folded already (a late event).  So a flush costs
one increment per (pk prefix, node, metric) and key, instead of one per stored size.
"""

from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import NamedTuple

import attrs

from hailwhale.aggregate.index_memory import IndexMemory
from hailwhale.model import keys
from hailwhale.model.fields import Leaves
from hailwhale.model.paths import ROOT, ROOT_PARENT, Path, encode, parent_encoding
from hailwhale.model.schema import Resolution, Schema

AggregationKey = tuple[Path, Leaves, int]
Cell = tuple[int, str, str]  # (finest bucket, metric, parent encoding or, for unique counts, node encoding)


def nodes(leaves: Iterable[Path]) -> list[Path]:
    """Every dimension node an event counts under: the root and each prefix of each leaf."""
    found: set[Path] = {ROOT}
    for leaf in leaves:
        for length in range(1, len(leaf) + 1):
            found.add(leaf[:length])
    return sorted(found)


def prefixes(pk: Path) -> list[Path]:
    """Every pk an event counts under: ``["Product", "123"]`` also counts as ``Product``."""
    return [pk[:length] for length in range(1, len(pk) + 1)]


class TagWrite(NamedTuple):
    """
    Everything one flush writes under one pk's hash tag, in finest buckets (a named tuple,
    not an attrs class: a flush of many distinct pks makes one per pk, and this is cheaper).
    """

    pk: Path
    tag: str  # keys.tag(pk)
    sums: Mapping[Cell, Mapping[str, float]]  # (bucket, metric, parent) -> node -> amount to add
    sets: Mapping[str, Collection[str]] = {}  # index sets, by key suffix (sub:<parent>, pks, metrics) -> members
    levels: Mapping[Cell, Mapping[str, float]] = {}  # (bucket, metric, parent) -> node -> level
    uniques: Mapping[Cell, Collection[str]] = {}  # (bucket, metric, node) -> members
    samples: Mapping[Cell, Mapping[str, float]] = {}  # (bucket, metric, node) -> sketch bucket -> count


@attrs.frozen
class WritePlan:
    writes: tuple[TagWrite, ...]
    expired: Mapping[int, int]  # interval -> aggregation keys past that interval's retention
    now: float  # as of when buckets past retention were left out
    finest: Resolution
    folded: tuple[Resolution, ...]  # the coarser sizes the finest buckets are folded into
    taken: int = 0  # aggregated entries planned
    increments: int = 0  # sorted-set members incremented and unique-count members added, over every key


def plan(
    entries: Mapping[AggregationKey, Mapping[str, float]],
    schema: Schema,
    now: float,
    levels: Mapping[AggregationKey, Mapping[str, tuple[int, float]]] | None = None,
    members: Mapping[AggregationKey, Mapping[str, Collection[str]]] | None = None,
    samples: Mapping[AggregationKey, Mapping[str, Mapping[str, float]]] | None = None,
) -> WritePlan:
    """
    The writes for a batch of aggregated entries, as of ``now``: ``entries`` add up,
    ``levels`` ((stamp, value) per gauge) overwrite, the latest stamp winning where several
    keys meet in one node, ``members`` join the unique counts of every node and ``samples``
    (sketch counts) its distributions.
    """
    return plan_some(iter(entries.items()), schema, now, levels, members, samples=samples)


def plan_some(
    items: Iterator[tuple[AggregationKey, Mapping[str, float]]],
    schema: Schema,
    now: float,
    levels: Mapping[AggregationKey, Mapping[str, tuple[int, float]]] | None = None,
    members: Mapping[AggregationKey, Mapping[str, Collection[str]]] | None = None,
    most: int | None = None,
    samples: Mapping[AggregationKey, Mapping[str, Mapping[str, float]]] | None = None,
    indexes: IndexMemory | None = None,
) -> WritePlan:
    """
    As :func:`plan`, for the entries taken from ``items`` until their increments (sorted-set
    members and unique-count members written) reach ``most`` (all of them if None): what
    one flush holds in memory at once is bounded by ``most`` and one entry's fan-out,
    however many entries a batch has.  Every key of ``members`` and ``samples`` is a key of
    the entries;
    ``levels`` are planned whole, whichever entries are taken (the latest stamp must win
    over the whole batch, and a later part would overwrite an earlier one): pass them
    with one part of a batch only.  An entry past every retention is counted in
    ``expired`` and written nowhere.  With ``indexes``, the index members of an entry that
    memory says were written lately are left out (and the rest are noted in it as written).
    """
    levels = levels or {}
    members = members or {}
    samples = samples or {}
    tags = _Tags()
    indexed: dict[Path, set[str]] = {}
    expired: Counter[int] = Counter()
    node_cache: dict[Leaves, list[tuple[str, str]]] = {}
    taken = counted = 0
    past: dict[int, tuple[int, ...]] = {}  # finest bucket -> the intervals its data is past the retention of
    for (pk, leaves, finest_bucket), metrics in items:
        taken += 1
        gone = past.get(finest_bucket)
        if gone is None:
            gone = past[finest_bucket] = _past(finest_bucket, schema, now)
        if gone:
            expired.update(gone)
            if len(gone) == len(schema.resolutions):
                continue
        encoded = node_cache.get(leaves)
        if encoded is None:
            encoded = node_cache[leaves] = [(encode(n), parent_encoding(n)) for n in nodes(leaves)]
        pk_prefixes = prefixes(pk)
        metric_items = list(metrics.items())
        key = (pk, leaves, finest_bucket)
        key_members = members.get(key) if members else None
        key_samples = samples.get(key) if samples else None
        for prefix in pk_prefixes:
            cells = tags.of(tags.sums, prefix)
            for metric, value in metric_items:
                for node_encoding, parent in encoded:
                    cell = (finest_bucket, metric, parent)
                    amounts = cells.get(cell)
                    if amounts is None:
                        amounts = cells[cell] = {}
                    before = amounts.get(node_encoding)
                    if before is None:
                        amounts[node_encoding] = value
                        counted += 1
                    else:
                        amounts[node_encoding] = before + value
            if key_members:
                uniques = tags.of(tags.uniques, prefix)
                for metric, names in key_members.items():
                    for node_encoding, _ in encoded:
                        uniques.setdefault((finest_bucket, metric, node_encoding), set()).update(names)
                        counted += len(names)
            if key_samples:
                distributions = tags.of(tags.samples, prefix)
                for metric, counts in key_samples.items():
                    for node_encoding, _ in encoded:
                        found = distributions.setdefault((finest_bucket, metric, node_encoding), {})
                        for name, count in counts.items():
                            found[name] = found.get(name, 0.0) + count
                        counted += len(counts)
        names = (*metrics, *(key_members or ()), *(key_samples or ()))
        if indexes is None or indexes.unwritten((pk, leaves, names), now):
            if len(encoded) > 1:
                for prefix in pk_prefixes:
                    sets = tags.of(tags.sets, prefix)
                    for node_encoding, parent in encoded:
                        if parent != ROOT_PARENT:
                            sets.setdefault(keys.CHILDREN + parent, set()).add(node_encoding)
            _index(tags, indexed, pk, names)
        if most is not None and counted >= most:
            break
    for (pk, leaves, finest_bucket), key_levels in levels.items():
        if len(_past(finest_bucket, schema, now)) == len(schema.resolutions):
            continue
        encoded = [(encode(n), parent_encoding(n)) for n in nodes(leaves)]
        if indexes is None or indexes.unwritten((pk, leaves, tuple(key_levels)), now):
            _index(tags, indexed, pk, key_levels)
        for prefix in prefixes(pk):
            stamped_cells = tags.of(tags.levels, prefix)
            for metric, stamped in key_levels.items():
                for node_encoding, parent in encoded:
                    stamps = stamped_cells.setdefault((finest_bucket, metric, parent), {})
                    if stamps.get(node_encoding, (0, 0))[0] < stamped[0]:
                        stamps[node_encoding] = stamped
    return WritePlan(
        writes=tags.writes(),
        expired=dict(expired),
        now=now,
        finest=schema.finest,
        folded=schema.stored[1:],
        taken=taken,
        increments=counted,
    )


def _index(tags: "_Tags", indexed: dict[Path, set[str]], pk: Path, names: Iterable[str]) -> None:
    """
    Add ``pk`` to its parent pk's set of child pks (a top-level pk to the root of the pk
    tree's) and ``names`` to the metric names of each prefix of ``pk``; ``indexed``
    remembers what this plan has already added.
    """
    known = indexed.get(pk)
    names = set(names)
    if known is not None and names <= known:
        return
    indexed[pk] = names if known is None else known | names
    for prefix in prefixes(pk):
        tags.of(tags.sets, prefix).setdefault(keys.METRIC_NAMES, set()).update(names)
        tags.of(tags.sets, prefix[:-1]).setdefault(keys.PKS, set()).add(prefix[-1])


class _Tags:
    """What a plan writes, by pk and kind: one dict per kind, so a pk with sums only costs one entry."""

    __slots__ = ("levels", "samples", "sets", "sums", "uniques")

    def __init__(self) -> None:
        self.sums: dict[Path, dict[Cell, dict[str, float]]] = {}
        self.sets: dict[Path, dict[str, set[str]]] = {}
        self.levels: dict[Path, dict[Cell, dict[str, tuple[int, float]]]] = {}
        self.uniques: dict[Path, dict[Cell, set[str]]] = {}
        self.samples: dict[Path, dict[Cell, dict[str, float]]] = {}

    @staticmethod
    def of(kind: dict, pk: Path) -> dict:
        found = kind.get(pk)
        if found is None:
            found = kind[pk] = {}
        return found

    def writes(self) -> tuple[TagWrite, ...]:
        empty: dict = {}
        sums, sets, uniques, samples = self.sums, self.sets, self.uniques, self.samples
        levels = {
            pk: {cell: {node: value for node, (_, value) in stamped.items()} for cell, stamped in cells.items()}
            for pk, cells in self.levels.items()
        }
        pks = dict.fromkeys(sums)
        for kind in (sets, levels, uniques, samples):
            if kind:
                pks.update(dict.fromkeys(kind))
        return tuple(
            TagWrite(
                pk,
                keys.tag(pk),
                sums.get(pk, empty),
                sets.get(pk, empty),
                levels.get(pk, empty),
                uniques.get(pk, empty),
                samples.get(pk, empty),
            )
            for pk in pks
        )


def _past(finest_bucket: int, schema: Schema, now: float) -> tuple[int, ...]:
    """The intervals whose bucket holding ``finest_bucket`` is past its retention at ``now``."""
    return tuple(
        resolution.interval
        for resolution in schema.resolutions
        if resolution.expires_at(resolution.bucket(finest_bucket)) <= now
    )
