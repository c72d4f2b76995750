"""The store against a real Valkey server."""

import time

from hailwhale.aggregate import rollup
from hailwhale.model import events, keys, paths
from hailwhale.model.fields import Limits
from hailwhale.model.schema import parse_schema
from hailwhale.query import planner, requests
from hailwhale.store import client as store_module
from hailwhale.testing import upcoming

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
NOW = int(upcoming(1, 40))  # ahead of the clock the store expires keys by


def plan_for(*raw_events, now=NOW):
    entries = {}
    for raw in raw_events:
        event = events.from_fields(raw, now, Limits())
        totals = entries.setdefault((event.pk, event.dimensions, int(event.at // 60) * 60), {})
        for metric, value in event.metrics.items():
            totals[metric] = totals.get(metric, 0) + value
    return rollup.plan(entries, SCHEMA, now)


def totals(store, pk, dimension="_", metrics=("hits",), period="today", **more):
    params = {"pk": pk, "dimension": dimension, "metrics": list(metrics), "period": period, **more}
    return requests.run(planner.totals_from_params(params, NOW, SCHEMA, Limits()), store)[period]


def test_apply_then_read(store):
    """What a plan writes, a query reads back, floats and negatives exact."""
    store.apply(
        plan_for(
            {"pk": "p", "dimensions": {"country": "US"}, "metrics": {"x": 0.25}},
            {"pk": "p", "dimensions": {"country": "US"}, "metrics": {"x": 0.5}},
            {"pk": "p", "dimensions": {"country": "UK"}, "metrics": {"x": -2.5}},
        ),
        1,
        set(),
    )

    assert {"_": {"x": -1.75, "hits": 3.0}} == totals(store, "p", metrics=["x", "hits"])
    assert {'["country", "US"]': {"x": 0.75}} == totals(store, "p", ["country", "US"], ["x"])


def test_same_batch_token_applies_once(store):
    """Applying a batch again with the same token changes nothing (the retry of an ambiguous failure)."""
    plan = plan_for({"pk": "p", "metrics": {"x": 5}})
    store.apply(plan, 7, set())

    store.apply(plan, 7, set())

    assert {"_": {"x": 5.0}} == totals(store, "p", metrics=["x"])


def test_later_batches_still_apply(store):
    """A higher token from the same writer applies."""
    store.apply(plan_for({"pk": "p"}), 1, set())
    store.apply(plan_for({"pk": "p"}), 2, set())

    assert {"_": {"hits": 2.0}} == totals(store, "p")


def test_keys_expire_with_their_retention(store, raw):
    """Data keys carry TTLs: a minute bucket lives two days past its end."""
    store.apply(plan_for({"pk": "p"}), 1, set())

    minute = NOW // 60 * 60
    key = keys.data_key(keys.tag(("p",)), 60, minute, "hits", paths.ROOT_PARENT)
    assert minute + 60 + 2 * 86400 == raw.expiretime(key)


def test_the_store_drops_a_bucket_when_its_retention_ends_by_its_own_clock(store, raw):
    """Written just before and just after its retention ends by the store's clock, a minute bucket is gone or kept."""
    clock = int(time.time())
    for pk, moment in (("gone", clock - 2 * 86400 - 120), ("kept", clock - 2 * 86400 + 120)):
        store.apply(plan_for({"pk": pk}, now=moment), 1, set())

    def exists(pk, interval, moment):
        return bool(
            raw.exists(
                keys.data_key(keys.tag((pk,)), interval, moment // interval * interval, "hits", paths.ROOT_PARENT)
            )
        )

    assert ((False, True), (True, True)) == (
        (exists("gone", 60, clock - 2 * 86400 - 120), exists("gone", 3600, clock - 2 * 86400 - 120)),
        (exists("kept", 60, clock - 2 * 86400 + 120), exists("kept", 3600, clock - 2 * 86400 + 120)),
    )


def test_dimension_tree(store):
    """The children sets let the tree be walked, depth first."""
    store.apply(plan_for({"pk": "t", "dimensions": {"a": 1, "b": {"c": 2}}}), 1, set())

    rows = requests.run(planner.tree(("t",), (), 8), store)

    assert [[], ["a"], ["a", "1"], ["b"], ["b", "c"], ["b", "c", "2"]] == [row["path"] for row in rows]


def test_large_writes_are_chunked_and_complete(store, monkeypatch):
    """A tag write larger than a chunk goes in several script calls, each applied once."""
    monkeypatch.setattr(store_module, "CHUNK_FIELDS", 7)
    plan = plan_for(*({"pk": "p", "dimensions": {"n": i}} for i in range(20)))
    store.apply(plan, 1, set())
    store.apply(plan, 1, set())

    assert {"n": {"hits": 20.0}} == totals(store, "p", "n")
    assert 21 == len(requests.run(planner.tree(("p",), ("n",), 1), store))


def test_group_sorts_and_limits_on_the_server(store):
    """The grouped read sorts children by a ratio on the server and returns the first few with their totals."""
    store.apply(
        plan_for(
            *(
                {"pk": "shop", "dimensions": {"country": f"C{i}"}, "metrics": {"revenue": i * 10, "visitors": i + 1}}
                for i in range(50)
            )
        ),
        1,
        set(),
    )

    answer = totals(
        store, "shop", "country", ["revenue", "revenue/visitors"], depth=1, sort="-revenue/visitors", limit=3
    )

    expected_order = ["country", '["country", "C49"]', '["country", "C48"]', '["country", "C47"]']
    assert (expected_order, 47) == ([row["dimension"] for row in answer["rows"]], answer["more"])
    assert {"revenue": 490.0, "revenue/visitors": 9.8} == answer["rows"][1]["metrics"]


def test_schema_is_recorded(store):
    """The schema the daemon writes with is recorded, and the previous one reported."""
    assert (None, "1m:2d", "1m:2d") == (
        store.publish_schema("1m:2d"),
        store.publish_schema("1m:2d"),
        store.recorded_schema(),
    )


def test_a_refused_tag_writes_nothing_and_does_not_hold_back_the_others(store, raw):
    """A tag the store refuses (foreign data in one of its keys) writes nothing, is reported, and the rest land."""
    plan = plan_for({"pk": "good"}, {"pk": "bad"})
    day = NOW // 86400 * 86400
    blocker = keys.data_key(keys.tag(("bad",)), 86400, day, "hits", paths.ROOT_PARENT)
    raw.set(blocker, "not a sorted set")
    done = set()

    applied = store.apply(plan, 1, done)
    raw.delete(blocker)

    assert ([("bad",)], {("good",), ("bad",), ()}) == ([pk for pk, _ in applied.refused], done)
    assert (1.0, 0.0, 0.0) == (
        totals(store, "good")["_"]["hits"],
        totals(store, "bad", period="hour")["_"]["hits"],
        totals(store, "bad", period="seven")["_"]["hits"],
    )
