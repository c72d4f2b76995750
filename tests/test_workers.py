"""
Several worker processes (``--workers``): real ``twistd hailwhale`` processes sharing the
ports, a real Valkey store.
"""

import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
from twisted.internet.task import Clock
from twisted.python import usage

from hailwhale.aggregate import selfstats
from hailwhale.config import WorkerRole
from hailwhale.model import keys
from hailwhale.store.embedded import socket_url
from hailwhale.tap import Options
from hailwhale.testing import free_port, synchronous, wait_for
from hailwhale.testing.processes import PACKAGE_ROOT, Daemon
from hailwhale.whale import Whale
from hailwhale.workers import StatsExchange

SCHEMA = "1m:2d,1h:35d,1d:3y"


def send_from_many_sockets(port: int, pk: str, sockets: int, datagrams: int, lines: int = 5) -> int:
    """Send ``datagrams`` datagrams of ``lines`` events from each of ``sockets`` sender sockets; the events sent."""
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sockets)]
    payload = b"\n".join([b'{"pk":"%s","metrics":{"n":1}}' % pk.encode()] * lines)
    try:
        for _ in range(datagrams):
            for sender in senders:
                sender.sendto(payload, ("127.0.0.1", port))
    finally:
        for sender in senders:
            sender.close()
    return sockets * datagrams * lines


def count_over_http(daemon: Daemon, pk: str, requests: int) -> int:
    """``requests`` GETs of /count, each on a new connection; the events sent."""
    for _ in range(requests):
        with urllib.request.urlopen(f"{daemon.base}/count?pk={pk}", timeout=30) as response:
            assert b"OK" == response.read()
    return requests


def all_healthy(daemon: Daemon, timeout: float = 30.0) -> dict:
    """Wait until /health is 200 (every worker published its stats and is healthy); the answer."""
    return wait_for(lambda: (lambda got: got[1] if got[0] == 200 else None)(daemon.health()), timeout, "all workers")


def total(url: str, pk: str) -> float:
    Whale.configure(url, schema=SCHEMA)
    return Whale.total(pk, "hits", period="today")


def workers_daemon(tmp_path, *args: str) -> Daemon:
    return Daemon(tmp_path, "--workers", "2", "--collectd-port", "0", "--flush-interval", "0.2", *args)


@pytest.mark.parametrize("value", ["0", "65", "-1", "two"])
def test_workers_must_be_1_to_64(value):
    """--workers takes 1 to 64; anything else is a usage error that says so."""
    with pytest.raises(usage.UsageError) as raised:
        Options().parseOptions(["--workers", value])

    assert "--workers" in str(raised.value) or "invalid literal" in str(raised.value)


def test_workers_and_an_http_endpoint_do_not_go_together():
    """--http-listen names an endpoint that several workers cannot share: a usage error."""
    with pytest.raises(usage.UsageError, match="--http-listen and --workers"):
        Options().parseOptions(["--workers", "2", "--http-listen", "unix:/tmp/hw.sock"])


def test_total_of_workers_adds_counts_and_levels_marked_so():
    """The total of several workers' snapshots sums counts (by key too) and summed levels, and keeps its own rest."""
    one = {"lines_ok": 3, "lines_bad": {"x": 1}, "pending_keys": 2, "uptime_seconds": 9.0, "store_reachable": True}
    two = {"lines_ok": 4, "lines_bad": {"x": 2, "y": 1}, "pending_keys": 5, "uptime_seconds": 1.0}
    two["store_reachable"] = False

    assert {
        "lines_ok": 7,
        "lines_bad": {"x": 3, "y": 1},
        "pending_keys": 7,
        "uptime_seconds": 9.0,
        "store_reachable": False,
    } == selfstats.total([one, two], one)


@pytest.mark.slow
def test_two_workers_count_exact_totals_from_many_senders(tmp_path, store_url):
    """Two workers share the UDP and HTTP ports: events from many sender sockets are all counted, once."""
    daemon = workers_daemon(tmp_path, "--redis", store_url)
    try:
        all_healthy(daemon)
        sent = send_from_many_sockets(daemon.udp_port, "spread", sockets=64, datagrams=20)
        sent += count_over_http(daemon, "spread", 200)

        wait_for(lambda: total(store_url, "spread") == sent or None, 30, f"{sent} events counted")
        stats = wait_for(
            lambda: (lambda s: s if s["lines_ok"] + s["http_events_ok"] == sent else None)(daemon.get("/stats")),
            10,
            "every worker's stats",
        )
        each = stats["per_worker"]

        assert (float(sent), 2, 2, ["0", "1"], True) == (
            total(store_url, "spread"),
            stats["workers"],
            stats["workers_expected"],
            sorted(each),
            all(worker["lines_ok"] > 0 for worker in each.values()),
        )
        # a worker answers /metrics with its own counts and the others' last published ones
        # (each publishes every flush interval): the total holds every line once they have
        wanted = f"hailwhale_lines_ok_total {float(sent - 200)}"
        metrics = wait_for(
            lambda: (lambda text: text if wanted in text else None)(
                urllib.request.urlopen(daemon.base + "/metrics", timeout=30).read().decode()
            ),
            10,
            "every worker's metrics",
        )
        assert wanted in metrics
    finally:
        daemon.kill()


@pytest.mark.slow
def test_a_killed_worker_is_started_again_and_counting_goes_on(tmp_path, store_url):
    """A worker killed with SIGKILL is started again, logged and counted; events sent afterwards are all counted."""
    daemon = workers_daemon(tmp_path, "--redis", store_url)
    try:
        all_healthy(daemon)
        before = send_from_many_sockets(daemon.udp_port, "restart", sockets=32, datagrams=10)
        wait_for(lambda: total(store_url, "restart") == before or None, 30, "the first events counted")
        victim = daemon.get("/stats")["per_worker"]["1"]["pid"]
        os.kill(victim, signal.SIGKILL)

        def restarted():
            try:
                stats = daemon.get("/stats")
            except OSError:  # a connection the killed worker's socket held when it died is reset
                return None
            return stats if stats["workers_restarted"] == 1 and stats["workers"] == 2 else None

        stats = wait_for(restarted, 30, "the worker started again")
        all_healthy(daemon)
        after = send_from_many_sockets(daemon.udp_port, "restart", sockets=32, datagrams=10)

        wait_for(lambda: total(store_url, "restart") == before + after or None, 30, "every event counted")
        assert (float(before + after), True, True) == (
            total(store_url, "restart"),
            stats["per_worker"]["1"]["pid"] != victim,
            "worker 1 ended" in daemon.log(),
        )
    finally:
        daemon.kill()


@pytest.mark.slow
def test_stopping_the_parent_stops_the_workers_then_the_store(tmp_path):
    """
    SIGTERM to the parent: each worker flushes what it took in, then the embedded store
    stops; started again on its data, the store holds every event.
    """
    daemon = Daemon(tmp_path, "--workers", "2", "--collectd-port", "0", "--flush-interval", "3600")
    try:
        try:
            all_healthy(daemon, timeout=60)
            sent = send_from_many_sockets(daemon.udp_port, "stopping", sockets=64, datagrams=10)
            wait_for(
                lambda: (lambda s: s if s["lines_ok"] == sent else None)(daemon.get("/stats")), 10, "events taken in"
            )
        finally:
            exit_status = daemon.stop()
    finally:
        daemon.kill()  # if the stop itself failed
    log = daemon.log()
    each = daemon.stopped_each()
    worker_stops = [log.index(f"worker {index} stopped") for index in (0, 1)]
    store_stop = log.index("embedded Valkey store stopped")

    again = Daemon(tmp_path, "--collectd-port", "0")  # one process, the same data directory
    try:
        counted = total(socket_url(tmp_path / "hailwhale-data"), "stopping")
    finally:
        again.kill()

    # twistd re-raises the signal after a clean stop, so that the exit status tells it came
    assert (-signal.SIGTERM, 2, sent, 0, True, float(sent)) == (
        exit_status,
        len(each),
        sum(accepted for accepted, _, _ in each),
        sum(unwritten for _, _, unwritten in each),
        max(worker_stops) < store_stop,
        counted,
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM])
def test_a_port_held_by_another_program_stops_the_start(tmp_path, kind):
    """A port another program holds, even with SO_REUSEPORT, is a clear error at start, not a silent share."""
    holder = socket.socket(socket.AF_INET, kind)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        holder.listen()
    port = holder.getsockname()[1]
    option = "--udp-port" if kind == socket.SOCK_DGRAM else "--http-port"
    other = "--http-port" if kind == socket.SOCK_DGRAM else "--udp-port"
    try:
        process = subprocess.run(
            [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "-n",
                "--pidfile=",
                f"--logfile={tmp_path / 'twistd.log'}",
                "hailwhale",
                "--workers",
                "2",
                option,
                str(port),
                other,
                str(free_port(socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM)),
                "--collectd-port",
                "0",
                "--data-dir",
                str(tmp_path / "data"),
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
            timeout=60,
            capture_output=True,
        )
    finally:
        holder.close()
    log = (tmp_path / "twistd.log").read_text()

    assert (True, True, False, False) == (
        process.returncode != 0,
        f"port 127.0.0.1:{port} is in use by another program" in log,
        "worker 0 started" in log,
        (tmp_path / "data" / "valkey.sock").exists(),
    )


def test_worker_role_reads_back_what_it_writes():
    """The --worker option (set by the parent) reads back the role it was written from."""
    options = Options()
    options.parseOptions(["--workers", "2", "--worker", "host-12:1:3:12"])
    role = options["config"].worker

    assert ("host-12", 1, 3, 12, "host-12:1:3:12") == (role.group, role.index, role.starts, role.parent_pid, str(role))


@pytest.mark.slow
def test_relative_gauges_are_applied_in_the_store_so_workers_and_restarts_agree(tmp_path, store_url, raw):
    """
    statsd's +x/-x gauges change the level the store holds: spread over two workers and a
    restart, the level adds up exactly (a bucket shows the level its last writer saw).
    """
    daemon = workers_daemon(tmp_path, "--redis", store_url)
    try:
        all_healthy(daemon)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.sendto(b"pool.size:100|g", ("127.0.0.1", daemon.udp_port))
        wait_for(lambda: gauge(store_url) == 100.0 or None, 30, "the gauge set")
        senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(32)]
        for sender in senders:
            sender.sendto(b"pool.size:+3|g\npool.size:-1|g", ("127.0.0.1", daemon.udp_port))
            sender.close()
        wait_for(lambda: level(raw) == 164.0 or None, 30, "every change applied")
        stats = daemon.get("/stats")["per_worker"]
    finally:
        daemon.kill()
    again = Daemon(tmp_path, "--redis", store_url, "--collectd-port", "0", "--flush-interval", "0.2")
    try:
        again.send_udp(b"pool.size:-4|g")
        wait_for(lambda: gauge(store_url) == 160.0 or None, 30, "the change after a restart")
    finally:
        again.kill()

    assert (160.0, 160.0, True) == (
        level(raw),
        gauge(store_url),
        all(worker["lines_ok"] > 0 for worker in stats.values()),
    )


def level(raw) -> float | None:
    """The level the store holds for the series pool.size (no tags)."""
    value = raw.get(keys.level_key(keys.tag(("pool", "size")), '["gauge",[]]'))
    return float(value) if value is not None else None


def gauge(url: str) -> float:
    Whale.configure(url, schema=SCHEMA)
    return Whale.total(["pool", "size"], "gauge", period="today")


def exchange_of(index: int, published: dict, clock, healthy: bool = True) -> StatsExchange:
    """A worker's StatsExchange over a dict standing for the store's hash (published: index -> text)."""

    def publish(group: str, at: int, text: str) -> dict[int, str]:
        published[at] = text
        return dict(published)

    return StatsExchange(
        WorkerRole("host-1", index, 1 + index, 1),
        2,
        lambda: {"lines_ok": 10 * (index + 1), "pending_keys": 1, "uptime_seconds": 5.0},
        lambda: (healthy, {"status": "ok"} if healthy else {"status": "unavailable", "reason": "starting"}),
        publish,
        synchronous,
        clock,
        1.0,
    )


def test_any_worker_answers_for_all_of_them():
    """Each worker's stats, published through the store, make every worker's /stats the same totals."""
    clock, published = Clock(), {}
    first, second = exchange_of(0, published, clock), exchange_of(1, published, clock)
    first.exchange(), second.exchange(), first.exchange()
    view = first.view()

    assert (30, 2, 2, 1, 2, ["0", "1"], 0) == (
        view["lines_ok"],
        view["pending_keys"],
        view["workers"],
        view["workers_restarted"],
        view["workers_expected"],
        sorted(view["per_worker"]),
        view["worker"],
    )


def test_health_waits_for_every_worker_and_forgets_the_silent():
    """/health is 503 until every worker has published, 200 then, and 503 again once one has been silent too long."""
    clock, published = Clock(), {}
    first, second = exchange_of(0, published, clock), exchange_of(1, published, clock)
    first.exchange()
    alone = first.health()
    second.exchange(), first.exchange()
    together = first.health()
    clock.advance(10)
    first.exchange()
    silent = first.health()

    assert [
        (False, {"status": "unavailable", "reason": "workers_unavailable", "missing": [1], "unhealthy": []}),
        (True, {"status": "ok", "workers": 2}),
        (False, {"status": "unavailable", "reason": "workers_unavailable", "missing": [1], "unhealthy": []}),
    ] == [alone, together, silent]
