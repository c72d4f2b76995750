"""/metrics (the Prometheus text format, read back with prometheus_client's parser) and /health."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hailwhale import testing
from hailwhale.aggregate import selfstats
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.testing import wait_for
from hailwhale.testing.processes import Daemon
from hailwhale.web import prometheus
from tests.test_web import Api


@pytest.fixture
def api(store):
    return Api(store)


def samples(text: str) -> dict:
    """{(sample name, labels as sorted tuples): value} of a scrape."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def expected_samples(snapshot: dict, prefix: str = "hailwhale") -> dict:
    """What /metrics should hold for a /stats snapshot: each number, each count by its key, each section prefixed."""
    found = {}
    for field, value in snapshot.items():
        name = f"{prefix}_{field}"
        if field in selfstats.SUMMED.values() or value is None or isinstance(value, str):
            continue
        section = prefix.removeprefix("hailwhale").lstrip("_") + "." if prefix != "hailwhale" else ""
        described = selfstats.describe(field, section)
        suffix = "" if described.kind == selfstats.GAUGE or field.endswith("_total") else "_total"
        if isinstance(value, dict) and described.kind != selfstats.SECTION:
            found.update(
                {(name + suffix, ((described.label, str(key)),)): float(count) for key, count in value.items()}
            )
        elif isinstance(value, dict):
            found.update(expected_samples(value, name))
        else:
            found[(name + suffix, ())] = float(value)
    return found


def test_metrics_match_stats(api):
    """Every number of /stats is in /metrics with the same value: counters, counts by reason, gauges, sections."""
    api.get('/count?pk=test&metrics={"a": 2}')
    api.get("/count?pk=test")
    api.get("/count?dimensions=x")
    api.get("/count?pk=x&at=soon")
    api.flush()
    api.get("/count?pk=test")

    stats = api.json(api.get("/stats"))
    scraped = samples(api.content(api.get("/metrics")).decode())

    expected = expected_samples(stats)
    assert expected == {key: scraped.get(key) for key in expected}
    assert {
        ("hailwhale_http_bad_requests_total", (("reason", "bad_pk"),)): 1.0,
        ("hailwhale_http_bad_requests_total", (("reason", "bad_at"),)): 1.0,
        ("hailwhale_http_events_ok_total", ()): 3.0,
        ("hailwhale_flushes_ok_total", ()): 1.0,
        ("hailwhale_events_flushed_total", ()): 2.0,
        ("hailwhale_store_reachable", ()): 1.0,
    } == {
        key: scraped[key]
        for key in [
            ("hailwhale_http_bad_requests_total", (("reason", "bad_pk"),)),
            ("hailwhale_http_bad_requests_total", (("reason", "bad_at"),)),
            ("hailwhale_http_events_ok_total", ()),
            ("hailwhale_flushes_ok_total", ()),
            ("hailwhale_events_flushed_total", ()),
            ("hailwhale_store_reachable", ()),
        ]
    }


def test_metrics_types_and_info(api):
    """
    Counts are counters, levels are gauges, and hailwhale_info (a gauge of 1, in the text format) carries the
    version and schema.
    """
    api.get("/count?pk=test")
    api.flush()
    registry = prometheus.registry(lambda: {**api.stats.snapshot(), "version": "1.2", "schema": "1m:2d"}, process=False)

    families = {f.name: f for f in text_string_to_metric_families(prometheus.exposition(registry, None)[0].decode())}

    assert ("counter", "counter", "gauge", "gauge", "gauge") == tuple(
        families[name].type
        for name in (
            "hailwhale_datagrams",
            "hailwhale_lines_bad",
            "hailwhale_last_flush_seconds",
            "hailwhale_store_reachable",
            "hailwhale_info",
        )
    )
    assert {"version": "1.2", "schema": "1m:2d"} == families["hailwhale_info"].samples[0].labels


def test_every_stats_field_is_exported():
    """A field added to the snapshot is exported without more code: numbers, booleans, counts by key, sections."""
    snapshot = {
        "new_counter": 3,
        "new_level": True,
        "new_counts": {"x": 1},
        "section": {"inner": 2.5, "by": {"a": 1}},
        "text": "not exported",
        "unknown_yet": None,
    }

    registry = prometheus.registry(lambda: snapshot, process=False)
    scraped = samples(prometheus.exposition(registry, None)[0].decode())

    assert {
        ("hailwhale_new_counter_total", ()): 3.0,
        ("hailwhale_new_level_total", ()): 1.0,
        ("hailwhale_new_counts_total", (("key", "x"),)): 1.0,
        ("hailwhale_section_inner_total", ()): 2.5,
        ("hailwhale_section_by_total", (("key", "a"),)): 1.0,
    } == {k: v for k, v in scraped.items() if not k[0].endswith("_created")}


def test_every_stats_field_is_described_once():
    """The fields of /stats are the described ones, each with a help text: one list for /stats and /metrics."""
    shown = {**SelfStats().snapshot(), **selfstats.snapshot(selfstats.DaemonStatus())}
    names = {("", name) for name in shown if name not in selfstats.SUMMED.values()}
    names |= {("collectd.", name) for name in shown["collectd"]}

    assert (set(), []) == (
        {name for name in names if selfstats.describe(name[1], name[0]) is None},
        [name for name in names if not selfstats.describe(name[1], name[0]).help],
    )


def test_openmetrics_when_asked(api):
    """A scraper that asks for OpenMetrics gets it."""
    response = api.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})

    assert (True, True) == (
        response.headers.getRawHeaders("Content-Type")[0].startswith("application/openmetrics-text"),
        api.content(response).endswith(b"# EOF\n"),
    )


# -- /health ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reachable, stopping, expected",
    [
        (True, False, (True, {"status": "ok"})),
        (None, False, (False, {"status": "unavailable", "reason": "starting"})),
        (False, False, (False, {"status": "unavailable", "reason": "store_unreachable", "since": 100.0})),
        (True, True, (False, {"status": "unavailable", "reason": "stopping"})),
    ],
)
def test_health_states(reachable, stopping, expected):
    """Healthy once the store answered the last flush or check; not while starting, stopping or without the store."""
    stats = SelfStats()
    if reachable:
        stats.store_answered()
    elif reachable is False:
        stats.store_failed(100.0, ConnectionError("gone"))

    assert expected == stats.health(stopping)


def test_health_over_http(api):
    """/health answers 200 while the store answers, 503 with the reason when a flush fails, 200 once it is back."""
    api.get("/count?pk=test")
    api.flush()
    up = api.get("/health")
    api.get("/count?pk=test")
    api.store.fail_before = 1
    api.flusher.flush()
    down = api.get("/health")
    api.flush()
    back = api.get("/health")

    assert [
        (200, {"status": "ok"}),
        (503, {"status": "unavailable", "reason": "store_unreachable", "since": api.clock.seconds()}),
        (200, {"status": "ok"}),
    ] == [(response.code, api.json(response)) for response in (up, down, back)]


@pytest.mark.slow
def test_health_of_a_daemon_whose_store_stops(tmp_path):
    """A real daemon: /health is 200, then 503 (store_unreachable) once its store is stopped, 200 when it is back."""
    server = testing.start_valkey(port=testing.free_port(), data_dir=tmp_path / "valkey", persist=True)
    daemon = Daemon(
        tmp_path,
        "--redis",
        testing.valkey_url(server),
        "--collectd-port",
        "0",
        "--store-timeout",
        "0.5",
        "--flush-interval",
        "0.2",
    )
    try:
        up = wait_for(lambda: daemon.health()[0] == 200 and daemon.health(), 10)
        server.stop()
        down = wait_for(lambda: daemon.health()[0] == 503 and daemon.health(), 20)
        server.start()
        back = wait_for(lambda: daemon.health()[0] == 200 and daemon.health(), 20)
        scraped = samples(daemon_metrics(daemon))
    finally:
        daemon.kill()
        if server.is_running():
            server.stop()

    assert ((200, {"status": "ok"}), (503, "store_unreachable"), (200, {"status": "ok"})) == (
        up,
        (down[0], down[1]["reason"]),
        back,
    )
    assert (1.0, True) == (
        scraped[("hailwhale_store_reachable", ())],
        scraped[("hailwhale_flushes_failed_total", ())] >= 0,
    )


def daemon_metrics(daemon) -> str:
    import urllib.request

    with urllib.request.urlopen(daemon.base + "/metrics", timeout=30) as response:
        return response.read().decode()
