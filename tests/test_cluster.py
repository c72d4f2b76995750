"""A real Redis Cluster (three Valkey nodes): every pk's keys in one slot, scripts routed by it."""

import json
import threading
import time
import urllib.error

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
from hailwhale.testing import cluster_ok, upcoming, wait_for
from hailwhale.testing.processes import Daemon
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
    monkeypatch.setattr(store_client, "CALLS_IN_FLIGHT", 3)
    accumulator = Accumulator(60, 10_000)
    for i in range(200):
        accumulator.add(events.from_fields({"pk": ["moved", f"p{i}"], "metrics": {"n": 1}}, NOW, Limits()))
    batch = accumulator.swap()
    plan = rollup.plan(batch.entries, SCHEMA, NOW)
    last = [write for write in plan.writes if write.sums][-1]  # a pk's counts, not the pk tree root's index
    moved = []
    execute = store._execute

    def migrate_after_the_first_calls(calls, *more, **options):
        replies = execute(calls, *more, **options)
        if not moved:
            moved.append(migrate(client, client.keyslot(last.tag)))
        return replies

    monkeypatch.setattr(store, "_execute", migrate_after_the_first_calls)
    store.apply(plan, 1, set())
    store.apply(plan, 1, set())  # the whole flush again: every call was taken already

    Whale.configure(cluster_url, schema=str(SCHEMA), cluster=True)
    assert (True, 200.0, 1.0) == (
        moved[0][0] != moved[0][1],
        Whale.total("moved", "n", period="today", now=NOW),
        Whale.total(list(last.pk), "n", period="today", now=NOW),
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


def test_a_master_restarted_under_load_loses_nothing_and_counts_nothing_twice(tmp_path):
    """
    A ``twistd -n hailwhale --redis-cluster`` process counts a steady stream of events
    (30 pks, so every master holds some) while one master of the 3-node cluster is stopped
    (SIGTERM) for longer than the cluster's node timeout, then started again on its port
    with its append-only file; meanwhile queries answer 503.  Afterwards every pk's total
    in the store, and the daemon's answer, is exactly what was sent, and every event the
    daemon took in is written.

    Why this catches the ways it could go wrong (each tried by breaking the code on purpose):

    - Flushes fail while the master is away (asserted: ``flushes_failed`` grows): first
      only its calls (the other masters take theirs: the part is half written), then all
      of them once the cluster says it is down.  Were a failed batch dropped, the daemon
      would never have written all it took in, and the totals would be short.
    - A retried part is sent again on the refreshed slot map: the calls the other masters
      took are not re-sent (the part's ``done`` set) and any call whose reply the stop cut
      off is skipped by the store (its batch token).  Were re-sending not idempotent
      (no token check, every call of the part re-sent), the half-written parts would count
      their live masters' share again: the totals come out over (6,940 for 6,700 sent).
    - A cluster refusal (``CLUSTERDOWN``, ``MOVED``, ``TRYAGAIN``) is a ``ResponseError``
      in redis-py: it must keep the batch for retry, not be taken as the store refusing a
      write for good, which drops the write and counts it in ``writes_refused``.
    """
    servers = testing.start_valkey_cluster(appendonly="yes", appendfsync="always")
    url = f"redis://127.0.0.1:{servers[0].port}/0"
    daemon = None
    try:
        daemon = Daemon(tmp_path, "--redis", url, "--redis-cluster", "--flush-interval", "0.2", "--collectd-port", "0")
        at = time.time()
        sent = [0] * 30
        stop = threading.Event()

        def send() -> None:  # 10 datagrams of 30 events every 10 ms or so
            while not stop.is_set():
                for _ in range(10):
                    daemon.send_udp(
                        b"\n".join(
                            b'{"pk": ["load", "p%d"], "at": %f, "metrics": {"n": 1}}' % (i, at) for i in range(30)
                        )
                    )
                    sent[:] = [count + 1 for count in sent]
                time.sleep(0.01)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            wait_for(lambda: daemon.get("/stats")["flushes_ok"] >= 3, 30, "the first flushes")
            stopped = servers[1]
            stopped.stop()
            wait_for(lambda: daemon.get("/stats")["flushes_failed"] >= 3, 30, "flushes to fail")
            time.sleep(3)  # past the node timeout (2 s): the others mark it failed and refuse every slot
            failed_while_away = daemon.get("/stats")["flushes_failed"]
            with pytest.raises(urllib.error.HTTPError) as refused:
                daemon.get("/totals?pk=load&metrics=%5B%22n%22%5D&periods=%5B%22today%22%5D")
            answer_while_away = (refused.value.code, json.loads(refused.value.read())["reason"])
            stopped.start()
            wait_for(lambda: cluster_ok(servers), 30, "the cluster to be whole again")
            flushed = daemon.get("/stats")["flushes_ok"]
            wait_for(lambda: daemon.get("/stats")["flushes_ok"] >= flushed + 3, 30, "flushes after the restart")
        finally:
            stop.set()
            sender.join()
        wait_for(lambda: drained(daemon), 60, "everything taken in to be written")
        stats = daemon.get("/stats")
        answered = daemon.get("/totals?pk=load&metrics=%5B%22n%22%5D&periods=%5B%22thirty%22%5D")["thirty"]["_"]["n"]
        status = daemon.stop()
    finally:
        if daemon is not None:
            daemon.kill()
    Whale.configure(url, schema=str(SCHEMA), cluster=True)
    counted = [Whale.total(["load", f"p{i}"], "n", period="today", now=at) for i in range(30)]
    for server in servers:
        server.stop()

    print(
        f"\nmaster restarted under load: sent {sum(sent)}, taken in {stats['lines_ok']}, flushed "
        f"{stats['events_flushed']}; {failed_while_away} flushes failed while it was away, "
        f"{stats['writes_repeated']} calls found already applied, {stats['writes_refused']} refused"
    )
    assert (True, (503, "store_unavailable"), 0, sum(sent), stats["lines_ok"]) == (
        failed_while_away >= 3,
        answer_while_away,
        stats["writes_refused"],
        stats["lines_ok"],
        stats["events_flushed"],
    )
    assert ([float(count) for count in sent], float(sum(sent))) == (counted, answered)
    assert status != 1, daemon.log()


def drained(daemon: Daemon):
    """The daemon's /stats once everything it took in is written, else None."""
    stats = daemon.get("/stats")
    return stats if stats["events_flushed"] == stats["events_accepted"] and not stats["backlog_events"] else None


def test_a_flush_while_a_master_is_away_fails_clearly_and_the_retry_writes_the_rest(monkeypatch):
    """
    With one master stopped, a running writer applying a flush tries its calls a bounded number of times on a
    refreshed slot map, then raises a ConnectionError that says how many calls were not
    taken; the calls the other masters took are marked done.  Once the master is back
    (same port, its append-only file), the retry sends only the rest, and every pk counts once.
    """
    servers = testing.start_valkey_cluster(appendonly="yes", appendfsync="always")
    url = f"redis://127.0.0.1:{servers[0].port}/0"
    try:
        store = Store.connect(url, cluster=True)
        monkeypatch.setattr(store_client, "CALL_FIELDS", 20)
        accumulator = Accumulator(60, 10_000)
        accumulator.add(events.from_fields({"pk": ["before"], "metrics": {"n": 1}}, NOW, Limits()))
        store.apply(rollup.plan(accumulator.swap().entries, SCHEMA, NOW), 1, set())  # a running writer
        for i in range(60):
            accumulator.add(events.from_fields({"pk": ["away", f"p{i}"], "metrics": {"n": 1}}, NOW, Limits()))
        plan = rollup.plan(accumulator.swap().entries, SCHEMA, NOW)
        calls = len(store_client._calls(plan, store._slot))
        servers[2].stop()
        done: set[int] = set()
        with pytest.raises(redis.ConnectionError) as raised:
            store.apply(plan, 2, done)
        taken_while_away = len(done)
        servers[2].start()
        wait_for(lambda: cluster_ok(servers), 30, "the cluster to be whole again")
        applied = store.apply(plan, 2, done)

        Whale.configure(url, schema=str(SCHEMA), cluster=True)
        counted = [Whale.total(["away", f"p{i}"], "n", period="today", now=NOW) for i in range(60)]
    finally:
        for server in servers:
            server.stop()
    assert (True, True, 0, set(range(calls))) == (
        0 < taken_while_away < calls,
        f"did not take {calls - taken_while_away} of {calls} script calls" in str(raised.value),
        applied.repeats,
        done,
    )
    assert [1.0] * 60 == counted
