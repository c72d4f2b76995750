"""
The real thing: Debian's collectd daemon (collectd-core, installed by .ci/run) reads this
machine's load, memory, cpu and interfaces every second and sends them with its network
plugin to a `twistd hailwhale` process, plain and encrypted; the values must show up in
/totals, and the packets hailwhale must refuse must be counted, not counted as data.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from hailwhale.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
COLLECTD = "/usr/sbin/collectd"
TYPESDB = "/usr/share/collectd/types.db"
WAIT_SECONDS = 30

pytestmark = pytest.mark.slow


def collectd_binary() -> str:
    path = shutil.which("collectd") or COLLECTD
    assert os.access(path, os.X_OK), (
        f"collectd is not installed (looked on PATH and at {COLLECTD}); .ci/run installs Debian's collectd-core: "
        "apt-get install -y --no-install-recommends collectd-core"
    )
    return path


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class Daemon:
    """`twistd -n hailwhale` in a process of its own, on free ports, writing to the test store."""

    def __init__(self, tmp_path: Path, store_url: str, *args: str):
        self.collectd_port = free_port(socket.SOCK_DGRAM)
        http = free_port()
        self.base = f"http://127.0.0.1:{http}"
        self.log = tmp_path / "twistd.log"
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "twistd"),
                "-n",
                "--pidfile=",
                f"--logfile={self.log}",
                "hailwhale",
                "--http-port",
                str(http),
                "--udp-port",
                "0",
                "--collectd-port",
                str(self.collectd_port),
                "--redis",
                store_url,
                "--flush-interval",
                "0.2",
                *args,
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.wait_for(lambda: self.stats(), "the daemon to answer /stats")

    def stats(self):
        try:
            return get_json(self.base + "/stats")
        except OSError:
            return None

    def total(self, pk: list, metric: str, dimensions="_"):
        body = get_json(
            f"{self.base}/totals?pk={quote(json.dumps(pk))}&dimensions={quote(json.dumps(dimensions))}"
            f"&metrics={quote(json.dumps([metric]))}&periods=%5B%22today%22%5D"
        )
        return next(iter(body["today"].values())).get(metric)

    def wait_for(self, check, what: str):
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the daemon exited:\n{self.log.read_text()}"
            found = check()
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"waited {WAIT_SECONDS} s for {what}; daemon stats: {self.stats()}")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def start_collectd(tmp_path: Path, hostname: str, servers: str) -> subprocess.Popen:
    config = tmp_path / "collectd.conf"
    config.write_text(f'''Hostname "{hostname}"
FQDNLookup false
Interval 1
BaseDir "{tmp_path}"
PIDFile "{tmp_path}/collectd.pid"
TypesDB "{TYPESDB}"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "{tmp_path}/collectd.log"
</Plugin>
LoadPlugin load
LoadPlugin memory
LoadPlugin cpu
LoadPlugin interface
<LoadPlugin network>
  FlushInterval 1
</LoadPlugin>
<Plugin network>
{servers}
</Plugin>
''')
    return subprocess.Popen([collectd_binary(), "-f", "-C", str(config)], cwd=tmp_path)


def server(port: int, level: str = "None", user: str = "alice", password: str = "secret") -> str:
    secured = (
        f'\n    SecurityLevel {level}\n    Username "{user}"\n    Password "{password}"' if level != "None" else ""
    )
    return f'  <Server "127.0.0.1" "{port}">{secured}\n  </Server>'


def assert_values_arrive(daemon: Daemon, host: str) -> None:
    """Gauges (load), DERIVE increases (cpu, loopback traffic) and memory all reach /totals."""
    daemon.wait_for(
        lambda: daemon.total(["collectd", host, "load"], "shortterm.gauge") is not None, "load's shortterm.gauge"
    )
    daemon.wait_for(lambda: (daemon.total(["collectd", host, "cpu"], "value") or 0) > 0, "cpu increases")
    daemon.wait_for(
        lambda: (daemon.total(["collectd", host, "interface"], "rx", ["if_octets", "lo"]) or 0) > 0,
        "loopback if_octets rx increases",
    )
    daemon.wait_for(lambda: (daemon.total(["collectd", host, "memory"], "hits") or 0) > 0, "memory value lists")


def test_plain_collectd_reaches_totals(tmp_path, store_url):
    """collectd at SecurityLevel None: its values are counted, no packet is rejected."""
    daemon = Daemon(tmp_path, store_url)
    collectd = start_collectd(tmp_path, "hw-plain", server(daemon.collectd_port))
    try:
        assert_values_arrive(daemon, "hw-plain")
        stats = daemon.stats()["collectd"]
        assert ({}, True, True) == (stats["packets_bad"], stats["packets_ok"] > 0, stats["value_lists"] > 0)
    finally:
        collectd.terminate()
        collectd.wait(timeout=30)
        daemon.stop()


def test_encrypted_collectd_reaches_totals_and_the_rest_is_refused(tmp_path, store_url):
    """At level Encrypt the encrypted stream counts; the same values sent plain or with a wrong password are refused."""
    auth = tmp_path / "collectd.passwd"
    auth.write_text("alice: secret\n")
    daemon = Daemon(tmp_path, store_url, "--collectd-security-level", "Encrypt", "--collectd-auth-file", str(auth))
    collectd = start_collectd(
        tmp_path,
        "hw-encrypted",
        "\n".join(
            [
                server(daemon.collectd_port, "Encrypt"),
                server(daemon.collectd_port),
                server(daemon.collectd_port, "Encrypt", password="guess"),
                server(daemon.collectd_port, "Sign"),
            ]
        ),
    )
    try:
        assert_values_arrive(daemon, "hw-encrypted")
        stats = daemon.stats()["collectd"]
        # the wrong password's stream is cut into the same packets as the right one's
        assert ({"unencrypted", "bad_checksum"}, True) == (
            set(stats["packets_bad"]),
            abs(stats["packets_ok"] - stats["packets_bad"]["bad_checksum"]) <= 2,
        )
    finally:
        collectd.terminate()
        collectd.wait(timeout=30)
        daemon.stop()
