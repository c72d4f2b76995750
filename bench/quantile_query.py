"""
Quantile queries: p99 over 30 days x 200 children, on a daemon with its embedded Valkey.

The daemon takes, over HTTP, 200 countries x 30 days x 20 latency values each
(`t.dist`, log-normal) and then answers, `--requests` times each over one kept-alive
connection: the root's p99 over `thirty`, and the 20 slowest countries by p99 over
`thirty` (a grouping sorted by a quantile, read child by child).

    .venv/bin/python bench/quantile_query.py [--requests 200]
"""

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from distinct_names import ROOT, Daemon, fetch, percentile

QUERIES = {
    "p99 of every value over thirty (the root)": "/totals?pk=api&metrics=" + quote('["t.dist:p99"]') + "&period=thirty",
    "20 slowest of 200 countries by p99 over thirty": "/totals?pk=api&dimensions=country&depth=1&metrics="
    + quote('["t.dist:p99","t.dist:p50"]')
    + "&sort="
    + quote("-t.dist:p99")
    + "&limit=20&period=thirty",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as workdir:
        daemon = Daemon(ROOT, Path(workdir))
        try:
            now = time.time()
            batch = [
                {
                    "pk": "api",
                    "dimensions": {"country": f"C{i:03d}"},
                    "at": now - day * 86400,
                    "metrics": {"t.dist": [round(rng.lognormvariate(3 + i / 200, 1), 3) for _ in range(20)]},
                }
                for day in range(30)
                for i in range(200)
            ]
            for start in range(0, len(batch), 500):
                fetch(daemon.base + "/count", json.dumps(batch[start : start + 500]).encode())
            fetch(daemon.base + "/flush", b"")
            connection = http.client.HTTPConnection("127.0.0.1", daemon.http, timeout=60)
            print("| query | p50 ms | p99 ms |\n|---|---:|---:|")
            for name, path in QUERIES.items():
                took = []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    connection.request("GET", path)
                    response = connection.getresponse()
                    response.read()
                    assert response.status == 200
                    took.append(1000 * (time.perf_counter() - started))
                print(f"| {name} | {statistics.median(took):.1f} | {percentile(took, 0.99):.1f} |")
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
