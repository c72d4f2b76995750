"""
collectd input cost on one core, in process (no sockets): parsing alone, and the whole
receiver (parse, verify or decrypt, counter increases, ingest into the accumulator), for
real collectd packets sent plain, signed and encrypted, next to native JSON event lines.

The packets are the ones captured from collectd 5.12 in tests/data (26 and 28 value lists
from load, memory, cpu and interface), replayed with their times moved on by a second per
copy so that every COUNTER/DERIVE sample is a fresh one; signed and encrypted copies are
made as collectd makes them (the tests check that these builders match collectd's bytes).

    .venv/bin/python bench/collectd_parse.py [--packets 3000] [--repeat 5]
"""

import argparse
import json
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import task

from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.aggregate.cardinality import Cardinality
from hailwhale.aggregate.ingest import Ingest
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.formats import typesdb
from hailwhale.formats.collectd import TIME_HR, Security, SecurityLevel, parse_packet
from hailwhale.formats.collectd_events import ValueListEvents
from hailwhale.formats.cumulative import Cumulative
from hailwhale.model.fields import Limits
from hailwhale.receivers.collectd import AuthFile, CollectdReceiver
from hailwhale.testing.collectd import collectd_encrypted, collectd_signed

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def shifted(packet: bytes, seconds: int) -> bytes:
    """``packet`` (plain) with every TIME_HR moved ``seconds`` later."""
    out, offset = bytearray(packet), 0
    while offset < len(out):
        kind, length = struct.unpack_from(">HH", out, offset)
        if kind == TIME_HR:
            struct.pack_into(">Q", out, offset + 4, struct.unpack_from(">Q", out, offset + 4)[0] + (seconds << 30))
        offset += length
    return bytes(out)


def receiver(now: float, auth: AuthFile | None = None):
    clock = task.Clock()
    clock.advance(now)
    stats = SelfStats()
    accumulator = Accumulator(60, 10**7)
    ingest = Ingest(accumulator, stats, Cardinality(10**6, 10**7), Limits(), clock.seconds, lambda *_: None)
    to_events = ValueListEvents(
        typesdb.BUILTIN, Limits(), Cumulative(10**6, stats.collectd.cumulative), stats.collectd.values_skipped
    )
    return CollectdReceiver(ingest, to_events, SecurityLevel.NONE, auth, stats.collectd, clock.seconds), ingest, stats


def timed(function, items) -> float:
    start = time.perf_counter()
    for item in items:
        function(item)
    return time.perf_counter() - start


def best(repeat: int, run) -> float:
    """The shortest of ``repeat`` runs: the machine is shared, and noise only ever adds time."""
    return min(run() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    originals = [(DATA / f"collectd_none_{n}.bin").read_bytes() for n in (1, 2)]
    plain = [shifted(originals[i % 2], i // 2) for i in range(args.packets)]
    variants = {
        "plain": plain,
        "signed": [collectd_signed(p, b"alice", b"secret") for p in plain],
        "encrypted": [collectd_encrypted(p, b"alice", b"secret", i.to_bytes(16, "big")) for i, p in enumerate(plain)],
    }
    value_lists = sum(len(parse_packet(p).value_lists) for p in plain)
    last_time = max(vl.time for vl in parse_packet(plain[-1]).value_lists)
    security = Security(SecurityLevel.NONE, {b"alice": b"secret"})
    auth_path = Path(tempfile.mkdtemp()) / "collectd.passwd"
    auth_path.write_text("alice: secret\n")

    print(f"{args.packets} packets, {value_lists / args.packets:.1f} value lists each, {len(plain[0])} bytes (plain)")
    print(f"{'':>10} {'parse packets/s':>16} {'parse lists/s':>14} {'receiver packets/s':>19} {'receiver lists/s':>17}")
    baseline = None
    for name, packets in variants.items():
        parse_seconds = best(args.repeat, lambda packets=packets: timed(lambda p: parse_packet(p, security), packets))

        def receive(packets=packets) -> float:
            protocol, _, stats = receiver(last_time + 1, AuthFile(str(auth_path)))
            took = timed(lambda p: protocol.datagramReceived(p, ("127.0.0.1", 1)), packets)
            assert stats.collectd.packets_ok == args.packets and stats.collectd.value_lists == value_lists, stats
            return took

        receive_seconds = best(args.repeat, receive)
        baseline = baseline or receive_seconds
        print(
            f"{name:>10} {args.packets / parse_seconds:>16,.0f} {value_lists / parse_seconds:>14,.0f}"
            f" {args.packets / receive_seconds:>19,.0f} {value_lists / receive_seconds:>17,.0f}"
            f"   ({receive_seconds / baseline:.2f}x plain's receiver time)"
        )

    lines = [
        json.dumps(
            {
                "pk": ["collectd", "host", "interface"],
                "dimensions": ["if_octets", f"eth{i % 8}"],
                "metrics": {"rx": i, "tx": i},
                "at": last_time - i % 3000,
            }
        ).encode()
        for i in range(value_lists)
    ]
    datagrams = [b"\n".join(lines[i : i + 20]) for i in range(0, len(lines), 20)]

    def ingest_lines() -> float:
        _, ingest, stats = receiver(last_time + 1)
        took = timed(ingest.datagram, datagrams)
        assert stats.lines_ok == value_lists, stats
        return took

    line_seconds = best(args.repeat, ingest_lines)
    print(
        f"native JSON event lines (20 per datagram) through the ingest: {value_lists / line_seconds:,.0f} events/s; "
        f"time per event, JSON line / plain collectd value list: {line_seconds / baseline:.2f}"
    )


if __name__ == "__main__":
    main()
