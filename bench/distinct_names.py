"""
Distinct statsd names: store work per distinct key, flush times, staleness and the headline
query under that load, for this checkout and an earlier revision side by side in one run.

For each revision, a daemon (`twistd -n hailwhale`, its own embedded Valkey, 1 s flushes)
first takes the headline query's data over HTTP (200 countries x 30 days x 6 metrics), and
answers the headline query (top 20 of 200 countries by revenue/visitors over `thirty`)
`--queries` times on an idle daemon.  Then, for each rate, a sender process sends N
distinct counter names (`bench.n<i>:1|c`, 20 lines per datagram) once a second for the
given seconds, while the bench asks the headline query over and over and reads /stats for
the slowest flush (for this checkout it also asks the same query straight from this process
to the store: the store's share of the wait, apart from the daemon's); after the sender
stops, it waits until `/totals` of `bench` (every name rolls up to it) holds every line
sent.  Store time is Valkey's INFO commandstats (the sum of every command's microseconds,
scripts and the commands inside them both counted, as BENCHMARKS.md has always reported
it), over the run, per distinct key and flush.

    .venv/bin/python bench/distinct_names.py --before b453c5b [--rates 5000:20,20000:20,50000:60]
"""

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hailwhale.testing import free_port  # noqa: E402
from hailwhale.whale import Whale  # noqa: E402

HEADLINE_METRICS = ["impressions", "clicks", "visitors", "sales", "revenue", "revenue/visitors"]
HEADLINE = (
    "/totals?pk=shop&dimensions=country&depth=1&metrics="
    + quote(json.dumps(HEADLINE_METRICS))
    + "&period=thirty&sort="
    + quote("-revenue/visitors")
    + "&limit=20"
)


def fetch(url: str, data: bytes | None = None, timeout: float = 30) -> bytes:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def get_json(url: str, data: bytes | None = None):
    return json.loads(fetch(url, data))


class Daemon:
    def __init__(self, checkout: Path, workdir: Path):
        self.http, self.udp = free_port(), free_port(socket.SOCK_DGRAM)
        self.data = workdir / f"daemon-{self.http}"
        self.data.mkdir()
        twistd = Path(sys.executable).parent / "twistd"
        self.process = subprocess.Popen(
            [
                str(twistd),
                "-n",
                "--pidfile=",
                f"--logfile={self.data}/twistd.log",
                "hailwhale",
                "--http-port",
                str(self.http),
                "--udp-port",
                str(self.udp),
                "--collectd-port",
                "0",
                "--data-dir",
                str(self.data),
                "--flush-interval",
                "1",
            ],
            cwd=self.data,
            env={**os.environ, "PYTHONPATH": str(checkout)},
        )
        self.base = f"http://127.0.0.1:{self.http}"
        for _ in range(300):
            try:
                self.store = redis.Redis.from_url(self.stats()["store_url"])
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the daemon from {checkout} did not start")

    def stats(self) -> dict:
        return get_json(self.base + "/stats")

    def hits(self, pk: str) -> int:
        answer = get_json(f"{self.base}/totals?pk={quote(pk)}&metrics=hits&periods=today")
        return int(answer["today"]["_"]["hits"])

    def store_usec(self) -> int:
        return sum(
            int(v["usec"])
            for name, v in self.store.info("commandstats").items()
            if name not in ("cmdstat_info", "cmdstat_ping")
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def load_shop(daemon: Daemon, now: float) -> None:
    """The headline query's data, over HTTP: 200 countries x 30 days x 6 metrics."""
    batch = []
    for day in range(30):
        for i in range(200):
            batch.append(
                {
                    "pk": "shop",
                    "dimensions": {"country": f"C{i:03d}"},
                    "at": now - day * 86400,
                    "metrics": {
                        "impressions": 1000 + i,
                        "clicks": 50 + i % 7,
                        "visitors": 100 + i,
                        "sales": 1 + i % 5,
                        "revenue": (i * 37 % 200) + day,
                    },
                }
            )
    for start in range(0, len(batch), 1000):
        fetch(daemon.base + "/count", json.dumps(batch[start : start + 1000]).encode())
    get_json(daemon.base + "/flush", b"")


def latencies_ms(daemon: Daemon, count: int) -> list[float]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", daemon.http, timeout=30)
    found = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", HEADLINE)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        found.append(1000 * (time.perf_counter() - started))
    connection.close()
    return found


def store_latencies_ms(count: int) -> list[float]:
    """The headline query from this process straight to the store (this checkout's ``Whale``): the store's part."""
    found = []
    for _ in range(count):
        started = time.perf_counter()
        Whale.totals("shop", "country", HEADLINE_METRICS, "thirty", depth=1, sort="-revenue/visitors", limit=20)
        found.append(1000 * (time.perf_counter() - started))
    return found


def send(port: int, names: int, seconds: int, tag: str) -> None:
    """N distinct names once a second for ``seconds`` seconds, 20 lines per datagram, spread over each second."""
    packets = [
        b"\n".join(f"bench.{tag}{j}:1|c".encode() for j in range(i, min(i + 20, names))) for i in range(0, names, 20)
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        start = time.perf_counter()
        for second in range(seconds):
            for slice_index in range(10):
                chunk = packets[slice_index::10]
                for packet in chunk:
                    sock.sendto(packet, ("127.0.0.1", port))
                wake = start + second + (slice_index + 1) / 10
                time.sleep(max(0.0, wake - time.perf_counter()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_rate(daemon: Daemon, names: int, seconds: int, queries: bool, direct: bool) -> dict:
    before_hits = daemon.hits("bench")
    before_usec = daemon.store_usec()
    sender = multiprocessing.Process(target=send, args=(daemon.udp, names, seconds, f"r{names}x"))
    sender.start()
    slowest, under_load, store_under_load = 0.0, [], []
    while sender.is_alive():
        if queries:
            under_load += latencies_ms(daemon, 5)
            if direct:
                store_under_load += store_latencies_ms(5)
        slowest = max(slowest, daemon.stats()["last_flush_seconds"] or 0.0)
        time.sleep(0.2)
    sender.join()
    stopped = time.perf_counter()
    sent = names * seconds
    counted, lag = 0, None
    while time.perf_counter() - stopped < 120:
        counted = daemon.hits("bench") - before_hits
        slowest = max(slowest, daemon.stats()["last_flush_seconds"] or 0.0)
        if counted >= sent:
            lag = time.perf_counter() - stopped
            break
        time.sleep(0.1)
    time.sleep(2)
    usec = daemon.store_usec() - before_usec
    return {
        "names": names,
        "seconds": seconds,
        "sent": sent,
        "counted": counted,
        "lag": lag,
        "slowest": slowest,
        "usec_per_key": usec / sent,
        "under_load": under_load,
        "store_under_load": store_under_load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the earlier revision to measure beside this checkout")
    parser.add_argument("--rates", default="5000:20,20000:20,50000:60", help="names per second:seconds, ...")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rates = [tuple(int(x) for x in item.split(":")) for item in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as workdir_text:
        workdir = Path(workdir_text)
        before = workdir / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
            check=True,
            capture_output=True,
        )
        try:
            results: dict = {}
            store_idle: list[float] = []
            for label, checkout in (("before", before), ("after", ROOT)):
                daemon = Daemon(checkout, workdir)
                direct = label == "after"
                try:
                    load_shop(daemon, time.time())
                    time.sleep(2)
                    idle = latencies_ms(daemon, args.queries)
                    if direct:
                        Whale.configure(daemon.stats()["store_url"])
                        store_idle[:] = store_latencies_ms(args.queries)
                    largest = max(r[0] for r in rates)
                    results[label] = (idle, [run_rate(daemon, n, s, n == largest, direct) for n, s in rates])
                finally:
                    daemon.stop()
            report(args.before, results, store_idle)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
            shutil.rmtree(before, ignore_errors=True)


def report(revision: str, results: dict, store_idle: list[float]) -> None:
    print(f"\n## distinct statsd names, {revision} (before) and this checkout (after), one run")
    print(
        "\n| names / s x s | | slowest flush (s) | in /totals after the sender stopped (s) | lost | store µs per key |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for index in range(len(results["after"][1])):
        for label in ("before", "after"):
            r = results[label][1][index]
            lag = f"{r['lag']:.1f}" if r["lag"] is not None else f"not within 120 s ({r['counted']:,} of {r['sent']:,})"
            print(
                f"| {r['names']:,} x {r['seconds']} | {label} | {r['slowest']:.2f} | {lag} | "
                f"{r['sent'] - r['counted']:,} | {r['usec_per_key']:.1f} |"
            )
    print("\n| headline query over HTTP (ms) | idle p50 / p99 | under the largest rate p50 / p99 | ratio of p99 |")
    print("|---|---:|---:|---:|")
    for label in ("before", "after"):
        idle, runs = results[label]
        loaded = runs[-1]["under_load"]
        print(
            f"| {label} | {statistics.median(idle):.2f} / {percentile(idle, 0.99):.2f} | "
            f"{statistics.median(loaded):.2f} / {percentile(loaded, 0.99):.2f} | "
            f"{percentile(loaded, 0.99) / percentile(idle, 0.99):.1f}x |"
        )
    loaded = results["after"][1][-1]["store_under_load"]
    print(
        f"| after, straight to the store from another process | {statistics.median(store_idle):.2f} / "
        f"{percentile(store_idle, 0.99):.2f} | {statistics.median(loaded):.2f} / {percentile(loaded, 0.99):.2f} | "
        f"{percentile(loaded, 0.99) / percentile(store_idle, 0.99):.1f}x |"
    )
    before, after = results["before"][1], results["after"][1]
    ratios = ", ".join(f"{b['names']:,}/s: {b['usec_per_key'] / a['usec_per_key']:.1f}x" for b, a in zip(before, after))
    print(f"\nstore time per key, before / after: {ratios}")


if __name__ == "__main__":
    main()
