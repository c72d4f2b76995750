"""
Ingest over UDP with one worker and with two (``--workers 2``), side by side in one run.

One command; gcc compiles ``bench/udp_sender.c`` in a temporary folder.  For native
events (2-level pk, 2 dimensions, 3 metrics, 20 per datagram) and for statsd counters (20
lines per datagram), a daemon with one worker, then one with two, each on its own
embedded store, takes the same traffic from the same paced sender at rising offered
rates.  The sender sends out of many sockets (``--sockets``, each its own source port),
so that the kernel spreads the datagrams over the workers' sockets (SO_REUSEPORT hashes
the sender's address and port).  What the daemon took in is read from ``/stats``
(``lines_ok``, the total of every worker) once it stops changing.

A run's loss is the share of lines sent and not taken in; the "loss-free rate" is the
highest offered rate up to which every rate lost at most 0.1 %.  The ladder stops after two
rates in a row lost more than 5 %.  The table also gives the lines taken in per second at
each rate; the ratio printed is two workers' loss-free rate over one worker's, and the
ratio of the most lines per second either took in.

Nothing is pinned to a CPU: the workers need both cores of a 2-core machine, and the
sender takes its share of them too.

    .venv/bin/python bench/workers_ingest.py                   # about 6 minutes
    .venv/bin/python bench/workers_ingest.py --only native --seconds 2
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_udp import native_packets, statsd_packets, write_packets  # noqa: E402

from hailwhale.testing import free_port  # noqa: E402

LOSS_FREE = 0.1  # per cent
GIVE_UP = 5.0  # per cent, two rates in a row
LINES = 20
RATES = {  # datagrams per second, of 20 lines each
    "native": [2000, 4000, 6000, 8000, 10000, 12000, 14000, 16000, 18000, 20000, 24000],
    "statsd": [10000, 20000, 30000, 40000, 50000, 60000, 70000, 80000, 90000, 100000, 120000, 140000],
}


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


class Daemon:
    """``twistd -n hailwhale --workers N`` on free ports, with its embedded store in a folder of its own."""

    def __init__(self, workdir: Path, workers: int, flush_interval: float):
        self.http, self.udp = free_port(), free_port(socket.SOCK_DGRAM)
        data = workdir / f"hailwhale-{self.http}"
        data.mkdir()
        self.workers = workers
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "twistd"),
                "-n",
                "--pidfile=",
                f"--logfile={data}/twistd.log",
                "hailwhale",
                "--workers",
                str(workers),
                "--http-port",
                str(self.http),
                "--udp-port",
                str(self.udp),
                "--collectd-port",
                "0",
                "--data-dir",
                str(data),
                "--flush-interval",
                str(flush_interval),
            ],
            cwd=data,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.base = f"http://127.0.0.1:{self.http}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"hailwhale --workers {workers} did not start")
            time.sleep(0.2)

    def lines_ok(self, settle: float) -> int:
        """lines_ok of every worker, once it has not changed for ``settle`` seconds."""
        last, since = -1, time.monotonic()
        while True:
            now = get_json(self.base + "/stats")["lines_ok"]
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= settle:
                return last
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)


def send(binary: Path, port: int, packets_file: Path, rate: int, seconds: float, sockets: int) -> int:
    out = subprocess.run(
        [str(binary), str(port), str(rate), str(seconds), str(packets_file), str(sockets)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0])


def ladder(args, binary: Path, workdir: Path, kind: str, workers: int) -> list[tuple[int, int, int]]:
    """(offered lines/s, lines sent, lines taken in) at each rate, for ``workers`` workers."""
    packets = native_packets(f"w{workers}") if kind == "native" else statsd_packets(f"w{workers}", LINES)
    packets_file = workdir / f"{kind}-{workers}.bin"
    write_packets(packets_file, packets)
    daemon = Daemon(workdir, workers, args.flush_interval)
    results = []
    lossy = 0
    try:
        before = daemon.lines_ok(args.settle)
        for rate in RATES[kind]:
            sent = send(binary, daemon.udp, packets_file, rate, args.seconds, args.sockets) * LINES
            after = daemon.lines_ok(args.settle)
            results.append((rate * LINES, sent, after - before))
            before = after
            lossy = lossy + 1 if loss(sent, results[-1][2]) > GIVE_UP else 0
            print(
                f"  {kind} {workers} worker(s) {rate * LINES:>8} lines/s offered: "
                f"loss {loss(sent, results[-1][2]):6.2f} %",
                flush=True,
            )
            if lossy >= 2:
                break
    finally:
        daemon.stop()
    return results


def loss(sent: int, counted: int) -> float:
    return 100.0 * (sent - counted) / sent if sent else 0.0


def loss_free(results: list[tuple[int, int, int]]) -> int:
    best = 0
    for offered, sent, counted in results:
        if loss(sent, counted) > LOSS_FREE:
            break
        best = offered
    return best


def most_taken(results: list[tuple[int, int, int]], seconds: float) -> float:
    return max((counted / seconds for _, _, counted in results), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(RATES), help="one kind of traffic")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of sending per rate")
    parser.add_argument("--sockets", type=int, default=64, help="sender sockets (source ports)")
    parser.add_argument("--flush-interval", type=float, default=1.0)
    parser.add_argument("--settle", type=float, default=2.5, help="seconds /stats must hold still to be read")
    args = parser.parse_args()
    kinds = [args.only] if args.only else sorted(RATES)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        binary = workdir / "udp_sender"
        subprocess.run(["gcc", "-O2", "-o", str(binary), str(ROOT / "bench" / "udp_sender.c")], check=True)
        summary = []
        for kind in kinds:
            one = ladder(args, binary, workdir, kind, 1)
            two = ladder(args, binary, workdir, kind, 2)
            print(f"\n{kind}, {LINES} lines per datagram, {args.sockets} sender sockets, {args.seconds} s per rate")
            print(
                f"{'offered lines/s':>16} | {'1 worker: loss %':>17} {'taken/s':>9} | "
                f"{'2 workers: loss %':>18} {'taken/s':>9}"
            )
            for index in range(max(len(one), len(two))):
                row = [one[index] if index < len(one) else None, two[index] if index < len(two) else None]
                offered = (row[0] or row[1])[0]  # type: ignore[index]
                cells = [
                    f"{loss(r[1], r[2]):>17.2f} {r[2] / args.seconds:>9.0f}" if r else f"{'-':>17} {'-':>9}"
                    for r in row
                ]
                print(f"{offered:>16} | {cells[0]} | {cells[1]:>28}")
            free = (loss_free(one), loss_free(two))
            taken = (most_taken(one, args.seconds), most_taken(two, args.seconds))
            summary.append((kind, free, taken))
        print("\nsummary (lines per second)")
        for kind, free, taken in summary:
            free_ratio = f"{free[1] / free[0]:.2f}x" if free[0] else "n/a"
            print(
                f"{kind:>7}: loss-free {free[0]:>7} -> {free[1]:>7} ({free_ratio}); "
                f"most taken in {taken[0]:>9.0f} -> {taken[1]:>9.0f} ({taken[1] / taken[0]:.2f}x)"
            )


if __name__ == "__main__":
    main()
