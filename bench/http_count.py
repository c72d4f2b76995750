"""
HTTP counting throughput: ``GET /count.gif`` (and ``GET /count``) from 50 kept-alive
clients, with Debian's ``wrk``, every request counted.

Starts ``twistd -n hailwhale`` (embedded Valkey in a temporary folder, one process) from
this tree and, with ``--before PATH``, a second one from another source tree (say a
``git worktree`` of an older commit), and runs ``wrk`` against them in alternating runs,
so that both see the same machine load.  Each run counts under a pk of its own; after it,
``/totals`` must show every request wrk completed (and at most the ``--connections``
requests still in flight when wrk stopped) and wrk must have seen no error and no
non-2xx answer, else the run is reported as failed.  Besides requests per second, the
daemon's own CPU time per request (from ``/proc/<pid>/stat``) is given: it moves less
than the rate when other work shares the machine.

    .venv/bin/python bench/http_count.py [--before /work/old-tree] [--seconds 10] [--runs 3]

``wrk`` is installed with apt (through sudo when not root) when missing.
"""

import argparse
import json
import os
import re
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hailwhale.testing import free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PATHS = {
    "pixel": "/count.gif?pk={pk}&dimensions=%7B%22country%22%3A%22US%22%7D",
    "count": "/count?pk={pk}&dimensions=%7B%22country%22%3A%22US%22%7D&metrics=%7B%22value%22%3A2%7D",
}


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("installing wrk (apt)", file=sys.stderr)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("wrk") or "wrk"


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


class Daemon:
    def __init__(self, name: str, tree: Path, folder: Path):
        self.name = name
        self.port = free_port()
        self.folder = folder
        folder.mkdir()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "-n",
                "--pidfile=",
                f"--logfile={folder / 'twistd.log'}",
                "hailwhale",
                "--http-port",
                str(self.port),
                "--udp-port",
                "0",
                "--collectd-port",
                "0",
                "--data-dir",
                str(folder / "data"),
            ],
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(tree)},
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if get_json(self.base + "/health")["status"] == "ok":
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {(folder / 'twistd.log').read_text()}")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def hits(self, pk: str) -> int:
        answer = get_json(f"{self.base}/totals?pk={quote(pk)}&periods=%5B%22today%22%5D")
        return int(answer["today"]["_"]["hits"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def wrk(binary: str, url: str, seconds: float, connections: int) -> dict:
    output = subprocess.run(
        [binary, "-t1", f"-c{connections}", f"-d{seconds:g}s", url], capture_output=True, text=True, check=True
    ).stdout
    completed = int(re.search(r"(\d+) requests in", output).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "completed": completed,
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "errors": errors,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def run(binary: str, daemon: Daemon, kind: str, tag: str, seconds: float, connections: int) -> dict:
    pk = f"bench-{daemon.name}-{kind}-{tag}"
    before = daemon.cpu_seconds()
    result = wrk(binary, daemon.base + PATHS[kind].format(pk=quote(pk)), seconds, connections)
    result["cpu_us"] = (daemon.cpu_seconds() - before) / max(result["completed"], 1) * 1e6
    deadline = time.monotonic() + 10
    while True:  # the last flush (1 s)
        counted = daemon.hits(pk)
        if counted >= result["completed"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    result["counted"] = counted
    result["ok"] = (
        result["completed"] <= counted <= result["completed"] + connections
        and not result["errors"]
        and not result["non_2xx"]
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another source tree to run side by side")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--kinds", default="pixel,count")
    args = parser.parse_args()
    binary = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="hw-bench-http-") as folder:
        trees = [("after", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
        daemons = [Daemon(name, tree, Path(folder) / name) for name, tree in trees]
        try:
            for daemon in daemons:  # warm up
                wrk(binary, daemon.base + PATHS["pixel"].format(pk="warm-up"), 2, args.connections)
            print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs", flush=True)
            results: dict = {}
            for kind in args.kinds.split(","):
                for round in range(args.runs):
                    for daemon in daemons if round % 2 == 0 else reversed(daemons):
                        result = run(binary, daemon, kind, str(round), args.seconds, args.connections)
                        results.setdefault((kind, daemon.name), []).append(result)
                        print(
                            f"{kind:5} {daemon.name:6} run {round + 1}: {result['rate']:9,.0f} requests/s, "
                            f"{result['cpu_us']:5.1f} us of daemon CPU per request, "
                            f"{result['completed']:,} completed, {result['counted']:,} counted"
                            + ("" if result["ok"] else f"  FAILED {result}"),
                            flush=True,
                        )
            print(f"load average after: {os.getloadavg()[0]:.2f}")
            print(f"\n| path | tree | requests/s (median of {args.runs}) | best | daemon CPU per request | counted |")
            print("|---|---|---:|---:|---:|---|")
            for (kind, name), found in results.items():
                rates = [r["rate"] for r in found]
                print(
                    f"| `{PATHS[kind].split('?')[0]}` | {name} | {statistics.median(rates):,.0f} | {max(rates):,.0f} "
                    f"| {statistics.median(r['cpu_us'] for r in found):.1f} us "
                    f"| {'all' if all(r['ok'] for r in found) else 'NOT ALL'} |"
                )
        finally:
            for daemon in daemons:
                daemon.stop()


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
