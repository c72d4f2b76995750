"""
Roll-up: from aggregated events to the increments a flush writes.

The daemon aggregates by (pk, dimension leaves, finest bucket).  At flush, each entry
fans out to every pk prefix x every dimension node (the root included) x every
interval still within retention x every metric, and registers each node with its
parent so queries can walk the tree (and each pk with its parent pk, and each metric
name with every pk prefix, for browsing: :func:`_index`).
"""

from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping

import attrs

from hailwhale.model import keys
from hailwhale.model.fields import Leaves
from hailwhale.model.paths import ROOT, ROOT_PARENT, Path, encode, parent_encoding
from hailwhale.model.schema import Schema

AggregationKey = tuple[Path, Leaves, int]


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


@attrs.frozen
class TagWrite:
    """Everything one flush writes under one pk's hash tag."""

    pk: Path
    increments: Mapping[str, Mapping[str, float]]  # sorted-set key -> member -> amount
    members: Mapping[str, frozenset[str]]  # children-set key -> members
    expire_at: Mapping[str, int]
    levels: Mapping[str, Mapping[str, float]] = attrs.field(factory=dict)  # sorted-set key -> member -> value
    uniques: Mapping[str, frozenset[str]] = attrs.field(factory=dict)  # HyperLogLog key -> members

    @property
    def tag(self) -> str:
        return keys.tag(self.pk)


@attrs.frozen
class WritePlan:
    writes: tuple[TagWrite, ...]
    expired: Mapping[int, int]  # interval -> aggregation keys skipped as past retention
    taken: int = 0  # aggregated entries planned
    increments: int = 0  # sorted-set members incremented, over every key


def plan(
    entries: Mapping[AggregationKey, Mapping[str, float]],
    schema: Schema,
    now: float,
    levels: Mapping[AggregationKey, Mapping[str, tuple[int, float]]] | None = None,
    members: Mapping[AggregationKey, Mapping[str, Collection[str]]] | None = None,
) -> WritePlan:
    """
    The writes for a batch of aggregated entries, as of ``now``: ``entries`` add up,
    ``levels`` ((stamp, value) per gauge) overwrite, the latest stamp winning where several
    keys meet in one node, and ``members`` join the unique counts of every node.
    """
    return plan_some(iter(entries.items()), schema, now, levels, members)


def plan_some(
    items: Iterator[tuple[AggregationKey, Mapping[str, float]]],
    schema: Schema,
    now: float,
    levels: Mapping[AggregationKey, Mapping[str, tuple[int, float]]] | None = None,
    members: Mapping[AggregationKey, Mapping[str, Collection[str]]] | None = None,
    most: int | None = None,
) -> WritePlan:
    """
    As :func:`plan`, for the entries taken from ``items`` until their increments (sorted-set
    members and unique-count members written) reach ``most`` (all of them if None): what
    one flush holds in memory at once is bounded by ``most`` and one entry's fan-out,
    however many entries a batch has.  Every key of ``members`` is a key of the entries;
    ``levels`` are planned whole, whichever entries are taken (the latest stamp must win
    over the whole batch, and a later part would overwrite an earlier one): pass them
    with one part of a batch only.
    """
    levels = levels or {}
    members = members or {}
    tags: dict[Path, _TagPlan] = {}
    expired: Counter[int] = Counter()
    node_cache: dict[Leaves, list[tuple[str, str]]] = {}
    indexed: dict[Path, tuple[set[str], int]] = {}
    taken = counted = 0
    for (pk, leaves, finest_bucket), metrics in items:
        taken += 1
        buckets = _live_buckets(finest_bucket, schema, now, expired)
        if not buckets:
            continue
        encoded = node_cache.get(leaves)
        if encoded is None:
            encoded = node_cache[leaves] = [(encode(n), parent_encoding(n)) for n in nodes(leaves)]
        metric_items = list(metrics.items())
        key_members = members.get((pk, leaves, finest_bucket), {})
        index_life = max(expires for _, _, expires in buckets)
        for prefix in prefixes(pk):
            tag = keys.tag(prefix)
            target = tags.get(prefix)
            if target is None:
                target = tags[prefix] = _TagPlan()
            tag_increments, tag_expiry = target.increments, target.expiry
            for size, bucket, expires in buckets:
                for metric, value in metric_items:
                    for node_encoding, parent in encoded:
                        key = keys.data_key(tag, size, bucket, metric, parent)
                        amounts = tag_increments.get(key)
                        if amounts is None:
                            amounts = tag_increments[key] = {}
                            tag_expiry[key] = expires
                        before = amounts.get(node_encoding)
                        if before is None:
                            amounts[node_encoding] = value
                            counted += 1
                        else:
                            amounts[node_encoding] = before + value
                for metric, names in key_members.items():
                    for node_encoding, _ in encoded:
                        key = keys.unique_key(tag, size, bucket, metric, node_encoding)
                        tag_expiry[key] = expires
                        target.uniques.setdefault(key, set()).update(names)
                        counted += len(names)
            for node_encoding, parent in encoded:
                if parent == ROOT_PARENT:
                    continue
                key = keys.children_key(tag, parent)
                target.members.setdefault(key, set()).add(node_encoding)
                tag_expiry[key] = max(tag_expiry.get(key, 0), index_life)
        _index(tags, indexed, pk, [*metrics, *key_members], index_life)
        if most is not None and counted >= most:
            break
    for (pk, leaves, finest_bucket), key_levels in levels.items():
        buckets = _live_buckets(finest_bucket, schema, now, Counter())
        if buckets:
            _index(tags, indexed, pk, key_levels, max(expires for _, _, expires in buckets))
        encoded = [(encode(n), parent_encoding(n)) for n in nodes(leaves)]
        for prefix in prefixes(pk):
            tag = keys.tag(prefix)
            target = tags.get(prefix)
            if target is None:
                target = tags[prefix] = _TagPlan()
            for size, bucket, expires in buckets:
                for metric, stamped in key_levels.items():
                    for node_encoding, parent in encoded:
                        key = keys.data_key(tag, size, bucket, metric, parent)
                        target.expiry[key] = expires
                        stamps = target.levels.setdefault(key, {})
                        if stamps.get(node_encoding, (0, 0))[0] < stamped[0]:
                            stamps[node_encoding] = stamped
    writes = tuple(target.write(prefix) for prefix, target in tags.items())
    return WritePlan(writes=writes, expired=dict(expired), taken=taken, increments=counted)


def _index(
    tags: "dict[Path, _TagPlan]", indexed: dict[Path, tuple[set[str], int]], pk: Path, names: Iterable[str], life: int
) -> None:
    """
    Add ``pk`` to its parent pk's set of child pks (a top-level pk to the root of the pk
    tree's) and ``names`` to the metric names of each prefix of ``pk``, both living until
    ``life`` at least, as the children sets do; ``indexed`` remembers what this plan has
    already added.
    """
    known, known_life = indexed.get(pk, (set(), 0))
    names = set(names)
    if names <= known and life <= known_life:
        return
    indexed[pk] = (known | names, max(life, known_life))
    for prefix in prefixes(pk):
        for owner, key, members in (
            (prefix, keys.metric_names_key(keys.tag(prefix)), names),
            (prefix[:-1], keys.pks_key(keys.tag(prefix[:-1])), {prefix[-1]}),
        ):
            target = tags.get(owner)
            if target is None:
                target = tags[owner] = _TagPlan()
            target.members.setdefault(key, set()).update(members)
            target.expiry[key] = max(target.expiry.get(key, 0), life)


@attrs.define
class _TagPlan:
    increments: dict[str, dict[str, float]] = attrs.field(factory=dict)
    members: dict[str, set[str]] = attrs.field(factory=dict)
    expiry: dict[str, int] = attrs.field(factory=dict)
    levels: dict[str, dict[str, tuple[int, float]]] = attrs.field(factory=dict)
    uniques: dict[str, set[str]] = attrs.field(factory=dict)

    def write(self, pk: Path) -> TagWrite:
        return TagWrite(
            pk=pk,
            increments=self.increments,
            members={key: frozenset(value) for key, value in self.members.items()},
            expire_at=self.expiry,
            levels={key: {node: value for node, (_, value) in stamped.items()} for key, stamped in self.levels.items()},
            uniques={key: frozenset(value) for key, value in self.uniques.items()},
        )


def _live_buckets(finest_bucket: int, schema: Schema, now: float, expired: Counter) -> list[tuple[int, int, int]]:
    """(size, start, expires at) of every stored bucket holding ``finest_bucket`` and still within retention."""
    live = []
    for resolution in schema.resolutions:
        bucket = resolution.bucket(finest_bucket)
        expires = resolution.expires_at(bucket)
        if expires <= now:
            expired[resolution.interval] += 1
        else:
            live.append((resolution.interval, bucket, expires))
    if live and live[-1][0] == schema.resolutions[-1].interval:
        for block in schema.blocks:
            bucket = block.bucket(finest_bucket)
            live.append((block.interval, bucket, block.expires_at(bucket)))
    return live
