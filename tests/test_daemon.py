"""
The real daemon: makeService on the running reactor, real UDP and HTTP sockets on free
loopback ports, the real store (the shared test Valkey, or the embedded one).
"""

import json
import os
import socket
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
import pytest_twisted
import redis
import treq
from twisted.internet import reactor, task, threads
from twisted.internet.error import CannotListenError

from hailwhale.service import makeService
from hailwhale.tap import Options
from hailwhale.testing import free_port
from hailwhale.testing.processes import PACKAGE_ROOT


def start(*args: str):
    options = Options()
    options.parseOptions(
        [
            "--udp-port",
            str(free_port(socket.SOCK_DGRAM)),
            "--http-port",
            str(free_port()),
            "--collectd-port",
            str(free_port(socket.SOCK_DGRAM)),
            *args,
        ]
    )
    service = makeService(options["config"], reactor)
    service.startService()
    http = service.getServiceNamed("http").port.getHost()
    udp = service.getServiceNamed("udp").port.getHost().port
    return service, f"http://127.0.0.1:{getattr(http, 'port', None)}", udp


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
    return (
        f"{base}/totals?pk={quote(pk)}&dimensions={quote(dimensions)}&metrics={quote(metrics)}&periods={quote(periods)}"
    )


@pytest_twisted.ensureDeferred
async def test_udp_and_http_events_reach_totals(store_url):
    """Events sent over UDP (several lines per datagram) and HTTP are in /totals within a few flushes."""
    service, base, udp = start("--redis", store_url, "--flush-interval", "0.1")
    try:
        send_udp(
            udp,
            b'{"pk":["Product","123"],"dimensions":{"country":"US"},"metrics":{"revenue":10}}\n'
            b"pk=Product&dimensions=country&metrics=%7B%22revenue%22%3A2.5%7D\n"
            b"this line is not an event\n",
        )
        response = await treq.get(base + '/count?pk=Product&dimensions={"country":"UK"}&metrics={"revenue":1}')
        assert b"OK" == await treq.content(response)

        async def counted():
            _code, body = await get_json(totals_url(base, "Product", "country", '["revenue","hits"]'))
            found = body["today"]["country"]
            return found if found["hits"] == 3 else None

        assert {"revenue": 13.5, "hits": 3.0} == await eventually(counted)
        _, stats = await get_json(base + "/stats")
        assert (1, 2, {"unrecognised": 1}, 1) == (
            stats["datagrams"],
            stats["lines_ok"],
            stats["lines_bad"],
            stats["http_events_ok"],
        )
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
    assert (100.0, 4950.0) == (
        Whale.total("stop_test", "hits", period="today"),
        Whale.total("stop_test", "n", period="today"),
    )


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


@pytest_twisted.ensureDeferred
async def test_every_limit_is_an_option_and_every_overflow_is_counted(store_url):
    """
    With every per-event limit set small, each input past one is refused and counted in
    /stats by reason, over UDP (bad lines) and HTTP (400s), and only the
    events within the limits are counted.
    """
    now = time.time()
    service, base, udp = start(
        "--redis",
        store_url,
        "--flush-interval",
        "0.1",
        "--max-line-bytes",
        "200",
        "--max-body-bytes",
        "300",
        "--max-pk-depth",
        "2",
        "--max-dimension-nodes",
        "3",
        "--max-metrics",
        "3",
        "--max-name-length",
        "10",
        "--max-past",
        "1h",
        "--max-future",
        "10m",
    )
    too_far = [("too_old", now - 7200), ("too_new", now + 1200)]
    events = {
        "ok": {"pk": "limits", "dimensions": {"a": "b"}, "metrics": {"m": 1}, "at": now - 1800},
        "too_deep": {"pk": ["limits", "b", "c"]},
        "too_many_dimensions": {"pk": "limits", "dimensions": {"a": "b", "c": "d"}},
        "too_many_metrics": {"pk": "limits", "metrics": {"m": 1, "n": 2, "o": 3}},
        "too_long": {"pk": "limits", "dimensions": "x" * 11},
        **{reason: {"pk": "limits", "at": at} for reason, at in too_far},
    }
    try:
        send_udp(
            udp,
            b"\n".join(
                [json.dumps(event).encode() for event in events.values()]
                + [b'{"pk": "limits", "pad": "' + b"x" * 200 + b'"}']
            ),
        )
        codes = [
            (
                await treq.post(
                    base + "/count", json.dumps(event).encode(), headers={"Content-Type": "application/json"}
                )
            ).code
            for event in events.values()
        ]
        codes.append(
            (
                await treq.post(
                    base + "/count",
                    b"[" + b'{"pk": "limits"},' * 20 + b'{"pk": "limits"}]',
                    headers={"Content-Type": "application/json"},
                )
            ).code
        )

        async def counted():
            _, body = await get_json(totals_url(base, "limits", metrics='["hits","m"]', periods='["day"]'))
            return body["day"]["_"] if body["day"]["_"]["hits"] == 2 else None

        totals = await eventually(counted)
        _, stats = await get_json(base + "/stats")
    finally:
        await service.stopService()

    refused = {reason: 1 for reason in events if reason != "ok"}
    assert [200] + [400] * (len(events) - 1) + [400] == codes
    assert ({**refused, "line_too_long": 1}, {**refused, "body_too_long": 1}) == (
        stats["lines_bad"],
        stats["http_bad_requests"],
    )
    assert {"hits": 2.0, "m": 2.0} == totals


@pytest_twisted.ensureDeferred
async def test_http_on_a_unix_socket(store_url, tmp_path):
    """--http-listen takes a Twisted endpoint: here a unix socket, as a reverse proxy on the same host would use."""
    path = tmp_path / "http.sock"
    service, _, _ = start("--redis", store_url, "--http-listen", f"unix:{path}")
    try:

        def ask() -> bytes:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(path))
                sock.sendall(b"GET /openapi.json HTTP/1.0\r\nHost: hw\r\n\r\n")
                return b"".join(iter(lambda: sock.recv(65536), b""))

        answer = await threads.deferToThread(ask)

        assert (b"HTTP/1.0 200", True) == (answer[:12], b'"openapi": "3.1' in answer)
    finally:
        await service.stopService()


def test_a_port_in_use_fails_the_start(store_url):
    """If the HTTP port is taken, starting fails at once (twistd exits) rather than running without HTTP."""
    taken = socket.create_server(("127.0.0.1", 0))
    options = Options()
    options.parseOptions(
        ["--redis", store_url, "--udp-port", "0", "--collectd-port", "0", "--http-port", str(taken.getsockname()[1])]
    )
    service = makeService(options["config"], reactor)
    try:
        with pytest.raises(CannotListenError):
            service.startService()
    finally:
        taken.close()
        service.stopService()


@pytest.mark.slow
def test_twistd_exits_when_its_port_is_taken(tmp_path):
    """twistd with a taken HTTP port logs why and exits, its embedded store and threads stopped (it used to hang)."""
    taken = socket.create_server(("127.0.0.1", 0))
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
                "--http-port",
                str(taken.getsockname()[1]),
                "--udp-port",
                "0",
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
        taken.close()
    log = (tmp_path / "twistd.log").read_text()

    assert (True, True, False) == (
        process.returncode != 0,
        "Address already in use" in log,
        (tmp_path / "data" / "valkey.sock").exists(),
    )
