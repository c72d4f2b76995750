"""A real Redis Cluster (three Valkey nodes): every pk's keys in one slot, scripts routed by it."""

import pytest
import pytest_twisted

from hailwhale import testing
from hailwhale.testing import upcoming
from hailwhale.whale import Whale
from tests.test_daemon import eventually, get_json, send_udp, start, totals_url

NOW = upcoming(1, 40)  # ahead of the clock the store expires keys by


@pytest.fixture(scope="module")
def cluster_url():
    servers = testing.start_valkey_cluster()
    yield f"redis://127.0.0.1:{servers[0].port}/0"
    for server in servers:
        server.stop()


def test_whale_on_a_cluster(cluster_url):
    """Writes spread over the cluster's nodes; totals, grouping, rank and the tree read back."""
    Whale.configure(cluster_url, schema="1m:2d,1h:35d,1d:3y", cluster=True)
    for pk, country, revenue in [(["Product", "1"], "US", 5), (["Product", "2"], "UK", 7), (["Product", "3"], "US", 1)]:
        Whale.count_now(pk, {"country": country}, {"revenue": revenue}, now=NOW)

    grouped = Whale.totals("Product", "country", "revenue", "today", depth=1, sort="-revenue", now=NOW)["today"]

    assert [("country", 13.0), ("UK", 7.0), ("US", 6.0)] == [
        (row["path"][-1], row["metrics"]["revenue"]) for row in grouped["rows"]
    ]
    assert (5.0, ["_", "country", ["country", "US"]]) == (
        Whale.total(["Product", "1"], "revenue", period="today", now=NOW),
        Whale.all_subdimensions(["Product", "1"]),
    )
    assert ["country", '["country", "UK"]', '["country", "US"]'] == list(
        Whale.rank("Product", "revenue", "country", "today", now=NOW)
    )


@pytest_twisted.ensureDeferred
async def test_daemon_on_a_cluster(cluster_url):
    """The daemon flushes to a cluster (--redis-cluster) and answers from it."""
    service, base, udp = start("--redis", cluster_url, "--redis-cluster", "--flush-interval", "0.1")
    try:
        send_udp(udp, b"\n".join(b'{"pk": ["shop", "p%d"], "metrics": {"n": 1}}' % i for i in range(50)))

        async def counted():
            _, body = await get_json(totals_url(base, "shop", metrics='["n"]'))
            return body if body["today"]["_"]["n"] == 50 else None

        assert {"today": {"_": {"n": 50.0}}} == await eventually(counted)
    finally:
        await service.stopService()


def test_gauges_and_unique_counts_on_a_cluster(cluster_url):
    """Gauges and unique counts (HyperLogLog keys read in a pipeline) work on a cluster too."""
    Whale.configure(cluster_url, schema="1m:2d,1h:35d,1d:3y", cluster=True)
    for visitor, depth in [("ann", 4), ("bob", 9), ("ann", 2)]:
        Whale.count_now(["site", "home"], None, {"visitors.unique": visitor, "queue.gauge": depth}, now=NOW)

    assert {"today": {"_": {"visitors.unique": 2.0, "queue.gauge": 2.0}}} == Whale.totals(
        "site", metrics=["visitors.unique", "queue.gauge"], periods="today", now=NOW
    )
