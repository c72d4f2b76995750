from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from hailwhale.aggregate import rollup
from hailwhale.model import events, keys, paths
from hailwhale.model.fields import Limits, leaves
from hailwhale.model.paths import encode
from hailwhale.model.schema import parse_schema
from hailwhale.testing.strategies import dimension_values, metric_dicts

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
NOW = 1_795_830_000  # 2026-11-28 01:40 UTC


def node_encodings(value):
    return [encode(n) for n in rollup.nodes(leaves(value, Limits()))]


def test_dimension_expansion_matches_the_original():
    """Dimensions expand exactly as the original did (reference §3), plus the root."""
    assert [
        "_",
        "a",
        '["a", "5"]',
        "b",
        '["b", "x"]',
        '["b", "x", "1"]',
        '["b", "y"]',
        '["b", "y", "2"]',
    ] == node_encodings({"a": 5, "b": {"x": 1, "y": 2}})
    assert ["_", "a", '["a", "b"]', '["a", "b", "c"]'] == node_encodings(["a", "b", "c"])
    assert ["_", "geo", '["geo", "US"]', '["geo", "US", "CA"]', '["geo", "US", "CA", "SF"]'] == node_encodings(
        {"geo": {"US": {"CA": "SF"}}}
    )
    assert ["_"] == node_encodings("_")


def test_pk_prefixes():
    """An event counts under every prefix of its pk."""
    assert [("Product",), ("Product", "123")] == rollup.prefixes(("Product", "123"))


def entry(pk, dims, metrics, at=NOW):
    event = events.from_fields({"pk": pk, "dimensions": dims, "metrics": metrics, "at": at}, NOW, Limits())
    return {(event.pk, event.dimensions, int(event.at // 60) * 60): dict(event.metrics)}


def test_worked_example_one():
    """Reference §3 example 1: 2 pks x 3 nodes x 2 metrics = 12 increments, in the finest bucket only."""
    plan = rollup.plan(entry(["Product", "123"], ["a", "b"], {"dollars": 5, "hits": 1}), SCHEMA, NOW)

    cells = [(write.pk, cell) for write in plan.writes for cell in write.sums]
    assert (12, {NOW // 60 * 60}, (3600, 86400, *(86400 << n for n in range(1, 6)))) == (
        sum(len(amounts) for write in plan.writes for amounts in write.sums.values()),
        {bucket for _, (bucket, _, _) in cells},
        tuple(size.interval for size in plan.folded),
    )


def test_children_are_indexed():
    """Each node is registered with its parent, under every pk prefix."""
    plan = rollup.plan(entry(["Product", "123"], ["a", "b"], {}), SCHEMA, NOW)

    by_pk = {write.pk: {suffix: set(names) for suffix, names in write.sets.items()} for write in plan.writes}
    children = {suffix: names for suffix, names in by_pk[("Product",)].items() if suffix.startswith(keys.CHILDREN)}
    assert {keys.CHILDREN + "_": {"a"}, keys.CHILDREN + "a": {'["a", "b"]'}} == children
    assert by_pk[("Product",)].items() >= {keys.CHILDREN + "a": {'["a", "b"]'}}.items()


def test_pks_and_metric_names_are_indexed():
    """Each pk is registered with its parent pk (a top-level one with the root), its metric names with each prefix."""
    entries = {
        **entry(["Product", "123"], None, {"revenue": 5}),
        **entry(["Product", "9"], None, {"sales": 1}),
        **entry("signup", None, {}),
    }

    plan = rollup.plan(entries, SCHEMA, NOW)

    indexes = {
        write.pk: {suffix: set(names) for suffix, names in write.sets.items() if not suffix.startswith(keys.CHILDREN)}
        for write in plan.writes
    }
    assert {
        (): {keys.PKS: {"Product", "signup"}},
        ("Product",): {keys.PKS: {"123", "9"}, keys.METRIC_NAMES: {"hits", "revenue", "sales"}},
        ("Product", "123"): {keys.METRIC_NAMES: {"hits", "revenue"}},
        ("Product", "9"): {keys.METRIC_NAMES: {"hits", "sales"}},
        ("signup",): {keys.METRIC_NAMES: {"hits"}},
    } == indexes


def test_expired_buckets_are_counted():
    """An event older than the minute retention (but not the others) is planned, and counted as past one retention."""
    old = NOW - 3 * 86400
    plan = rollup.plan(entry("p", None, {}, at=old), SCHEMA, NOW)

    assert ({(old // 60 * 60, "hits", "")}, {60: 1}) == (
        {cell for write in plan.writes for cell in write.sums},
        plan.expired,
    )


def test_an_event_past_every_retention_is_written_nowhere():
    """An event older than every retention is left out of the plan, and counted."""
    plan = rollup.plan(entry("p", None, {}, at=NOW - 4 * 365 * 86400), SCHEMA, NOW)

    assert ((), {60: 1, 3600: 1, 86400: 1}) == (plan.writes, plan.expired)


@given(st.lists(st.tuples(dimension_values, metric_dicts), min_size=1, max_size=6))
def test_root_totals_equal_the_sum_of_events(batch):
    """The root of the pk holds the sum of every event's metrics, in the finest bucket."""
    entries = {}
    for dims, metrics in batch:
        for key, values in entry("p", dims, metrics).items():
            totals = entries.setdefault(key, {})
            for metric, value in values.items():
                totals[metric] = totals.get(metric, 0) + value
    expected = Counter()
    for _, metrics in batch:
        expected.update({"hits": 1, **metrics})

    (write,) = [write for write in rollup.plan(entries, SCHEMA, NOW).writes if write.pk == ("p",)]

    root = {m: write.sums[(NOW // 60 * 60, m, paths.ROOT_PARENT)]["_"] for m in expected}
    assert {m: round(v, 6) for m, v in expected.items()} == {m: round(v, 6) for m, v in root.items()}


@given(dimension_values)
def test_every_node_but_the_root_has_its_parent_in_the_tree(dims):
    """The dimension tree is closed: each node's parent is also a node."""
    found = rollup.nodes(leaves(dims, Limits()))

    assert all(node[:-1] in found for node in found if node)


def test_planning_in_parts_stops_at_the_bound_and_resumes():
    """plan_some takes entries until their increments reach the bound; the next call goes on from there."""
    entries = {}
    for pk in ("a", "b", "c"):
        entries.update(entry(pk, None, {}))
    items = iter(entries.items())

    parts = [rollup.plan_some(items, SCHEMA, NOW, most=2) for _ in range(3)]

    assert [(2, 2), (1, 1), (0, 0)] == [(part.taken, part.increments) for part in parts]
    assert [["a", "b"], ["c"], []] == [[write.pk[0] for write in part.writes if write.pk] for part in parts]
