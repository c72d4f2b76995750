"""The store against a real Valkey server."""

import json
import time

import redis

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
    """A tag write larger than a script call holds goes in several calls, each applied once."""
    monkeypatch.setattr(store_module, "CALL_FIELDS", 7)
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


def test_a_refused_write_is_reported_and_holds_back_nothing_else(store, raw):
    """A bucket the store refuses (foreign data in a key of ours) is skipped and reported; the rest lands, once."""
    plan = plan_for({"pk": "good"}, {"pk": "bad"}, {"pk": "bad", "metrics": {"x": 2}})
    raw.set(keys.LAYOUT_KEY, NOW // 60 * 60 - 3600)  # this layout wrote live for an hour: NOW's minute is live
    blocker = keys.data_key(keys.tag(("bad",)), 60, NOW // 60 * 60, "hits", paths.ROOT_PARENT)
    raw.set(blocker, "not a sorted set")
    done: set = set()

    applied = store.apply(plan, 1, done)
    raw.delete(blocker)
    again = store.apply(plan, 1, set())

    assert ([("bad",)], 0, 1) == ([pk for pk, _ in applied.refused], len(again.refused), again.repeats)
    assert ({"hits": 1.0, "x": 0.0}, {"hits": 0.0, "x": 2.0}) == (
        totals(store, "good", metrics=["hits", "x"])["_"],
        totals(store, "bad", metrics=["hits", "x"])["_"],
    )


def test_a_pipeline_holds_about_one_call_of_work(store, monkeypatch):
    """
    Valkey runs a client's pipelined calls back to back, so a pipeline holds about one full
    call's work (a query waits for one call at most): writes of about CALL_FIELDS members,
    folds of about FOLD_TAGS tags; nothing is lost or counted twice for it.
    """
    monkeypatch.setattr(store_module, "CALL_FIELDS", 20)
    monkeypatch.setattr(store_module, "FOLD_TAGS", 3)
    pipelines: list[list] = []
    execute = redis.client.Pipeline.execute

    def noted(pipe, *args, **kwargs):
        pipelines.append([command[0][-1] for command in pipe.command_stack])  # each call's last argument
        return execute(pipe, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", noted)
    minute = NOW // 60 * 60 - 3600
    plan = plan_for(*({"pk": ["p", f"c{i}"], "metrics": {"x": i}, "at": minute} for i in range(30)))
    applied = store.apply(plan, 1, set())
    writes = len(pipelines)
    store.fold(applied.tags, minute, NOW, SCHEMA)

    calls = iter(store_module._calls(plan, store._slot))
    members = [sum(next(calls).members for _ in pipeline) for pipeline in pipelines[:writes]]
    folded = [sum(len(json.loads(args)["tags"]) for args in pipeline) for pipeline in pipelines[writes:]]
    assert writes > 1 and all(count <= 20 or len(pipeline) == 1 for count, pipeline in zip(members, pipelines))
    assert all(count <= 3 for count in folded) and len(applied.tags) == sum(folded)
    assert {"_": {"x": 435.0}} == totals(store, "p", metrics=["x"])


def test_pipelines_end_at_their_weight():
    """A pipeline takes calls while their weights add up to the bound, and always one at least."""
    weights = [5, 10, 30, 1, 1, 1, 20]

    ends, start = [], 0
    while start < len(weights):
        start = store_module._pipeline_end(weights, start, 20)
        ends.append(start)

    assert [2, 3, 6, 7] == ends
