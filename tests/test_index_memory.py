"""A writer's memory of the index members it wrote: each written once per refresh time."""

from hypothesis import given
from hypothesis import strategies as st

from hailwhale.aggregate import rollup
from hailwhale.aggregate.index_memory import IndexMemory
from hailwhale.model.schema import parse_schema

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
NOW = 1_800_000_000.0


def plan_of(*pks, now=NOW, memory=None, dimensions=frozenset()):
    entries = {((pk, "n"), dimensions, int(now // 60) * 60): {"hits": 1} for pk in pks}
    return rollup.plan_some(iter(entries.items()), SCHEMA, now, indexes=memory)


def index_members(plan):
    return {
        (write.tag, suffix, member) for write in plan.writes for suffix, found in write.sets.items() for member in found
    }


def sums(plan):
    return {write.tag: write.sums for write in plan.writes if write.sums}


def test_members_written_within_the_refresh_time_are_left_out():
    """A second flush of the same names writes their sums but none of their index members."""
    memory = IndexMemory(refresh=3600, most=1000)
    first = plan_of("a", "b", memory=memory)

    again = plan_of("a", "b", now=NOW + 10, memory=memory)

    assert (index_members(plan_of("a", "b")), set()) == (index_members(first), index_members(again))
    assert sums(plan_of("a", "b", now=NOW + 10)) == sums(again)


def test_children_of_dimension_nodes_are_remembered_too():
    """An entry with dimensions writes its nodes' children once per refresh time, like its pk's members."""
    memory = IndexMemory(refresh=3600, most=1000)
    country = frozenset([("country", "US")])
    first = plan_of("a", memory=memory, dimensions=country)

    again = plan_of("a", now=NOW + 10, memory=memory, dimensions=country)

    assert (index_members(plan_of("a", dimensions=country)), set()) == (index_members(first), index_members(again))
    assert any(suffix.startswith("sub:") for _, suffix, _ in index_members(first))


def test_a_new_name_brings_only_its_own_members():
    """A name not seen before is indexed: under its parent pk and with its metric names."""
    memory = IndexMemory(refresh=3600, most=1000)
    plan_of("a", memory=memory)

    found = index_members(plan_of("a", "b", now=NOW + 10, memory=memory))

    assert index_members(plan_of("b")) - index_members(plan_of("a")) == found


def test_members_are_written_again_after_the_refresh_time():
    """Once the refresh time has passed, every member is written again, so the store's expiry moves on."""
    memory = IndexMemory(refresh=3600, most=1000)
    plan_of("a", memory=memory)

    later = plan_of("a", now=NOW + 3600, memory=memory)

    assert index_members(plan_of("a")) == index_members(later)


@given(st.lists(st.sets(st.sampled_from("abcdefgh"), min_size=1), min_size=1, max_size=6), st.integers(1, 12))
def test_the_memory_stays_bounded_and_never_loses_a_new_member(flushes, most):
    """However small the bound, a member never written before is written, and the memory stays within its bound."""
    memory = IndexMemory(refresh=3600, most=most)
    written: set = set()
    for i, names in enumerate(flushes):
        wanted = index_members(plan_of(*sorted(names)))
        planned = index_members(plan_of(*sorted(names), now=NOW + i, memory=memory))

        assert wanted - written <= planned
        written |= planned
        assert len(memory) <= most
