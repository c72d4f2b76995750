"""
Real statsd clients against the real daemon: the Python ``statsd`` package and Node's
``hot-shots`` (DogStatsD tags, histograms, distributions, buffered multi-line datagrams).
What they send is what the queries return.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import pytest_twisted
import statsd
from twisted.internet import reactor, utils

from tests.test_daemon import eventually, get_json, start, totals_url

NODE_DIR = Path(__file__).parent / "node"
RECENT = '["1m:1h"]'


@pytest.fixture(scope="module")
def node():
    """Node.js with hot-shots installed from tests/node/package.json (installed here if missing)."""
    binary = shutil.which("node")
    assert binary, "Node.js is needed for the hot-shots test (.ci/run installs it)"
    if not (NODE_DIR / "node_modules" / "hot-shots").is_dir():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)], check=True, timeout=300
        )
    return binary


async def totals(base: str, pk, dimensions="_", metrics='["hits"]'):
    _, body = await get_json(totals_url(base, json.dumps(pk), dimensions, metrics, RECENT))
    return body["1m:1h"][next(iter(body["1m:1h"]))]


async def arrived(base: str, lines: int):
    async def check():
        _, stats = await get_json(base + "/stats")
        flushed = stats["lines_ok"] == lines and stats["events_flushed"] >= lines
        return stats if flushed else None

    stats = await eventually(check)
    assert stats is not None, "the client's lines did not all arrive and flush"
    return stats


@pytest_twisted.ensureDeferred
async def test_python_statsd_client(store_url):
    """Counters (incr, decr, pipelined), gauges (set and delta), timings and sets from the statsd package."""
    service, base, udp = start("--redis", store_url, "--flush-interval", "0.1")
    try:
        client = statsd.StatsClient("127.0.0.1", udp, prefix="shop")
        client.incr("checkout", 3)
        client.incr("checkout")
        client.decr("checkout")
        with client.pipeline() as pipe:
            pipe.incr("checkout", 2)
            pipe.timing("latency", 120)
            pipe.timing("latency", 80)
        client.gauge("queue", 40)
        client.gauge("queue", 5, delta=True)
        client.set("visitors", "ann")
        client.set("visitors", "bob")
        client.set("visitors", "ann")
        stats = await arrived(base, 11)

        assert {"count": 5.0, "hits": 4.0} == await totals(base, ["shop", "checkout"], metrics='["count","hits"]')
        assert {"count": 5.0} == await totals(base, ["shop"], metrics='["count"]')
        assert {"ms.sum": 200.0, "ms.count": 2.0, "ms.sum/ms.count": 100.0} == await totals(
            base, ["shop", "latency"], metrics='["ms.sum","ms.count","ms.sum/ms.count"]'
        )
        quantiles = await totals(base, ["shop", "latency"], metrics='["ms:p50","ms:p99"]')
        assert (80.0, 120.0) == (
            pytest.approx(quantiles["ms:p50"], rel=0.01),
            pytest.approx(quantiles["ms:p99"], rel=0.01),
        )
        assert {"gauge": 45.0} == await totals(base, ["shop", "queue"], metrics='["gauge"]')
        assert {"unique": 2.0, "hits": 3.0} == await totals(base, ["shop", "visitors"], metrics='["unique","hits"]')
        assert {} == stats["lines_bad"]
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_node_hot_shots_client(store_url, node):
    """hot-shots' DogStatsD lines, single and buffered: tags become dimensions, every type lands."""
    service, base, udp = start("--redis", store_url, "--flush-interval", "0.1")
    try:
        _out, err, code = await utils.getProcessOutputAndValue(
            node, [str(NODE_DIR / "send_hot_shots.js"), str(udp)], reactor=reactor
        )
        assert 0 == code, err.decode()
        stats = await arrived(base, 11)

        requests = '["count","hits"]'
        assert {"count": 7.0, "hits": 3.0} == await totals(base, ["api", "requests"], metrics=requests)
        assert {"count": 2.0, "hits": 1.0} == await totals(base, ["api", "requests"], '["country","US"]', requests)
        assert {"count": 5.0, "hits": 2.0} == await totals(base, ["api", "requests"], '["country","MX"]', requests)
        assert {"count": 2.0, "hits": 1.0} == await totals(base, ["api", "requests"], '["device","mac"]', requests)
        assert {"gauge": 12.0} == await totals(base, ["api", "pool"], '["country","US"]', '["gauge"]')
        assert {"ms.sum": 80.0, "ms.count": 2.0} == await totals(
            base, ["api", "latency"], metrics='["ms.sum","ms.count"]'
        )
        assert {"h.sum": 100.0} == await totals(base, ["api", "size"], metrics='["h.sum"]')
        latency = await totals(base, ["api", "latency"], metrics='["ms:min","ms:max","d.dist:p50"]')
        payload = await totals(base, ["api", "payload"], metrics='["d:p50"]')
        assert (30.0, 50.0, 7.0) == (
            pytest.approx(latency["ms:min"], rel=0.01),
            pytest.approx(latency["ms:max"], rel=0.01),
            pytest.approx(payload["d:p50"], rel=0.01),
        )
        assert {"d.sum": 7.0, "d.count": 1.0} == await totals(base, ["api", "payload"], metrics='["d.sum","d.count"]')
        assert {"unique": 2.0} == await totals(base, ["api", "users"], metrics='["unique"]')
        assert {"unique": 1.0} == await totals(base, ["api", "users"], '["country","US"]', '["unique"]')
        assert ({}, True) == (stats["lines_bad"], stats["datagrams"] < 11)
    finally:
        await service.stopService()
