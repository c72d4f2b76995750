"""
Ingest CPU cost per line, in process: native JSON events and statsd lines through the
real parse + aggregate path (:meth:`hailwhale.aggregate.ingest.Ingest.datagram`), no sockets and
no store.  For profiling the hot path; ``--profile`` prints the top of a cProfile.

    .venv/bin/python bench/ingest_cpu.py [--datagrams 20000] [--profile native|statsd|statsd1|varying|timers|distinct]

native: JSON events (2-level pk, 2 dimensions, 3 metrics), 20 per datagram; statsd:
counters over 100 names, 20 lines per datagram (so lines repeat); statsd1: the same, one
line per datagram; varying: counters over 100 names with values that vary (lines seldom
repeat, each is parsed); timers: timings over 100 names with values that vary (each also
counted in its name's distribution sketch); distinct: counters over 50,000 names, 20 per
datagram, each name once per pass, the accumulator swapped after each pass (as a flush
every second does when each name comes once a second).
"""

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.aggregate.cardinality import Cardinality
from hailwhale.aggregate.ingest import Ingest
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.config import Config

COUNTRIES, DEVICES = ["US", "UK", "DE", "FR", "BR"], ["mac", "win", "ios", "android"]


def native_datagrams(lines: int = 20) -> list[bytes]:
    """Datagrams of native events: 2-level pk, 2 dimensions, 3 metrics (as bench/ingest_udp.py sends)."""
    return [
        b"\n".join(
            json.dumps(
                {
                    "pk": ["bench", "native"],
                    "dimensions": {"country": COUNTRIES[(i + j) % 5], "device": DEVICES[j % 4]},
                    "metrics": {"revenue": 1.5, "visitors": 1, "clicks": 2},
                },
                separators=(",", ":"),
            ).encode()
            for j in range(lines)
        )
        for i in range(50)
    ]


def statsd_datagrams(lines: int) -> list[bytes]:
    """Datagrams of statsd counters over 100 names (as bench/ingest_udp.py sends)."""
    return [b"\n".join(f"bench.counter{(i * lines + j) % 100}:1|c".encode() for j in range(lines)) for i in range(50)]


def varying_datagrams(lines: int) -> list[bytes]:
    """Datagrams of statsd counters over 100 names whose values vary, so that lines seldom repeat."""
    return [
        b"\n".join(f"bench.counter{(i * lines + j) % 100}:{(i * lines + j) % 997 + 1}|c".encode() for j in range(lines))
        for i in range(5000)
    ]


def distinct_datagrams(names: int) -> list[bytes]:
    """Datagrams of statsd counters, 20 distinct names each, ``names`` in all."""
    return [b"\n".join(f"bench.n{j}:1|c".encode() for j in range(i, i + 20)) for i in range(0, names, 20)]


def timer_datagrams(lines: int) -> list[bytes]:
    """Datagrams of statsd timers over 100 names, values varying (each also feeds the name's ms.dist sketch)."""
    return [
        b"\n".join(f"bench.timer{(i * lines + j) % 100}:{(i * lines + j) % 997 + 1}|ms".encode() for j in range(lines))
        for i in range(5000)
    ]


def ingest() -> Ingest:
    config = Config()
    return Ingest(
        Accumulator(config.schema.finest.interval, config.max_pending_keys),
        SelfStats(),
        Cardinality(config.max_children, config.max_tracked_children),
        config.event_limits,
        time.time,
        lambda line, message: None,
    )


def run(packets: list[bytes], count: int, swap: bool = False) -> tuple[float, int]:
    """Seconds per line over ``count`` datagrams, and the lines counted (swapping after each pass if ``swap``)."""
    target = ingest()
    datagram = target.datagram
    lines = sum(packet.count(b"\n") + 1 for packet in packets) * count // len(packets)
    start = time.process_time()  # CPU time: other processes on the machine do not count
    for i in range(count):
        datagram(packets[i % len(packets)])
        if swap and i % len(packets) == len(packets) - 1:
            target.accumulator.swap()
    took = time.process_time() - start
    assert target._stats.lines_ok == lines, (target._stats.lines_ok, lines)
    return took / lines, lines


CASES = {
    "native": lambda: native_datagrams(20),
    "statsd": lambda: statsd_datagrams(20),
    "statsd1": lambda: statsd_datagrams(1),
    "varying": lambda: varying_datagrams(20),
    "timers": lambda: timer_datagrams(20),
    "distinct": lambda: distinct_datagrams(50_000),
}
SWAPPED = {"distinct"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datagrams", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", choices=sorted(CASES))
    args = parser.parse_args()
    if args.profile:
        packets = CASES[args.profile]()
        profile = cProfile.Profile()
        profile.runcall(run, packets, args.datagrams, args.profile in SWAPPED)
        pstats.Stats(profile).sort_stats("tottime").print_stats(18)
        return
    print(f"{'lines':>8} {'lines/datagram':>14} {'µs/line (best of ' + str(args.repeat) + ')':>22} {'lines/s':>10}")
    for name, make in CASES.items():
        packets = make()
        count = args.datagrams * 10 if name == "statsd1" else args.datagrams
        best = min(run(packets, count, name in SWAPPED)[0] for _ in range(args.repeat))
        per = packets[0].count(b"\n") + 1
        print(f"{name:>8} {per:>14} {best * 1e6:>22.2f} {1 / best:>10,.0f}")


if __name__ == "__main__":
    main()
