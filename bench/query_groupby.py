"""
Group-by queries: the seed's headline question, and top-20 by a ratio among 10,000 children.

Starts `twistd -n hailwhale` (embedded Valkey in a temporary directory), writes the data
through the real flush path (rollup plan + store script), then measures, in one run:

- "ours, HTTP": GET /totals with depth=1, sort and limit, over a kept-alive connection;
- "ours, Python": the same query through the blocking Whale API (same planner);
- "naive, Python": list the children, fetch every child's daily values for every metric
  (pipelined ZMSCORE per day and metric), add them up, compute ratios and sort in Python.

    .venv/bin/python bench/query_groupby.py [--requests 300]
"""

import argparse
import gc
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hailwhale.aggregate import rollup  # noqa: E402
from hailwhale.model import events, keys  # noqa: E402
from hailwhale.model.fields import Limits  # noqa: E402
from hailwhale.model.schema import DAY, parse_schema  # noqa: E402
from hailwhale.store import Store  # noqa: E402
from hailwhale.testing import free_port  # noqa: E402
from hailwhale.whale import Whale  # noqa: E402

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
HEADLINE_METRICS = ["impressions", "clicks", "visitors", "sales", "revenue", "revenue/visitors"]


def load(store: Store, pk: str, children: int, metrics: dict, now: float, seq: int) -> None:
    """One event per child per day for the last 30 days, written as the flush writes."""
    entries = {}
    today = int(now // DAY) * DAY
    for day in range(30):
        when = today - day * DAY + 3600
        for i in range(children):
            event = events.from_fields(
                {
                    "pk": pk,
                    "dimensions": {"country": f"C{i:05d}"},
                    "metrics": {name: make(i, day) for name, make in metrics.items()},
                    "at": when,
                },
                now,
                Limits(max_dimension_nodes=64),
            )
            entries[(event.pk, event.dimensions, int(event.at // 60) * 60)] = dict(event.metrics)
        if len(entries) > 20_000 or day == 29:
            store.apply(rollup.plan(entries, SCHEMA, now), seq * 100 + day, set())
            entries = {}


def settle(client) -> None:
    """Wait until the store is not snapshotting or rewriting its log (a fork would compete for the 2 cores)."""
    time.sleep(1)
    for _ in range(600):
        info = client.info("persistence")
        if not (info["rdb_bgsave_in_progress"] or info["aof_rewrite_in_progress"] or info.get("aof_rewrite_scheduled")):
            return
        time.sleep(0.5)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000


def timed(function, count: int) -> tuple[float, float]:
    """p50 and p99 of ``count`` calls (the client's own garbage collector paused while timing)."""
    function()
    samples = []
    gc.disable()
    try:
        for _ in range(count):
            started = time.perf_counter()
            function()
            samples.append(time.perf_counter() - started)
    finally:
        gc.enable()
    return percentiles(samples)


def naive(client, pk: str, metrics: list[str], sort: tuple[str, str], limit: int, now: float):
    tag = keys.tag((pk,))
    children = sorted(m.decode() for m in client.smembers(keys.children_key(tag, "country")))
    today = int(now // DAY) * DAY
    pipe = client.pipeline(transaction=False)
    wanted = sorted(set(metrics) | set(sort))
    for metric in wanted:
        for day in range(30):
            pipe.zmscore(keys.data_key(tag, DAY, today - day * DAY, metric, "country"), children)
    replies = iter(pipe.execute())
    totals = {child: dict.fromkeys(wanted, 0.0) for child in children}
    for metric in wanted:
        for _ in range(30):
            for child, value in zip(children, next(replies)):
                if value is not None:
                    totals[child][metric] += value
    ratio = lambda t: t[sort[0]] / t[sort[1]] if t[sort[1]] else 0.0  # noqa: E731
    ranked = sorted(children, key=lambda c: (-ratio(totals[c]), c))[: limit or None]
    return [(c, totals[c]) for c in ranked]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    http_port = free_port()
    twistd = Path(sys.executable).parent / "twistd"
    with tempfile.TemporaryDirectory() as data_dir:
        daemon = subprocess.Popen(
            [
                str(twistd),
                "-n",
                "--pidfile=",
                "--logfile=" + os.path.join(data_dir, "twistd.log"),
                "hailwhale",
                "--http-port",
                str(http_port),
                "--udp-port",
                "0",
                "--collectd-port",
                "0",
                "--data-dir",
                data_dir,
            ],
            cwd=data_dir,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)

            def get(path: str):
                try:
                    connection.request("GET", path)
                    response = connection.getresponse()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    connection.close()  # the daemon closes a connection idle for a minute (while loading)
                    connection.request("GET", path)
                    response = connection.getresponse()
                body = response.read()
                assert response.status == 200, body
                return json.loads(body)

            for _ in range(100):
                try:
                    url = get("/stats")["store_url"]
                    break
                except OSError:
                    connection.close()
                    time.sleep(0.1)
            store = Store.connect(url)
            Whale.configure(url)
            now = time.time()
            started = time.perf_counter()
            load(
                store,
                "shop",
                200,
                {
                    "impressions": lambda i, d: 1000 + i,
                    "clicks": lambda i, d: 50 + i % 7,
                    "visitors": lambda i, d: 100 + i,
                    "sales": lambda i, d: 1 + i % 5,
                    "revenue": lambda i, d: (i * 37 % 200) + d,
                },
                now,
                1,
            )
            load(
                store,
                "big",
                10_000,
                {"revenue": lambda i, d: (i * 7919 % 10_000) / 100 + d, "visitors": lambda i, d: 1 + i % 13},
                now,
                2,
            )
            print(
                f"loaded 200 x 30 x 6 and 10,000 x 30 x 2 through the flush path in "
                f"{time.perf_counter() - started:.0f} s"
            )
            settle(store._client)

            headline = (
                "/totals?pk=shop&dimensions=country&depth=1&metrics="
                + quote(json.dumps(HEADLINE_METRICS))
                + "&period=thirty&sort="
                + quote("-revenue/visitors")
                + "&limit=20"
            )
            top20 = (
                "/totals?pk=big&dimensions=country&depth=1&metrics="
                + quote('["revenue","visitors"]')
                + "&period=thirty&sort="
                + quote("-revenue/visitors")
                + "&limit=20"
            )

            ours = get(top20)["thirty"]["rows"][1:]
            theirs = naive(store._client, "big", ["revenue", "visitors"], ("revenue", "visitors"), 20, now)
            assert [r["path"][-1] for r in ours] == [encode_last(c) for c, _ in theirs], "naive and ours disagree"
            assert len(get(headline)["thirty"]["rows"]) == 21

            rows = []
            for name, path, children, metrics, count in (
                (
                    "headline: 200 children x 30 days x 6 metrics, top 20",
                    headline,
                    "shop",
                    HEADLINE_METRICS,
                    args.requests,
                ),
                (
                    "top 20 by ratio among 10,000 children x 30 days",
                    top20,
                    "big",
                    ["revenue", "revenue/visitors"],
                    max(50, args.requests // 3),
                ),
            ):
                plain = [m for m in metrics if "/" not in m] + ["visitors"]
                http_ms = timed(lambda path=path: get(path), count)
                python_ms = timed(
                    lambda children=children, metrics=metrics: Whale.totals(
                        children, "country", metrics, "thirty", depth=1, sort="-revenue/visitors", limit=20
                    ),
                    count,
                )
                naive_ms = timed(
                    lambda children=children, plain=plain: naive(
                        store._client, children, plain, ("revenue", "visitors"), 20, now
                    ),
                    max(20, count // 5),
                )
                rows.append((name, http_ms, python_ms, naive_ms))
            print()
            print(
                "| query | ours over HTTP p50 / p99 (ms) | ours in Python p50 / p99 | naive in Python p50 / p99 "
                "| naive / ours (p50, Python) |"
            )
            print("|---|---:|---:|---:|---:|")
            for name, (h50, h99), (p50, p99), (n50, n99) in rows:
                print(
                    f"| {name} | {h50:.2f} / {h99:.2f} | {p50:.2f} / {p99:.2f} | {n50:.2f} / {n99:.2f} "
                    f"| {n50 / p50:.1f}x |"
                )
        finally:
            daemon.terminate()
            daemon.wait(30)


def encode_last(member: str) -> str:
    return json.loads(member)[-1]


if __name__ == "__main__":
    main()
