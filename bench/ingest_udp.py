"""
Ingest: native JSON events over UDP into the real daemon, end to end into the store.

Starts `twistd -n hailwhale` (embedded Valkey in a temporary directory, free ports), then
for each rate sends datagrams of 20 native events (2-level pk, 2 dimensions, 3 metrics)
from a separate process, paced for a few seconds, and reads back from /totals how many
were counted after two flush intervals.  Loss is 1 - counted / sent.  The daemon's CPU
time comes from /proc.

    .venv/bin/python bench/ingest_udp.py [--rates 50000,100000,200000] [--seconds 3]
"""

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hailwhale.testing import free_port  # noqa: E402

LINES_PER_DATAGRAM = 20


def datagrams(tag: str) -> list[bytes]:
    countries, devices = ["US", "UK", "DE", "FR", "BR"], ["mac", "win", "ios", "android"]
    packets = []
    for i in range(50):
        lines = [
            json.dumps({"pk": ["bench", tag], "dimensions": {"country": countries[(i + j) % 5], "device": devices[j % 4]},
                        "metrics": {"revenue": 1.5, "visitors": 1, "clicks": 2}}).encode()
            for j in range(LINES_PER_DATAGRAM)
        ]
        packets.append(b"\n".join(lines))
    return packets


def send(port: int, tag: str, rate: int, seconds: float, result) -> None:
    packets = datagrams(tag)
    per_second = rate / LINES_PER_DATAGRAM
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * per_second) + 1
        while sent < due:
            sock.sendto(packets[sent % len(packets)], ("127.0.0.1", port))
            sent += 1
    result.put((sent * LINES_PER_DATAGRAM, time.perf_counter() - start))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="50000,100000,200000,300000")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    http, udp = free_port(), free_port(socket.SOCK_DGRAM)
    twistd = Path(sys.executable).parent / "twistd"
    with tempfile.TemporaryDirectory() as data_dir:
        daemon = subprocess.Popen(
            [str(twistd), "-n", "--pidfile=", "--logfile=" + os.path.join(data_dir, "twistd.log"), "hailwhale",
             "--http-port", str(http), "--udp-port", str(udp), "--collectd-port", "0", "--data-dir", data_dir],
            cwd=data_dir,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        base = f"http://127.0.0.1:{http}"
        try:
            for _ in range(100):
                try:
                    get_json(base + "/stats")
                    break
                except OSError:
                    time.sleep(0.1)
            print(f"daemon pid {daemon.pid}, UDP receive buffer {get_json(base + '/stats')['udp_receive_buffer']} bytes")
            print(f"{'target lines/s':>15} {'sent':>9} {'counted':>9} {'loss %':>7} {'sent/s':>9} {'daemon CPU %':>12}")
            for rate in [int(r) for r in args.rates.split(",")]:
                tag = f"r{rate}-{time.time_ns()}"
                result = multiprocessing.Queue()
                cpu_before = cpu_seconds(daemon.pid)
                sender = multiprocessing.Process(target=send, args=(udp, tag, rate, args.seconds, result))
                sender.start()
                sent, took = result.get()
                sender.join()
                cpu = cpu_seconds(daemon.pid) - cpu_before
                time.sleep(2.5)
                url = f"{base}/totals?pk={quote(json.dumps(['bench', tag]))}&metrics=hits&periods=today"
                counted = int(get_json(url)["today"]["_"]["hits"])
                print(f"{rate:>15} {sent:>9} {counted:>9} {100 * (1 - counted / sent):>7.2f} {sent / took:>9.0f}"
                      f" {100 * cpu / took:>12.0f}")
        finally:
            daemon.terminate()
            daemon.wait(30)


if __name__ == "__main__":
    main()
