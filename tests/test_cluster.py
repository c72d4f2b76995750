"""A real Redis Cluster (three Valkey nodes): every pk's keys in one slot, scripts routed by it."""

import pytest
import pytest_twisted
import redis.cluster

from hailwhale import testing
from hailwhale.aggregate import rollup
from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.model import events
from hailwhale.model.fields import Limits
from hailwhale.model.schema import parse_schema
from hailwhale.store import Store
from hailwhale.store import client as store_client
from hailwhale.testing import upcoming, wait_for
from hailwhale.whale import Whale
from tests.test_daemon import eventually, get_json, send_udp, start, totals_url

NOW = upcoming(1, 40)  # ahead of the clock the store expires keys by
SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")


@pytest.fixture(scope="module")
def cluster_url():
    servers = testing.start_valkey_cluster()
    yield f"redis://127.0.0.1:{servers[0].port}/0"
    for server in servers:
        server.stop()


def test_whale_on_a_cluster(cluster_url):
    """Writes spread over the cluster's nodes; totals, grouping, rank and the tree read back."""
    Whale.configure(cluster_url, schema="1m:2d,1h:35d,1d:3y", cluster=True)
    for pk, country, revenue in [(["Product", "1"], "US", 5), (["Product", "2"], "UK", 7), (["Product", "3"], "US", 1)]:
        Whale.count_now(pk, {"country": country}, {"revenue": revenue}, now=NOW)

    grouped = Whale.totals("Product", "country", "revenue", "today", depth=1, sort="-revenue", now=NOW)["today"]

    assert [("country", 13.0), ("UK", 7.0), ("US", 6.0)] == [
        (row["path"][-1], row["metrics"]["revenue"]) for row in grouped["rows"]
    ]
    assert (5.0, ["_", "country", ["country", "US"]]) == (
        Whale.total(["Product", "1"], "revenue", period="today", now=NOW),
        Whale.all_subdimensions(["Product", "1"]),
    )
    assert ["country", '["country", "UK"]', '["country", "US"]'] == list(
        Whale.rank("Product", "revenue", "country", "today", now=NOW)
    )


@pytest_twisted.ensureDeferred
async def test_daemon_on_a_cluster(cluster_url):
    """The daemon flushes to a cluster (--redis-cluster) and answers from it."""
    service, base, udp = start("--redis", cluster_url, "--redis-cluster", "--flush-interval", "0.1")
    try:
        send_udp(udp, b"\n".join(b'{"pk": ["shop", "p%d"], "metrics": {"n": 1}}' % i for i in range(50)))

        async def counted():
            _, body = await get_json(totals_url(base, "shop", metrics='["n"]'))
            return body if body["today"]["_"]["n"] == 50 else None

        assert {"today": {"_": {"n": 50.0}}} == await eventually(counted)
    finally:
        await service.stopService()


def test_gauges_and_unique_counts_on_a_cluster(cluster_url):
    """Gauges and unique counts (HyperLogLog keys read in a pipeline) work on a cluster too."""
    Whale.configure(cluster_url, schema="1m:2d,1h:35d,1d:3y", cluster=True)
    for visitor, depth in [("ann", 4), ("bob", 9), ("ann", 2)]:
        Whale.count_now(["site", "home"], None, {"visitors.unique": visitor, "queue.gauge": depth}, now=NOW)

    assert {"today": {"_": {"visitors.unique": 2.0, "queue.gauge": 2.0}}} == Whale.totals(
        "site", metrics=["visitors.unique", "queue.gauge"], periods="today", now=NOW
    )


def test_a_slot_moved_in_the_middle_of_a_flush_is_written_once(cluster_url, monkeypatch):
    """
    A flush whose calls reach a slot after it moved to another node (atomic slot migration)
    finds the slot's new node and writes there; a retry of the whole flush counts nothing twice.
    """
    client = redis.cluster.RedisCluster.from_url(cluster_url)
    client.flushall()
    store = Store.connect(cluster_url, cluster=True)
    monkeypatch.setattr(store_client, "CALL_FIELDS", 20)
    monkeypatch.setattr(store_client, "PIPELINED_CALLS", 3)
    accumulator = Accumulator(60, 10_000)
    for i in range(200):
        accumulator.add(events.from_fields({"pk": ["moved", f"p{i}"], "metrics": {"n": 1}}, NOW, Limits()))
    batch = accumulator.swap()
    plan = rollup.plan(batch.entries, SCHEMA, NOW)
    last_tag = plan.writes[-1].tag
    moved = []
    execute = store._execute

    def migrate_after_the_first_calls(calls, script=None):
        replies = execute(calls, script)
        if not moved:
            moved.append(migrate(client, client.keyslot(last_tag)))
        return replies

    monkeypatch.setattr(store, "_execute", migrate_after_the_first_calls)
    store.apply(plan, 1, set())
    store.apply(plan, 1, set())  # the whole flush again: every call was taken already

    Whale.configure(cluster_url, schema=str(SCHEMA), cluster=True)
    assert (True, 200.0, 1.0) == (
        moved[0][0] != moved[0][1],
        Whale.total("moved", "n", period="today", now=NOW),
        Whale.total(list(plan.writes[-1].pk), "n", period="today", now=NOW),
    )


def migrate(client, slot: int) -> tuple[str, str]:
    """Move ``slot`` to another node (Valkey's atomic slot migration) and wait until it is there."""
    source = client.nodes_manager.get_node_from_slot(slot)
    target = next(node for node in client.get_primaries() if node.name != source.name)
    target_id = target.redis_connection.execute_command("CLUSTER", "MYID").decode()
    source.redis_connection.execute_command("CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", slot, slot, "NODE", target_id)
    wait_for(
        lambda: any(
            migration[b"state"] == b"success" and migration[b"slot_ranges"] == f"{slot}-{slot}".encode()
            for migration in source.redis_connection.execute_command("CLUSTER", "GETSLOTMIGRATIONS")
        ),
        30,
        "the slot to move",
    )
    return source.name, target.name
