"""
The real daemon: makeService on the running reactor, real UDP and HTTP sockets on free
loopback ports, the real store (the shared test Valkey, or the embedded one).
"""

import json
import socket
import time
from urllib.parse import quote

import pytest
import pytest_twisted
import redis
import treq
from twisted.internet import reactor, task

from hailwhale.config import Options
from hailwhale.service import makeService
from hailwhale.testing import free_port


def start(*args: str):
    options = Options()
    options.parseOptions(["--udp-port", str(free_port(socket.SOCK_DGRAM)), "--http-port", str(free_port()),
                          "--collectd-port", str(free_port(socket.SOCK_DGRAM)), *args])
    service = makeService(options["config"], reactor)
    service.startService()
    http = service.getServiceNamed("http").port.getHost().port
    udp = service.getServiceNamed("udp").port.getHost().port
    return service, f"http://127.0.0.1:{http}", udp


def send_udp(port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, ("127.0.0.1", port))


async def get_json(url: str):
    response = await treq.get(url)
    return response.code, json.loads(await treq.content(response))


async def eventually(check, timeout: float = 10.0):
    """Poll ``check`` (an async callable returning a value or None) until it returns something."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value is not None or time.monotonic() > deadline:
            return value
        await task.deferLater(reactor, 0.05, lambda: None)


def totals_url(base: str, pk: str, dimensions: str = "_", metrics: str = '["hits"]', periods: str = '["today"]'):
    return (f"{base}/totals?pk={quote(pk)}&dimensions={quote(dimensions)}&metrics={quote(metrics)}"
            f"&periods={quote(periods)}")


@pytest_twisted.ensureDeferred
async def test_udp_and_http_events_reach_totals(store_url):
    """Events sent over UDP (several lines per datagram) and HTTP are in /totals within a few flushes."""
    service, base, udp = start("--redis", store_url, "--flush-interval", "0.1")
    try:
        send_udp(udp, b'{"pk":["Product","123"],"dimensions":{"country":"US"},"metrics":{"revenue":10}}\n'
                      b"pk=Product&dimensions=country&metrics=%7B%22revenue%22%3A2.5%7D\n"
                      b"this line is not an event\n")
        response = await treq.get(base + '/count?pk=Product&dimensions={"country":"UK"}&metrics={"revenue":1}')
        assert b"OK" == await treq.content(response)

        async def counted():
            code, body = await get_json(totals_url(base, "Product", "country", '["revenue","hits"]'))
            found = body["today"]["country"]
            return found if found["hits"] == 3 else None

        assert {"revenue": 13.5, "hits": 3.0} == await eventually(counted)
        _, stats = await get_json(base + "/stats")
        assert (1, 2, {"unrecognised": 1}, 1) == (stats["datagrams"], stats["lines_ok"], stats["lines_bad"],
                                                  stats["http_events_ok"])
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_stop_flushes_what_was_accepted(store_url, raw):
    """Stopping the daemon writes what it accepted, even if no flush tick came."""
    service, base, udp = start("--redis", store_url, "--flush-interval", "3600")
    send_udp(udp, b"\n".join(b'{"pk":"stop_test","metrics":{"n":%d}}' % i for i in range(100)))

    async def received():
        _, stats = await get_json(base + "/stats")
        return stats if stats["lines_ok"] == 100 else None

    await eventually(received)
    await service.stopService()

    from hailwhale.whale import Whale
    Whale.configure(store_url, schema="1m:2d,1h:35d,1d:3y")
    assert (100.0, 4950.0) == (Whale.total("stop_test", "hits", period="today"),
                               Whale.total("stop_test", "n", period="today"))


@pytest_twisted.ensureDeferred
async def test_embedded_store_persists_across_restarts(tmp_path):
    """With no --redis the daemon runs its own Valkey in --data-dir, stops it on exit, and the data survives."""
    data_dir = str(tmp_path / "data")
    service, base, _ = start("--data-dir", data_dir)
    try:
        response = await treq.get(base + "/count_now?pk=persisted&metrics=%7B%22n%22%3A7%7D")
        assert (200, b"OK") == (response.code, await treq.content(response))
        _, stats = await get_json(base + "/stats")
        url = stats["store_url"]
        assert url == f"unix://{tmp_path / 'data' / 'valkey.sock'}"
    finally:
        await service.stopService()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url).ping()

    service, base, _ = start("--data-dir", data_dir)
    try:
        _, body = await get_json(totals_url(base, "persisted", metrics='["n"]'))
        assert {"today": {"_": {"n": 7.0}}} == body
    finally:
        await service.stopService()
