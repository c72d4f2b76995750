"""The HTTP API through StubTreq: real requests, real store, a fake clock, no sockets."""

import json
import random
from urllib.parse import quote

import pytest
import treq
from treq.testing import StubTreq
from twisted.internet import task

from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.aggregate.cardinality import Cardinality
from hailwhale.aggregate.ingest import Ingest
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.flush import FlushService
from hailwhale.model.fields import Limits
from hailwhale.model.schema import parse_schema
from hailwhale.service import Reader
from hailwhale.store import Store
from hailwhale.testing import succeeded, synchronous, upcoming
from hailwhale.web import access, openapi, prometheus
from hailwhale.web.app import PIXEL, HailwhaleWeb
from tests.test_flush import FlakyStore

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
NOW = upcoming(1, 40)  # early in a UTC day, ahead of the clock the store expires keys by


class Api:
    def __init__(self, store, max_keys=1000, query_store=None, policy=access.Policy()):
        self.clock = task.Clock()
        self.clock.advance(NOW)
        self.stats = SelfStats()
        self.store = FlakyStore(store)
        accumulator = Accumulator(60, max_keys)
        self.ingest = ingest = Ingest(
            accumulator,
            self.stats,
            Cardinality(1000, 100_000),
            Limits(max_past_seconds=SCHEMA.longest_retention()),
            self.clock.seconds,
            lambda line, message: None,
        )
        self.flusher = FlushService(accumulator, self.store, SCHEMA, self.stats, self.clock, synchronous, 1.0)
        registry = prometheus.registry(self.stats.snapshot, process=False)
        web = HailwhaleWeb(
            ingest,
            self.flusher,
            Reader(query_store or store, synchronous),
            self.stats.snapshot,
            self.clock,
            SCHEMA,
            max_body_bytes=4096,
            count_now_timeout=5.0,
            policy=policy,
            health=lambda: self.stats.health(stopping=ingest.closed),
            metrics=lambda accept: prometheus.exposition(registry, accept),
            openapi=openapi.describe(policy.read_token is not None, policy.write_token is not None),
            rng=random.Random(0),  # decisions drawn the same way on every run: a test of choices cannot flake
        )
        self.web = web
        self.client = StubTreq(web.resource())

    def get(self, path, **kwargs):
        return succeeded(self.client.get("http://hw" + path, **kwargs))

    def post(self, path, body=b"", content_type="application/json", headers=None, **kwargs):
        return succeeded(
            self.client.post(
                "http://hw" + path, data=body, headers={"Content-Type": content_type, **(headers or {})}, **kwargs
            )
        )

    def content(self, response):
        return succeeded(treq.content(response))

    def json(self, response):
        return json.loads(self.content(response))

    def flush(self):
        assert succeeded(self.flusher.flush())

    def totals(self, pk="test", metrics='["hits"]', dimensions="_", periods='["today"]'):
        response = self.get(
            f"/totals?pk={quote(pk)}&metrics={quote(metrics)}&dimensions={quote(dimensions)}&periods={quote(periods)}"
        )
        assert 200 == response.code, self.content(response)
        return self.json(response)


@pytest.fixture
def api(store):
    return Api(store)


def test_count_answers_ok_and_counts_at_flush(api):
    """GET /count answers OK with CORS for any origin; the event is in /totals after the flush."""
    response = api.get('/count?pk=test&dimensions=services&metrics={"dollars": 200}')
    body, origin = api.content(response), response.headers.getRawHeaders("Access-Control-Allow-Origin")
    api.flush()

    assert (b"OK", ["*"]) == (body, origin)
    expected = {"today": {"services": {"dollars": 200.0, "hits": 1.0, "dollars/hits": 200.0}}}
    assert expected == api.totals(metrics='["dollars","hits","dollars/hits"]', dimensions="services")


def test_post_forms(api):
    """POST takes a JSON object, a JSON array (a batch), a text/plain beacon, or a form."""
    api.post("/count", b'{"pk": "test", "metrics": {"a": 1}}')
    api.post("/count", b'[{"pk": "test", "metrics": {"a": 2}}, {"pk": "test", "metrics": {"a": 3}}]')
    api.post("/count", b'{"pk": "test", "metrics": {"a": 4}}', "text/plain;charset=UTF-8")
    api.post("/count", b"pk=test&metrics=%7B%22a%22%3A5%7D", "text/plain")
    api.post("/count", b"pk=test&metrics=%7B%22a%22%3A6%7D", "application/x-www-form-urlencoded")
    api.flush()

    assert {"today": {"_": {"a": 21.0, "hits": 6.0}}} == api.totals(metrics='["a","hits"]')


def test_a_bad_event_in_a_batch_rejects_the_batch(api):
    """A batch with one bad event is a 400 naming the field, and nothing of it is counted."""
    response = api.post("/count", b'[{"pk": "test"}, {"pk": "test", "metrics": {"a": "lots"}}]')
    api.flush()

    assert (400, "metrics.a", 0.0) == (response.code, api.json(response)["field"], api.totals()["today"]["_"]["hits"])


@pytest.mark.parametrize(
    "path, field",
    [
        ("/count?dimensions=x", "pk"),
        ("/count?pk=x&dimensions={oops", "dimensions"),
        ("/count?pk=x&at=soon", "at"),
        ("/totals?pk=x&periods=fortnight", "period"),
        ("/totals?pk=x&metrics=a/b/c", "metrics"),
        ("/plotpoints?pk=x&period=1m:1w", "period"),
        ("/totals?metrics=hits", "pk"),
    ],
)
def test_bad_input_is_a_400_with_a_reason(api, path, field):
    """Bad input answers 400 with a JSON reason naming the field."""
    response = api.get(path)
    body = api.json(response)

    assert (400, field, True) == (response.code, body["field"], field in body["error"] or "period" in body["error"])


def test_pixel(api):
    """/count.gif counts and answers a transparent 1x1 GIF that is never cached."""
    response = api.get("/count.gif?pk=test")
    api.flush()

    assert (200, PIXEL, ["image/gif"], ["no-store, no-cache, must-revalidate"], 1.0) == (
        response.code,
        api.content(response),
        response.headers.getRawHeaders("Content-Type"),
        response.headers.getRawHeaders("Cache-Control"),
        api.totals()["today"]["_"]["hits"],
    )


def test_bad_pixel_is_still_an_image(api):
    """A bad pixel request answers 400 with the GIF, so <img> tags never show an error page."""
    response = api.get("/count.gif?dimensions=x")

    assert (400, PIXEL, True) == (
        response.code,
        api.content(response),
        "pk" in response.headers.getRawHeaders("X-Hailwhale-Error")[0],
    )


def test_preflight(api):
    """An OPTIONS preflight is answered for the origin that asks, credentials allowed."""
    response = succeeded(api.client.request("OPTIONS", "http://hw/count", headers={"Origin": "https://shop.example"}))

    assert (204, ["https://shop.example"], ["true"]) == (
        response.code,
        response.headers.getRawHeaders("Access-Control-Allow-Origin"),
        response.headers.getRawHeaders("Access-Control-Allow-Credentials"),
    )


def test_count_now_answers_once_durable(api):
    """/count_now answers OK once the event is in the store, without waiting for a tick."""
    response = api.get('/count_now?pk=test&metrics={"counting_now": 5}')

    assert (b"OK", 5.0) == (api.content(response), api.totals(metrics='["counting_now"]')["today"]["_"]["counting_now"])


def test_count_now_with_the_store_away_is_a_503(api):
    """If the store cannot take it in time, /count_now says so (the event stays queued and lands later)."""
    api.store.fail_before = 100
    pending = api.client.get("http://hw/count_now?pk=test")
    api.clock.advance(5)
    api.client.flush()
    response = succeeded(pending)
    api.store.fail_before = 0
    api.flush()

    assert (503, 1.0) == (response.code, api.totals()["today"]["_"]["hits"])


def test_flush_endpoint(api):
    """POST /flush writes everything pending and says so."""
    api.get("/count?pk=test")

    response = api.post("/flush")

    assert (200, {"flushed": True, "backlog_events": 0}, 1.0) == (
        response.code,
        api.json(response),
        api.totals()["today"]["_"]["hits"],
    )


def test_totals_default_periods_are_the_originals(api):
    """/totals without periods answers the original's five interval:length windows."""
    api.get('/count?pk=test&dimensions=empty&metrics={"counting": 5}')
    api.flush()

    response = api.get('/totals?pk=test&dimensions=empty&metrics=["counting"]')

    expected = {p: {"empty": {"counting": 5.0}} for p in ["1m:1h", "1h:1d", "1d:1w", "1d:1mo", "1d:1y"]}
    assert expected == api.json(response)


def test_plotpoints_dense_and_zero_filled(api):
    """/plotpoints answers every bucket of the period as [epoch_ms, value], zeros included; ratios per bucket."""
    api.get(f'/count?pk=test&metrics={{"dollars": 6}}&at={int(NOW - 120)}')
    api.get('/count?pk=test&metrics={"dollars": 1}')
    api.get('/count?pk=test&metrics={"dollars": 2}')
    api.flush()

    response = api.get('/plotpoints?pk=test&metrics=["dollars","dollars/hits"]&period=1m:4m')

    minute = int(NOW // 60 * 60) * 1000
    times = [minute - 180_000, minute - 120_000, minute - 60_000, minute]
    assert {
        "_": {
            "dollars": [[t, v] for t, v in zip(times, [0.0, 6.0, 0.0, 3.0])],
            "dollars/hits": [[t, v] for t, v in zip(times, [0.0, 6.0, 0.0, 1.5])],
        }
    } == api.json(response)


def test_stats(api):
    """/stats counts HTTP events, bad requests by reason and flushes."""
    api.get("/count?pk=test")
    api.get("/count?dimensions=x")
    api.flush()

    stats = api.json(api.get("/stats"))

    assert (1, {"bad_pk": 1}, 1) == (stats["http_events_ok"], stats["http_bad_requests"], stats["flushes_ok"])


def test_original_http_counting_tests(api):
    """The original's testCountingNowCorrectly and testCountingCorrectly: three counts of 5 grow the total by 15."""
    base = 'pk="test"&dimensions=["empty"]&metrics={"%s": 5}'
    before = api.totals(metrics='["counting_now", "counting"]', dimensions='["empty"]', periods='["1m:1h"]')
    for _ in range(3):
        assert b"OK" == api.content(api.get("/count_now?" + base % "counting_now"))
        assert b"OK" == api.content(api.get("/count?" + base % "counting"))
    api.post("/flush")

    after = api.totals(metrics='["counting_now", "counting"]', dimensions='["empty"]', periods='["1m:1h"]')

    grown = {m: after["1m:1h"]["empty"][m] - before["1m:1h"]["empty"][m] for m in ("counting_now", "counting")}
    assert {"counting_now": 15.0, "counting": 15.0} == grown


def test_grouped_queries_over_http(api):
    """/totals and /plotpoints take depth, sort and limit; /rank and /dimensions answer over HTTP too."""
    for country, revenue in (("US", 30), ("UK", 10), ("DE", 20)):
        api.get(f'/count?pk=shop&dimensions={{"country":"{country}"}}&metrics={{"revenue":{revenue}}}')
    api.flush()

    totals = api.json(
        api.get('/totals?pk=shop&dimensions=country&depth=1&metrics=["revenue"]&period=today&sort=-revenue&limit=2')
    )
    plot = api.json(api.get("/plotpoints?pk=shop&dimensions=country&depth=1&metrics=revenue&period=1m:2m&sort=revenue"))
    ranked = api.json(api.get("/rank?pk=shop&dimension=country&metric=revenue&period=today"))
    tree = api.json(api.get("/dimensions?pk=shop&dimension=_&depth=2"))

    assert ([["country"], ["country", "US"], ["country", "DE"]], 1) == (
        [row["path"] for row in totals["today"]["rows"]],
        totals["today"]["more"],
    )
    assert [["country"], ["country", "UK"], ["country", "DE"], ["country", "US"]] == [r["path"] for r in plot["rows"]]
    assert [[0.0, 60.0]] == [[series[0][1], series[-1][1]] for series in [plot["rows"][0]["metrics"]["revenue"]]]
    assert ["country", '["country", "US"]', '["country", "DE"]', '["country", "UK"]'] == list(ranked)
    assert [[], ["country"], ["country", "DE"], ["country", "UK"], ["country", "US"]] == [r["path"] for r in tree]


@pytest.mark.parametrize(
    "query, field",
    [
        ("sort=-a/b/c", "sort"),
        ("depth=x", "depth"),
        ("limit=-1", "limit"),
        ("tz=Mars/Base", "tz"),
        ("tzoffset=7h", "tzoffset"),
        ("depth=1&sort=-x:last", "sort"),
        ("period=9999-12-30..9999-12-31", "period"),
    ],
)
def test_bad_query_parameters(api, query, field):
    """Bad grouping or time-zone parameters are 400s naming the parameter."""
    response = api.get("/totals?pk=shop&" + query)

    assert (400, field) == (response.code, api.json(response)["field"])


def test_an_event_older_than_every_bucket_is_a_400(api):
    """An event whose time is past every retention is the caller's mistake: 400 naming 'at', nothing counted."""
    response = api.post("/count", b'[{"pk": "test"}, {"pk": "test", "at": 0}]')
    api.flush()

    assert (400, "at", 0.0) == (response.code, api.json(response)["field"], api.totals()["today"]["_"]["hits"])


def test_rank_of_a_level_is_a_400(api):
    """/rank of a :last level is refused with a reason, not a server error."""
    response = api.get("/rank?pk=shop&dimension=country&metric=hits:last")

    assert (400, "metric") == (response.code, api.json(response)["field"])


def test_a_batch_that_does_not_fit_is_refused_whole(store):
    """A batch needing more new keys than the bound allows answers 503 and counts nothing (a retry cannot double)."""
    api = Api(store, max_keys=2)

    response = api.post("/count", b'[{"pk": "p0"}, {"pk": "p1"}, {"pk": "p2"}]')
    api.flush()

    assert (503, 0.0) == (response.code, api.totals(pk="p0")["today"]["_"]["hits"])


def test_events_arriving_while_stopping_are_refused(api):
    """Once the daemon is stopping (its last flush under way), an event is a 503 and counted as dropped, not lost."""
    api.ingest.closed = True

    response = api.get("/count?pk=test")

    assert (503, {"stopping": 1}) == (response.code, api.json(api.get("/stats"))["events_dropped"])


def test_a_query_the_store_cannot_answer_is_a_503(store):
    """A query while the store is unreachable answers 503 with a reason, not a server error."""
    api = Api(store, query_store=Store.connect("redis://127.0.0.1:1/0", timeout=0.5))

    response = api.get("/totals?pk=test")

    assert (503, "store_unavailable") == (response.code, api.json(response)["reason"])
