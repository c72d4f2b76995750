"""A writer's memory of the index members it wrote: each written once per refresh time."""

from hypothesis import given
from hypothesis import strategies as st

from hailwhale.aggregate import rollup
from hailwhale.aggregate.index_memory import IndexMemory
from hailwhale.model.schema import parse_schema

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
NOW = 1_800_000_000.0


def plan_of(*pks, now=NOW):
    return rollup.plan({((pk, "n"), frozenset(), int(now // 60) * 60): {"hits": 1} for pk in pks}, SCHEMA, now)


def index_members(plan):
    return {
        (write.tag, suffix, member) for write in plan.writes for suffix, found in write.sets.items() for member in found
    }


def test_members_written_within_the_refresh_time_are_left_out():
    """A second flush of the same names writes their sums but none of their index members."""
    memory = IndexMemory(refresh=3600, most=1000)
    first = memory.unwritten(plan_of("a", "b"), NOW)

    again = memory.unwritten(plan_of("a", "b"), NOW + 10)

    assert (index_members(plan_of("a", "b")), set()) == (index_members(first), index_members(again))
    assert [w.sums for w in plan_of("a", "b").writes if w.sums] == [w.sums for w in again.writes]


def test_a_new_name_brings_only_its_own_members():
    """A name not seen before is indexed: under its parent pk and with its metric names."""
    memory = IndexMemory(refresh=3600, most=1000)
    memory.unwritten(plan_of("a"), NOW)

    found = index_members(memory.unwritten(plan_of("a", "b"), NOW + 10))

    assert index_members(plan_of("b")) - index_members(plan_of("a")) == found


def test_members_are_written_again_after_the_refresh_time():
    """Once the refresh time has passed, every member is written again, so the store's expiry moves on."""
    memory = IndexMemory(refresh=3600, most=1000)
    memory.unwritten(plan_of("a"), NOW)

    later = memory.unwritten(plan_of("a", now=NOW + 3600), NOW + 3600)

    assert index_members(plan_of("a")) == index_members(later)


@given(st.lists(st.sets(st.sampled_from("abcdefgh"), min_size=1), min_size=1, max_size=6), st.integers(1, 12))
def test_the_memory_stays_bounded_and_never_loses_a_new_member(flushes, most):
    """However small the bound, a member never written before is written, and the memory stays near its bound."""
    memory = IndexMemory(refresh=3600, most=most)
    written: set = set()
    for i, names in enumerate(flushes):
        wanted = index_members(plan_of(*sorted(names)))
        planned = index_members(memory.unwritten(plan_of(*sorted(names)), NOW + i))

        assert wanted - written <= planned
        written |= planned
        assert len(memory) <= most + len(wanted)
