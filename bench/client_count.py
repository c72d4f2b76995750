"""
``Client.count`` (fire and forget over UDP): events per second from one Python thread,
with ``batch()`` (lines packed into datagrams) and without (one datagram per event), side
by side, against a real daemon; then what the daemon counted (``/totals`` after a flush),
so a fast sender that loses events shows it.  Also ``Client.count_now`` (HTTP, kept
alive, in the store when it returns) and ``Whale.count_now`` (the store directly) for
scale.

    .venv/bin/python bench/client_count.py            # about a minute
    .venv/bin/python bench/client_count.py --events 200000 --repeat 5
"""

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hailwhale import testing
from hailwhale.client import Client
from hailwhale.testing.processes import Daemon
from hailwhale.whale import Whale


def counted(hw: Client, pk: str, expected: int, wait: float = 30.0) -> int:
    deadline = time.monotonic() + wait
    while True:
        hw.flush()
        found = int(hw.total(pk, "hits", period="today"))
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def send(hw: Client, pk: str, events: int, batched: bool) -> float:
    """Seconds to count ``events`` events through ``hw.count``."""
    dimensions, metrics = {"country": "US", "device": "mac"}, {"revenue": 5, "items": 2}
    started = time.perf_counter()
    if batched:
        with hw.batch():
            for _ in range(events):
                hw.count(pk, dimensions, metrics)
    else:
        for _ in range(events):
            hw.count(pk, dimensions, metrics)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--http-events", type=int, default=2_000)
    args = parser.parse_args()
    server = testing.start_valkey()
    with tempfile.TemporaryDirectory() as folder:
        daemon = Daemon(Path(folder), "--redis", testing.valkey_url(server), "--collectd-port", "0")
        try:
            hw = Client(daemon.base, udp=("127.0.0.1", daemon.udp_port))
            rows = []
            for batched in (False, True):
                rates, losses = [], []
                for _ in range(args.repeat):
                    pk = f"bench-{uuid.uuid4().hex[:8]}"
                    seconds = send(hw, pk, args.events, batched)
                    rates.append(args.events / seconds)
                    losses.append(args.events - counted(hw, pk, args.events))
                rows.append(("batch()" if batched else "one datagram each", rates, losses))
            pk = f"bench-{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            for _ in range(args.http_events):
                hw.count_now(pk, {"country": "US"}, {"revenue": 5})
            http_rate = args.http_events / (time.perf_counter() - started)
            Whale.configure(testing.valkey_url(server))
            started = time.perf_counter()
            for _ in range(args.http_events):
                Whale.count_now(pk, {"country": "US"}, {"revenue": 5})
            whale_rate = args.http_events / (time.perf_counter() - started)
        finally:
            daemon.kill()
            server.stop()
    print(f"{args.events:,} events per run, {args.repeat} runs, one sending thread; daemon on the same machine\n")
    print("| Client.count | events/s (median) | best | events lost (max of runs) |")
    print("|---|---|---|---|")
    for name, rates, losses in rows:
        print(f"| {name} | {statistics.median(rates):,.0f} | {max(rates):,.0f} | {max(losses)} |")
    ratio = statistics.median(rows[1][1]) / statistics.median(rows[0][1])
    print(f"\nbatch() / one datagram each: {ratio:.1f}x")
    print(f"\nClient.count_now (HTTP, kept alive): {http_rate:,.0f} events/s over {args.http_events:,}")
    print(f"Whale.count_now (the store directly): {whale_rate:,.0f} events/s over {args.http_events:,}")


if __name__ == "__main__":
    main()
