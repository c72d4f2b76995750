"""
Clients that hold connections, before and after: what everyone else sees.

Starts ``twistd -n hailwhale`` under ``ulimit -n 1024`` (for the daemon alone) from this
tree and, with ``--before PATH``, from another source tree, and for each runs two
scenarios, with the defaults:

1. half-open: 1,100 connections from 127.0.0.1, each sending half a request line and then
   nothing;
2. slow bodies: 200 POSTs from 127.0.0.1 whose 1,000-byte bodies come a byte every half
   second.

Meanwhile another client (127.0.0.2) asks ``/health`` and ``/count.gif`` every half second
(2 s timeout each).  Reported: how many of its requests were answered and how they failed,
the first second at which it was answered, and when the crowd's connections were closed
by the daemon (or that some were still open when the observation ended).

    .venv/bin/python bench/slow_clients.py [--before /work/old-tree] [--observe 75]
"""

import argparse
import http.client
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hailwhale.testing import free_port  # noqa: E402
from hailwhale.testing.processes import Crowd  # noqa: E402

SCENARIOS = {
    "half-open": dict(count=1100, first=b"GET /count.gif?pk=crow"),
    "slow bodies": dict(
        count=200,
        first=b"POST /count HTTP/1.1\r\nHost: hw\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        trickle=b" ",
        interval=0.5,
    ),
}


def start(tree: Path, folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    folder.mkdir()

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "-n",
            "--pidfile=",
            f"--logfile={folder / 'twistd.log'}",
            "hailwhale",
            "--http-port",
            str(port),
            "--udp-port",
            "0",
            "--collectd-port",
            "0",
        ],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(tree)},
        preexec_fn=limited,
    )
    deadline = time.monotonic() + 60
    while ask(port, "/health") != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((folder / "twistd.log").read_text())
        time.sleep(0.2)
    return process, port


def ask(port: int, path: str) -> int | str:
    """The status of GET ``path`` from 127.0.0.2, or the name of the error."""
    connection = http.client.HTTPConnection("127.0.0.1", port, source_address=("127.0.0.2", 0), timeout=2)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__
    finally:
        connection.close()


def observe(port: int, scenario: dict, seconds: float) -> dict:
    outcomes: Counter = Counter()
    first_answered = crowd_closed = None
    with Crowd(port, **scenario) as crowd:
        started = time.monotonic()
        crowd.status()
        while time.monotonic() - started < seconds:
            for path in ("/health", "/count.gif?pk=probe"):
                outcome = ask(port, path)
                outcomes[outcome] += 1
                if outcome == 200 and first_answered is None:
                    first_answered = time.monotonic() - started
            status = crowd.status()
            if crowd_closed is None and status["open"] == 0:
                crowd_closed = time.monotonic() - started
            if crowd_closed is not None and first_answered is not None:
                break
            time.sleep(0.5)
        last = crowd.status()
    return {
        "outcomes": dict(outcomes),
        "first_answered": first_answered,
        "crowd_closed": crowd_closed,
        "crowd": last,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path)
    parser.add_argument("--observe", type=float, default=75, help="seconds to watch each scenario at most")
    args = parser.parse_args()
    trees = [("after", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print("| scenario | tree | other client's requests | first answered after | crowd closed by the daemon after |")
    print("|---|---|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="hw-slow-") as folder:
        for name, scenario in SCENARIOS.items():
            for tree_name, tree in trees:
                process, port = start(tree, Path(folder) / f"{tree_name}-{name.replace(' ', '-')}")
                try:
                    found = observe(port, scenario, args.observe)
                finally:
                    process.terminate()
                    process.wait(60)
                outcomes = ", ".join(
                    f"{count} {outcome}" for outcome, count in sorted(found["outcomes"].items(), key=str)
                )
                answered = f"{found['first_answered']:.1f} s" if found["first_answered"] is not None else "never"
                closed = (
                    f"{found['crowd_closed']:.1f} s"
                    if found["crowd_closed"] is not None
                    else f"{found['crowd']['open']} still open at {args.observe:.0f} s"
                )
                print(
                    f"| {name} | {tree_name} | {outcomes} | {answered} | {closed} "
                    f"(answers: {found['crowd']['answers'] or 'none'}) |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
