"""The cardinality guard: distinct children per dimension per pk are bounded, the excess folded into _other."""

from hypothesis import given
from hypothesis import strategies as st

from hailwhale.aggregate.cardinality import OVERFLOW, Cardinality
from hailwhale.aggregate.rollup import nodes, prefixes
from hailwhale.testing.strategies import names


def admit(guard, pk, *leaves):
    return guard.admit(pk, frozenset(leaves))


def test_names_within_the_bound_pass_unchanged():
    """Up to max_children distinct names under a parent pass as they are (the very same leaves object)."""
    guard = Cardinality(max_children=3, max_tracked=100)
    leaves = frozenset({("country", "US"), ("device", "mac")})

    assert leaves is guard.admit(("shop",), leaves)


def test_names_past_the_bound_fold_into_overflow():
    """The fourth distinct value of a dimension is counted as _other; the first three still pass."""
    guard = Cardinality(max_children=3, max_tracked=100)
    for value in ["a", "b", "c"]:
        admit(guard, ("p",), ("user", value))

    folded = admit(guard, ("p",), ("user", "d"))
    again = admit(guard, ("p",), ("user", "b"))

    assert (frozenset({("user", OVERFLOW)}), frozenset({("user", "b")}), {"max_children": 1}) == (
        folded,
        again,
        dict(guard.folded),
    )


def test_a_folded_name_takes_its_subtree_along():
    """Names below a folded one are dropped: their children would otherwise be unbounded again."""
    guard = Cardinality(max_children=1, max_tracked=100)
    admit(guard, ("p",), ("geo", "US", "CA"))

    assert frozenset({("geo", OVERFLOW)}) == admit(guard, ("p",), ("geo", "FR", "Paris"))


def test_dimension_names_are_children_of_the_root():
    """Inventing dimension names is bounded the same way."""
    guard = Cardinality(max_children=2, max_tracked=100)
    admit(guard, ("p",), ("a",), ("b",))

    assert frozenset({("a",), (OVERFLOW,)}) == admit(guard, ("p",), ("a",), ("c", "x"))


def test_bounds_hold_under_every_pk_prefix():
    """A pk's prefix holds the union of its children's names, so the bound applies to it too."""
    guard = Cardinality(max_children=2, max_tracked=100)
    admit(guard, ("shop", "1"), ("user", "a"))
    admit(guard, ("shop", "2"), ("user", "b"))

    assert frozenset({("user", OVERFLOW)}) == admit(guard, ("shop", "3"), ("user", "c"))


def test_each_pk_has_its_own_bound():
    """Separate pks (that share no prefix) do not share a bound."""
    guard = Cardinality(max_children=1, max_tracked=100)
    admit(guard, ("a",), ("user", "x"))

    assert frozenset({("user", "y")}) == admit(guard, ("b",), ("user", "y"))


def test_overflow_itself_is_always_let_through():
    """An event naming _other is counted there, even when the parent is full."""
    guard = Cardinality(max_children=1, max_tracked=100)
    admit(guard, ("p",), ("user", "a"))

    assert frozenset({("user", OVERFLOW)}) == admit(guard, ("p",), ("user", OVERFLOW))


def test_what_is_remembered_is_bounded():
    """Past max_tracked remembered names in all, names that would need remembering fold, with their reason."""
    guard = Cardinality(max_children=100, max_tracked=3)
    admit(guard, ("a",), ("user", "x"))  # remembers "user" and "x"

    assert (
        frozenset({("user", "y")}),
        frozenset({("user", OVERFLOW)}),
        frozenset({(OVERFLOW,)}),
        3,
        {"max_tracked": 2},
    ) == (
        admit(guard, ("a",), ("user", "y")),
        admit(guard, ("a",), ("user", "z")),
        admit(guard, ("b",), ("user", "x")),
        guard.tracked,
        dict(guard.folded),
    )


def test_the_memo_forgets_without_changing_answers():
    """A tiny memo of whole events let through is emptied when full; answers stay the same."""
    guard = Cardinality(max_children=2, max_tracked=100, memo_size=1)
    answers = [admit(guard, ("p",), ("user", value)) for value in ["a", "b", "a", "c", "b", "c"]]

    assert [frozenset({("user", v)}) for v in ["a", "b", "a"]] + [frozenset({("user", OVERFLOW)})] + [
        frozenset({("user", "b")}),
        frozenset({("user", OVERFLOW)}),
    ] == answers


events = st.lists(
    st.tuples(
        st.lists(st.sampled_from(["s", "t"]), min_size=1, max_size=3).map(tuple),
        st.frozensets(st.lists(names, min_size=1, max_size=3).map(tuple), max_size=3),
    ),
    max_size=60,
)


@given(events, st.integers(1, 4), st.integers(1, 40))
def test_no_parent_ever_gets_more_than_its_bound(stream, max_children, max_tracked):
    """
    Whatever arrives: under every pk prefix each parent gets at most max_children names
    besides _other, a name once let through is let through again, and the names
    remembered stay within max_tracked.
    """
    guard = Cardinality(max_children, max_tracked)
    children: dict = {}
    let_through: set = set()
    for pk, leaves in stream:
        kept = guard.admit(pk, leaves)
        for prefix in prefixes(pk):
            for node in nodes(kept):
                if node and node[-1] != OVERFLOW:
                    children.setdefault((prefix, node[:-1]), set()).add(node[-1])
        assert {leaf for leaf in leaves if (pk, leaf) in let_through} <= kept
        let_through.update((pk, leaf) for leaf in leaves & kept)

    assert max(map(len, children.values()), default=0) <= max_children
    assert guard.tracked <= max_tracked
