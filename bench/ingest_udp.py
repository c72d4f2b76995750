"""
Ingest over UDP, end to end, side by side with Etsy statsd 0.9.0.

One command; it builds what it needs in a temporary folder (gcc compiles
``bench/udp_sender.c``, npm installs ``statsd@0.9.0``) and prints tables and ratios:

1. statsd counters, 1 line per datagram and 20 lines per datagram: hailwhale and Etsy
   statsd take the same traffic from the same sender at the same rates, in alternating
   runs.  hailwhale's count is read back from the store (``/totals`` after the flush),
   statsd's from its own ``statsd.metrics_received`` counter (admin interface).
   Then the same at 20 lines per datagram with values that vary, so that lines seldom
   repeat (hailwhale adds a line seen before by a table look-up, and tallies runs of
   such lines in C; this traffic gets no help from that).
2. Native events (2-level pk, 2 dimensions, 3 metrics, 20 per datagram): sent, counted in
   ``/totals``, and the time from the last send until ``/totals`` shows them all.
3. Memory per pending aggregation key: the daemon's RSS growth while N distinct keys are
   held (the flush held off).
4. Store work per flush against distinct keys and events: Valkey's ``INFO commandstats``
   (calls and microseconds) around one flush.

The sender is pinned to CPU 0 and the receivers to CPU 1 (``taskset``).  Each rate runs
``--repeat`` times; the tables give the best and the median loss, and for hailwhale the
lag of the best run (a loss-free one if any): seconds from the last send until
``/totals`` showed everything (a lag past two flush intervals means the receive buffer
hid a backlog: the daemon was not keeping up).  A
receiver's "loss-free rate" is the highest rate up to which every rate had a run that
lost at most 0.1 % (and, for hailwhale, lagged at most 2 s).

    .venv/bin/python bench/ingest_udp.py                 # everything, about 5 minutes
    .venv/bin/python bench/ingest_udp.py --only statsd   # or native, memory, flush
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import struct
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

LOSS_FREE = 0.1  # per cent
CAUGHT_UP = 2.0  # seconds after the last send by which a loss-free run has all in /totals: two flush intervals
SENDER_CPU, RECEIVER_CPU = "0", "1"
COUNTRIES, DEVICES = ["US", "UK", "DE", "FR", "BR"], ["mac", "win", "ios", "android"]


def get_json(url: str, data: bytes | None = None):
    with urllib.request.urlopen(url, data=data, timeout=30) as response:
        return json.loads(response.read())


def write_packets(path: Path, packets: list[bytes]) -> None:
    with open(path, "wb") as file:
        for packet in packets:
            file.write(struct.pack("<I", len(packet)) + packet)


def statsd_packets(prefix: str, lines: int, names: int = 100, varying: bool = False) -> list[bytes]:
    """
    statsd counter datagrams over ``names`` counters under ``prefix``: each counts 1, or if
    ``varying`` a value from 1 to 997 (so that a line seldom repeats).
    """
    if not varying:
        return [
            b"\n".join(f"{prefix}.c{(i * lines + j) % names}:1|c".encode() for j in range(lines))
            for i in range(max(names, 50))
        ]
    return [
        b"\n".join(f"{prefix}.c{(i * lines + j) % names}:{(i * lines + j) % 997 + 1}|c".encode() for j in range(lines))
        for i in range(5000)
    ]


def native_packets(tag: str, count: int = 500) -> list[bytes]:
    """Datagrams of 20 native events: 2-level pk, 2 dimensions, 3 metrics, values varying by line."""
    return [
        b"\n".join(
            json.dumps(
                {
                    "pk": ["bench", tag],
                    "dimensions": {"country": COUNTRIES[(i + j) % 5], "device": DEVICES[j % 4]},
                    "metrics": {
                        "revenue": round(1 + (i * 20 + j) % 997 / 100, 2),
                        "visitors": 1,
                        "clicks": (i + j) % 3,
                    },
                },
                separators=(",", ":"),
            ).encode()
            for j in range(20)
        )
        for i in range(count)
    ]


class Sender:
    def __init__(self, workdir: Path):
        self.binary = workdir / "udp_sender"
        self.workdir = workdir
        subprocess.run(["gcc", "-O2", "-o", str(self.binary), str(ROOT / "bench" / "udp_sender.c")], check=True)

    def send(self, port: int, packets: list[bytes], rate: float, seconds: float) -> tuple[int, float]:
        """Datagrams sent and the seconds it took."""
        path = self.workdir / "packets.bin"
        write_packets(path, packets)
        out = subprocess.run(
            ["taskset", "-c", SENDER_CPU, str(self.binary), str(port), str(rate), str(seconds), str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return int(out[0]), float(out[1])


def pinned(command: list[str]) -> list[str]:
    return ["taskset", "-c", RECEIVER_CPU, *command]


class Hailwhale:
    name = "hailwhale"

    def __init__(self, workdir: Path, *options: str):
        self.http, self.udp = free_port(), free_port(socket.SOCK_DGRAM)
        data = workdir / f"hailwhale-{self.http}"
        data.mkdir()
        self.process = subprocess.Popen(
            pinned(
                [
                    str(Path(sys.executable).parent / "twistd"),
                    "-n",
                    "--pidfile=",
                    f"--logfile={data}/twistd.log",
                    "hailwhale",
                    "--http-port",
                    str(self.http),
                    "--udp-port",
                    str(self.udp),
                    "--collectd-port",
                    "0",
                    "--data-dir",
                    str(data),
                    *options,
                ]
            ),
            cwd=data,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.base = f"http://127.0.0.1:{self.http}"
        for _ in range(300):
            try:
                self.stats()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("hailwhale did not start")

    def stats(self) -> dict:
        return get_json(self.base + "/stats")

    def hits(self, pk) -> int:
        url = f"{self.base}/totals?pk={quote(json.dumps(pk))}&metrics=hits&periods=today"
        return int(get_json(url)["today"].get("_", {}).get("hits", 0))

    def counted(self, pk, at_least: int, settle: float = 1.5, most: float = 20.0) -> tuple[int, float]:
        """
        What /totals counts for ``pk`` once it stops changing (or reaches ``at_least``), and when it first
        showed that.
        """
        start = time.perf_counter()
        last, since = -1, start
        while time.perf_counter() - start < most:
            now = self.hits(pk)
            if now != last:
                last, since = now, time.perf_counter()
            if last >= at_least or time.perf_counter() - since >= settle:
                break
            time.sleep(0.05)
        return last, since - start

    def rss_kib(self) -> int:
        return _status(self.process.pid, "VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)

    def kill(self) -> None:
        """Stop at once, without the final flush: the daemon and its embedded store, by their process ids."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        self.process.kill()
        self.process.wait(30)
        for child in children:
            try:
                os.kill(int(child), 9)
            except ProcessLookupError:
                pass


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class EtsyStatsd:
    name = "etsy statsd"

    def __init__(self, workdir: Path):
        folder = workdir / "etsy"
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(folder), "statsd@0.9.0"],
            check=True,
            capture_output=True,
        )
        self.udp, self.admin = free_port(socket.SOCK_DGRAM), free_port()
        config = folder / "config.js"
        config.write_text(
            json.dumps(
                {
                    "port": self.udp,
                    "mgmt_port": self.admin,
                    "mgmt_address": "127.0.0.1",
                    "address": "127.0.0.1",
                    "flushInterval": 3_600_000,
                    "backends": [],
                }
            )
        )
        self.process = subprocess.Popen(
            pinned(["node", str(folder / "node_modules" / "statsd" / "stats.js"), str(config)]),
            stdout=subprocess.DEVNULL,
            cwd=folder,
        )
        for _ in range(300):
            try:
                self.received()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("statsd did not start")

    def command(self, text: str) -> str:
        with socket.create_connection(("127.0.0.1", self.admin), timeout=30) as sock:
            sock.sendall(text.encode() + b"\n")
            reply = b""
            while b"END" not in reply:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply.decode()

    def received(self) -> int:
        return int(re.search(r"'statsd\.metrics_received': (\d+)", self.command("counters")).group(1))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def run_statsd(
    receiver, sender: Sender, run: str, lines: int, rate_lines: int, seconds: float, varying: bool
) -> tuple[int, int, float | None]:
    """
    (lines sent, lines counted, seconds after the last send until all were counted) for one
    run of statsd counters at ``rate_lines`` lines per second; statsd counts as it receives,
    so its lag is None.
    """
    packets = statsd_packets(run, lines, varying=varying)
    if isinstance(receiver, Hailwhale):
        sent, _ = sender.send(receiver.udp, packets, rate_lines / lines, seconds)
        counted, lag = receiver.counted([run], sent * lines)
        return sent * lines, counted, lag
    before = receiver.received()
    sent, _ = sender.send(receiver.udp, packets, rate_lines / lines, seconds)
    last, since = -1, time.perf_counter()
    while time.perf_counter() - since < 1.0:  # until statsd has drained its socket
        now = receiver.received() - before
        if now != last:
            last, since = now, time.perf_counter()
        time.sleep(0.1)
    return sent * lines, last, None


def loss(sent: int, counted: int) -> float:
    return 100.0 * (sent - counted) / sent if sent else 0.0


def statsd_section(
    args, sender: Sender, receivers: list, lines: int, rates: list[int], runs: list[int], varying: bool = False
) -> dict:
    what = "values 1 to 997, lines seldom repeat" if varying else "each counts 1"
    print(
        f"\n## statsd counters ({what}), {lines} line(s) per datagram, {args.seconds:g} s per run, best / median "
        f"of {args.repeat}"
    )
    print(f"{'lines/s':>10} | " + " | ".join(f"{r.name:>11} sent  loss% best / median  lag s" for r in receivers))
    results: dict[str, dict[int, list[tuple[int, float, float | None]]]] = {r.name: {} for r in receivers}
    given_up: set[str] = set()
    for rate in rates:
        for _ in range(args.repeat):
            for receiver in receivers:  # alternating: each repeat runs every receiver once
                if receiver.name in given_up:
                    continue
                runs[0] += 1
                sent, counted, lag = run_statsd(receiver, sender, f"r{runs[0]}", lines, rate, args.seconds, varying)
                results[receiver.name].setdefault(rate, []).append((sent, loss(sent, counted), lag))
        cells = []
        for receiver in receivers:
            found = results[receiver.name].get(rate)
            if not found:
                cells.append(f"{'-':>16} {'(not run)':>16} {'':>6}")
                continue
            losses = [lost for _, lost, _ in found]
            best_run = min(found, key=lambda result: (not _clean(result), result[1]))
            lag = "-" if best_run[2] is None else f"{best_run[2]:.1f}"
            cells.append(f"{best_run[0]:>16,} {min(losses):>7.2f} / {statistics.median(losses):>6.2f} {lag:>6}")
            if min(losses) > 30:
                given_up.add(receiver.name)
        print(f"{rate:>10,} | " + " | ".join(cells), flush=True)
    best, capped = {}, {}
    for receiver in receivers:
        best[receiver.name] = 0
        for rate in rates:  # up to the first rate none of whose runs was clean
            if not any(_clean(result) for result in results[receiver.name].get(rate, [])):
                break
            best[receiver.name] = rate
        capped[receiver.name] = best[receiver.name] == rates[-1]
    names = [r.name for r in receivers]
    print(
        f"loss-free (every rate up to it had a run losing <= {LOSS_FREE} %, and counted within {CAUGHT_UP:g} s of the "
        f"last send): " + ", ".join(f"{n} {'>= ' if capped[n] else ''}{best[n]:,} lines/s" for n in names)
    )
    if len(names) == 2 and best[names[1]]:
        print(
            f"ratio {names[0]} / {names[1]}: {'>= ' if capped[names[0]] else ''}{best[names[0]] / best[names[1]]:.2f}x"
        )
    return best


def _clean(result: tuple[int, float, float | None]) -> bool:
    _, lost, lag = result
    return lost <= LOSS_FREE and (lag is None or lag <= CAUGHT_UP)


def native_section(args, sender: Sender, daemon: Hailwhale, rates: list[int]) -> None:
    print(
        f"\n## native events, 20 per datagram, {args.seconds:g} s per run, end to end into the store "
        f"(flush every 1 s), best / median of {args.repeat}"
    )
    print(f"{'events/s':>10} {'sent':>10} {'loss% best':>11} {'median':>7} {'in /totals after (s), worst':>28}")
    for rate in rates:
        found, visible = [], []
        for _ in range(args.repeat):
            tag = f"n{rate}-{time.time_ns()}"
            sent, _ = sender.send(daemon.udp, native_packets(tag), rate / 20, args.seconds)
            counted, after = daemon.counted(["bench", tag], sent * 20, settle=2.5)
            found.append(loss(sent * 20, counted))
            visible.append(after)
        print(
            f"{rate:>10,} {sent * 20:>10,} {min(found):>11.3f} {statistics.median(found):>7.3f} {max(visible):>28.2f}",
            flush=True,
        )


def memory_section(args, sender: Sender, daemon: Hailwhale) -> None:
    print("\n## memory per pending aggregation key (flush held off)")
    warm = [b"\n".join(f"warm.k{i * 20 + j}:1|c".encode() for j in range(20)) for i in range(args.keys // 200)]
    sender.send(daemon.udp, warm, 20_000, len(warm) / 20_000)
    while daemon.stats()["pending_events"] < len(warm) * 20:
        time.sleep(0.2)
    before, keys_before = daemon.rss_kib(), daemon.stats()["pending_keys"]
    packets = [b"\n".join(f"mem.k{i * 20 + j}:1|c".encode() for j in range(20)) for i in range(args.keys // 20)]
    sender.send(daemon.udp, packets, 5_000, len(packets) / 5_000)
    while daemon.stats()["pending_events"] < (len(warm) + len(packets)) * 20:
        time.sleep(0.2)
    stats = daemon.stats()
    after, keys = daemon.rss_kib(), stats["pending_keys"] - keys_before
    print(
        f"{keys:,} distinct keys pending (statsd counters mem.k<i>, hits + count each): RSS {before / 1024:.1f} -> "
        f"{after / 1024:.1f} MiB, {(after - before) * 1024 / keys:.0f} bytes per key; peak RSS "
        f"{_status(daemon.process.pid, 'VmHWM') / 1024:.1f} MiB"
    )


def flush_section(args, sender: Sender, daemon: Hailwhale) -> None:
    print("\n## store work per flush (one flush, Valkey INFO commandstats)")
    store = redis.Redis.from_url(daemon.stats()["store_url"])
    get_json(daemon.base + "/flush", b"")
    print("(round trips: script calls from the daemon; commands: every command run, inside scripts too)")
    print(
        f"{'distinct keys':>13} {'events':>9} {'round trips':>11} {'commands':>9} {'store µs':>10} {'flush s':>8}  "
        f"commands by name"
    )
    for keys in args.flush_keys:
        for per_key in (1, 10):
            tag = f"f{time.time_ns()}"
            lines = [f"{tag}.k{i}:1|c".encode() for i in range(keys)] * per_key
            packets = [b"\n".join(lines[i : i + 20]) for i in range(0, len(lines), 20)]
            sender.send(daemon.udp, packets, 5_000, max(len(packets) / 5_000, 0.01))
            while daemon.stats()["pending_events"] < len(lines):
                time.sleep(0.1)
            before = _commandstats(store)
            get_json(daemon.base + "/flush", b"")
            after = _commandstats(store)
            delta = {
                c: (after[c][0] - before.get(c, (0, 0))[0], after[c][1] - before.get(c, (0, 0))[1])
                for c in after
                if c not in ("info", "ping")
            }
            delta = {c: d for c, d in delta.items() if d[0]}
            trips = sum(d[0] for c, d in delta.items() if c in ("evalsha", "eval", "fcall", "evalsha_ro"))
            calls, usec = sum(d[0] for d in delta.values()), sum(d[1] for d in delta.values())
            named = ", ".join(f"{c} {d[0]:,}" for c, d in sorted(delta.items(), key=lambda item: -item[1][0])[:4])
            print(
                f"{keys:>13,} {len(lines):>9,} {trips:>11,} {calls:>9,} {usec:>10,} "
                f"{daemon.stats()['last_flush_seconds']:>8.3f}  {named}",
                flush=True,
            )


def _commandstats(store) -> dict[str, tuple[int, int]]:
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in store.info("commandstats").items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["statsd", "native", "memory", "flush"], action="append")
    parser.add_argument("--seconds", type=float, default=2.0, help="per run")
    parser.add_argument("--repeat", type=int, default=2, help="runs per rate and receiver")
    parser.add_argument(
        "--rates-1", default="50000,100000,200000,300000,400000,500000", help="statsd lines/s at 1 line per datagram"
    )
    parser.add_argument(
        "--rates-20", default="200000,600000,1000000,2000000,3000000", help="statsd lines/s at 20 lines per datagram"
    )
    parser.add_argument(
        "--rates-varying",
        default="200000,400000,1000000,1500000",
        help="statsd lines/s at 20 lines per datagram, values varying",
    )
    parser.add_argument("--rates-native", default="200000,250000,300000,350000", help="native events/s")
    parser.add_argument("--keys", type=int, default=200_000, help="distinct keys for the memory figure")
    parser.add_argument("--flush-keys", default="1000,10000", help="distinct keys for the flush figures")
    args = parser.parse_args()
    args.flush_keys = [int(k) for k in args.flush_keys.split(",")]
    only = set(args.only or ["statsd", "native", "memory", "flush"])
    print(
        f"# ingest over UDP; python {sys.version.split()[0]}, sender on CPU {SENDER_CPU}, receivers on CPU "
        f"{RECEIVER_CPU}, load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        sender = Sender(workdir)
        if "statsd" in only or "native" in only:
            daemon = Hailwhale(workdir)
            etsy = EtsyStatsd(workdir) if "statsd" in only else None
            try:
                stats = daemon.stats()
                print(
                    f"hailwhale UDP receive buffer {stats['udp_receive_buffer']:,} bytes; etsy statsd 0.9.0 as "
                    f"shipped (the system's default receive buffer)"
                )
                if etsy is not None:
                    runs = [0]
                    receivers = [daemon, etsy]
                    statsd_section(args, sender, receivers, 1, [int(r) for r in args.rates_1.split(",")], runs)
                    statsd_section(args, sender, receivers, 20, [int(r) for r in args.rates_20.split(",")], runs)
                    statsd_section(
                        args, sender, receivers, 20, [int(r) for r in args.rates_varying.split(",")], runs, varying=True
                    )
                if "native" in only:
                    native_section(args, sender, daemon, [int(r) for r in args.rates_native.split(",")])
                print(f"\nhailwhale /stats: udp_kernel_drops {daemon.stats()['udp_kernel_drops']}")
            finally:
                daemon.stop()
                if etsy is not None:
                    etsy.stop()
        if "memory" in only:
            daemon = Hailwhale(workdir, "--flush-interval", "3600", "--max-pending-keys", "2000000")
            try:
                memory_section(args, sender, daemon)
            finally:
                daemon.kill()  # a final flush of so many keys would only take time
        if "flush" in only:
            daemon = Hailwhale(workdir, "--flush-interval", "3600")
            try:
                flush_section(args, sender, daemon)
            finally:
                daemon.stop()
        shutil.rmtree(workdir / "etsy", ignore_errors=True)


if __name__ == "__main__":
    main()
