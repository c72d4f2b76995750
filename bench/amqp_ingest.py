"""
Events consumed from a RabbitMQ stream, end to end into the store.

One command; it starts a private RabbitMQ node (Debian's rabbitmq-server, as the tests
do) and a Valkey server, publishes a backlog into a stream (publisher confirms), then
starts ``twistd -n hailwhale --amqp ...`` and times how long the daemon takes to read
the whole backlog and commit it to the store: from the moment it reports being connected
to the moment ``/stats`` says every event is committed (then ``/totals`` is checked to
hold them all).  Messages/s and events/s are the backlog over that time; the daemon's CPU
seconds over it are read from ``/proc``.

Each run is a message shape (lines per message, statsd counters or JSON events) and a
prefetch window (``--amqp-prefetch``); the broker, the store and the daemon share the
machine's two cores.

    .venv/bin/python bench/amqp_ingest.py                       # every shape, about 3 minutes
    .venv/bin/python bench/amqp_ingest.py --lines 100 --prefetch 2000 --events 500000
"""

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hailwhale import testing  # noqa: E402
from hailwhale.testing.processes import Daemon  # noqa: E402
from hailwhale.testing.rabbitmq import RabbitNode, declare_stream, publish  # noqa: E402

COUNTRIES, DEVICES = ["US", "UK", "DE", "FR", "BR"], ["mac", "win", "ios", "android"]


def bodies(kind: str, lines: int, messages: int) -> list[bytes]:
    made = []
    n = 0
    for _ in range(messages):
        block = []
        for _ in range(lines):
            if kind == "statsd":
                block.append(b"r.c%d:1|c" % (n % 100))
            else:
                block.append(
                    b'{"pk":["shop","p%d"],"dimensions":{"country":"%s","device":"%s"},'
                    b'"metrics":{"revenue":%d,"items":2}}'
                    % (n % 50, COUNTRIES[n % 5].encode(), DEVICES[n % 4].encode(), n % 100)
                )
            n += 1
        made.append(b"\n".join(block))
    return made


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return json.loads(response.read())


def run(node: RabbitNode, valkey_url: str, kind: str, lines: int, events: int, prefetch: int) -> dict:
    queue = f"bench-{kind}-{lines}-{prefetch}-{time.monotonic_ns()}"
    messages = max(1, events // lines)
    events = messages * lines
    declare_stream(node.url, queue)
    started = time.monotonic()
    publish(node.url, bodies(kind, lines, messages), queue=queue)
    publish_seconds = time.monotonic() - started
    redis.Redis.from_url(valkey_url).flushall()
    directory = Path(tempfile.mkdtemp(prefix="hw-bench-amqp-"))
    daemon = Daemon(
        directory,
        "--redis",
        valkey_url,
        "--amqp",
        node.url,
        "--amqp-queue",
        queue,
        "--amqp-prefetch",
        str(prefetch),
        "--collectd-port",
        "0",
    )
    try:
        while not (stats := daemon.get("/stats")["amqp"])["connected"]:
            time.sleep(0.01)
        t0, cpu0 = time.monotonic(), cpu_seconds(daemon.process.pid)
        while (stats := daemon.get("/stats")["amqp"])["events_committed"] < events:
            time.sleep(0.02)
        elapsed, cpu = time.monotonic() - t0, cpu_seconds(daemon.process.pid) - cpu0
        pk = "r" if kind == "statsd" else "shop"
        totals = daemon.get(f"/totals?pk={pk}&metrics={quote(json.dumps(['hits']))}&periods=%5B%22day%22%5D")
        counted = totals["day"]["_"]["hits"]
    finally:
        daemon.kill()
    return {
        "kind": kind,
        "lines": lines,
        "prefetch": prefetch,
        "messages": messages,
        "events": events,
        "counted": counted,
        "seconds": elapsed,
        "messages_per_s": messages / elapsed,
        "events_per_s": events / elapsed,
        "cpu_us_per_event": cpu / events * 1e6,
        "batches": stats["batches_committed"],
        "publish_messages_per_s": messages / publish_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", nargs="+", default=["statsd", "json"], choices=["statsd", "json"])
    parser.add_argument("--lines", nargs="+", type=int, default=[1, 10, 100])
    parser.add_argument("--prefetch", nargs="+", type=int, default=[2000])
    parser.add_argument("--events", type=int, default=300_000, help="events per run (at most 20,000 messages)")
    parser.add_argument("--schedulers", type=int, default=2, help="Erlang schedulers of the broker (cores it may use)")
    args = parser.parse_args()
    node = RabbitNode(schedulers=args.schedulers).start()
    valkey = testing.start_valkey()
    print(
        f"RabbitMQ node ({args.schedulers} schedulers) up in {node.boot_seconds:.1f} s; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print("| message | lines/message | prefetch | messages | messages/s | events/s | daemon CPU µs/event | batches |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    try:
        for kind in args.kind:
            for lines in args.lines:
                for prefetch in args.prefetch:
                    events = min(args.events, 20_000 * lines)
                    found = run(node, testing.valkey_url(valkey), kind, lines, events, prefetch)
                    flag = "" if found["counted"] == found["events"] else f" (counted {found['counted']:.0f}!)"
                    print(
                        f"| {kind} | {lines} | {prefetch:,} | {found['messages']:,} | {found['messages_per_s']:,.0f} | "
                        f"{found['events_per_s']:,.0f}{flag} | {found['cpu_us_per_event']:.1f} | {found['batches']} |",
                        flush=True,
                    )
    finally:
        node.close()
        valkey.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
