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
    """Reference §3 example 1: 2 pks x 3 nodes x 3 intervals x 2 metrics = 36 bucket increments (plus 5 day blocks)."""
    plan = rollup.plan(entry(["Product", "123"], ["a", "b"], {"dollars": 5, "hits": 1}), SCHEMA, NOW)

    sizes = Counter()
    for write in plan.writes:
        for key, amounts in write.increments.items():
            sizes["bucket" if int(key.split(":")[3]) in SCHEMA.intervals else "block"] += len(amounts)
    assert {"bucket": 36, "block": 60} == sizes


def test_children_are_indexed():
    """Each node is registered in its parent's children set, under every pk prefix."""
    plan = rollup.plan(entry(["Product", "123"], ["a", "b"], {}), SCHEMA, NOW)

    by_pk = {write.pk: {key: set(members) for key, members in write.members.items()} for write in plan.writes}
    tag = keys.tag(("Product",))
    children = {key: members for key, members in by_pk[("Product",)].items() if ":sub:" in key}
    assert {keys.children_key(tag, "_"): {"a"}, keys.children_key(tag, "a"): {'["a", "b"]'}} == children


def test_pks_and_metric_names_are_indexed():
    """Each pk is registered with its parent pk (a top-level one with the root), its metric names with each prefix."""
    entries = {
        **entry(["Product", "123"], None, {"revenue": 5}),
        **entry(["Product", "9"], None, {"sales": 1}),
        **entry("signup", None, {}),
    }

    plan = rollup.plan(entries, SCHEMA, NOW)

    indexes = {
        write.pk: {key: set(members) for key, members in write.members.items() if ":sub:" not in key}
        for write in plan.writes
    }
    product, one, nine = keys.tag(("Product",)), keys.tag(("Product", "123")), keys.tag(("Product", "9"))
    assert {
        (): {keys.pks_key(keys.ROOT_TAG): {"Product", "signup"}},
        ("Product",): {
            keys.pks_key(product): {"123", "9"},
            keys.metric_names_key(product): {"hits", "revenue", "sales"},
        },
        ("Product", "123"): {keys.metric_names_key(one): {"hits", "revenue"}},
        ("Product", "9"): {keys.metric_names_key(nine): {"hits", "sales"}},
        ("signup",): {keys.metric_names_key(keys.tag(("signup",))): {"hits"}},
    } == indexes


def test_indexes_live_as_long_as_the_longest_lived_bucket():
    """The pk and metric-name sets expire with the data they index, as the children sets do."""
    plan = rollup.plan(entry(["Product", "123"], "a", {}), SCHEMA, NOW)

    expiries = {key: write.expire_at[key] for write in plan.writes for key in write.members}
    longest = max(expires for write in plan.writes for expires in write.expire_at.values())
    assert {longest} == set(expiries.values())


def test_expired_buckets_are_skipped_and_counted():
    """An event older than the minute retention (but not the others) skips only the minute bucket."""
    old = NOW - 3 * 86400
    plan = rollup.plan(entry("p", None, {}, at=old), SCHEMA, NOW)

    sizes = {int(key.split(":")[3]) // 3600 for write in plan.writes for key in write.increments}
    assert ({1, 24, 48, 96, 192, 384, 768}, {60: 1}) == (sizes, plan.expired)


def test_expiry_is_bucket_end_plus_retention():
    """Each data key expires when its bucket's end is older than its retention."""
    plan = rollup.plan(entry("p", None, {}), SCHEMA, NOW)

    (write,) = [write for write in plan.writes if write.pk == ("p",)]
    expiries = {int(key.split(":")[3]): write.expire_at[key] for key in write.increments}
    minute, hour, day = NOW // 60 * 60, NOW // 3600 * 3600, NOW // 86400 * 86400
    block = NOW // (32 * 86400) * 32 * 86400
    assert (
        minute + 60 + 2 * 86400,
        hour + 3600 + 35 * 86400,
        day + 86400 + 1095 * 86400,
        block + 32 * 86400 + 1095 * 86400,
    ) == (expiries[60], expiries[3600], expiries[86400], expiries[32 * 86400])


@given(st.lists(st.tuples(dimension_values, metric_dicts), min_size=1, max_size=6))
def test_root_totals_equal_the_sum_of_events(batch):
    """For every interval, the root of the pk holds the sum of every event's metrics."""
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

    for resolution in SCHEMA.stored:
        bucket = resolution.bucket(NOW)
        root = {
            m: write.increments[keys.data_key(keys.tag(("p",)), resolution.interval, bucket, m, paths.ROOT_PARENT)]["_"]
            for m in expected
        }
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

    parts = [rollup.plan_some(items, SCHEMA, NOW, most=9) for _ in range(3)]

    assert [(2, 16), (1, 8), (0, 0)] == [(part.taken, part.increments) for part in parts]
    assert [["a", "b"], ["c"], []] == [[write.pk[0] for write in part.writes if write.pk] for part in parts]
