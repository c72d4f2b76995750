"""
The quick way for counting requests (hailwhale.web.server) answers and counts exactly as
Twisted's way through the same resource, and as the Klein app did before the counting
front: the same status, headers and body, and the same events and self-stats.  The events
the counting paths remember by their fields are those read anew.
"""

import re
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.server import Request, Site

from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.aggregate.cardinality import Cardinality
from hailwhale.aggregate.ingest import Ingest
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.model import events
from hailwhale.model.fields import FieldError, Limits
from hailwhale.model.schema import parse_schema
from hailwhale.testing import strategies, upcoming
from hailwhale.web import access
from hailwhale.web.app import EventMemo, HailwhaleWeb
from hailwhale.web.connections import Caps, Connections
from hailwhale.web.server import HailwhaleSite

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
NOW = upcoming(1, 40)
TOKEN = "s3cret"
PEER = IPv4Address("TCP", "192.0.2.1", 40000)


class Counted(Request):
    made = 0

    def __init__(self, *args, **kwargs):
        Counted.made += 1
        super().__init__(*args, **kwargs)


class Way:
    """One way through to the handlers, with its own ingest: the quick way, Twisted's way, or the Klein app."""

    def __init__(self, way: str, write_token: str | None):
        clock = task.Clock()
        clock.advance(NOW)
        self.stats = SelfStats()
        self.accumulator = Accumulator(60, 1000)
        ingest = Ingest(
            self.accumulator,
            self.stats,
            Cardinality(1000, 100_000),
            Limits(max_past_seconds=SCHEMA.longest_retention()),
            clock.seconds,
            lambda line, message: None,
        )
        web = HailwhaleWeb(
            ingest, None, None, self.stats.snapshot, clock, SCHEMA, policy=access.Policy(write_token=write_token)
        )
        front = web.resource()
        if way == "quick":
            book = Connections(Caps(100, 100), 10, 10, SelfStats(), clock)
            self.site: Site = HailwhaleSite(front, book, front.quick, clock)
        else:
            self.site = Site(front if way == "twisted" else web.app.resource(), reactor=clock)
        self.site.requestFactory = Counted

    def answer(self, request: bytes) -> bytes:
        protocol = self.site.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        protocol.dataReceived(request)
        return transport.value()

    def counted(self) -> tuple:
        batch = self.accumulator.swap()
        events = (dict(batch.entries), batch.events, dict(batch.levels), dict(batch.members)) if batch else None
        return events, self.stats.snapshot()


def without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(b"Date: "))


def parsed(answer: bytes) -> tuple:
    """(status line, headers but Date and the framing ones, body with chunks joined)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = [line for line in lines if line.split(b":")[0] not in (b"Date", b"Content-Length", b"Transfer-Encoding")]
    if b"Transfer-Encoding: chunked" in lines:
        joined = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            joined, body = joined + rest[: int(size, 16)], rest[int(size, 16) + 2 :]
        body = joined
    return status, headers, body


texts = st.one_of(
    strategies.names,
    st.sampled_from(['["Product","123"]', '{"country":"US"}', '{"a": 2}', '{"a": "lots"}', "[]", "{", "", "soon"]),
)
query_names = st.sampled_from(["pk", "dimensions", "dimension", "metrics", "metric", "at", "token", "other", "pk"])
encodings = st.sampled_from(
    [lambda text: quote(text, safe=""), lambda text: quote(text, safe="{}[]:,\"'"), lambda text: quote(text)]
)
queries = st.lists(st.tuples(query_names, st.one_of(texts, st.just(TOKEN)), encodings), max_size=6).map(
    lambda items: "&".join(f"{name}={encode(value)}" for name, value, encode in items)
)
extra = st.sampled_from(["", "%ff", "&&", "pk=%C3%A9t%C3%A9", "metrics=%7B%22a%22%3A1e400%7D", "=x", "pk"])
headers = st.lists(
    st.sampled_from(
        [
            b"Host: hw.example",
            b"host: hw.example",
            b"User-Agent: Mozilla/5.0 (X11)",
            b"Origin: https://shop.example",
            b"Authorization: Bearer " + TOKEN.encode(),
            b"authorization: bearer wrong",
            b"Authorization: Basic dXNlcjpwYXNz",
            b"Cookie: a=b; c=d",
            b"Connection: keep-alive",
            b"Connection: close",
            b"Accept: image/*",
            b"X-Forwarded-For: 203.0.113.9",
            b"Referer:  https://shop.example/page?x=1 ",
        ]
    ),
    max_size=6,
)
requests = st.builds(
    lambda path, query, more, head, version: (
        f"GET {path}{'?' if query or more else ''}{query}{'&' if query and more else ''}{more} {version}\r\n".encode()
        + b"".join(line + b"\r\n" for line in head)
        + b"\r\n"
    ),
    st.sampled_from(["/count.gif", "/count"]),
    queries,
    extra,
    headers,
    st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(requests, st.sampled_from([None, TOKEN]))
def test_the_quick_way_answers_and_counts_as_the_others(request, write_token):
    """For any counting GET: the quick way's answer is Twisted's way's, byte for byte (Date aside), and the Klein
    app's (but for its chunked framing); all three count the same events and self-stats."""
    quick, twisted, klein = Way("quick", write_token), Way("twisted", write_token), Way("klein", write_token)
    answers = [way.answer(request) for way in (quick, twisted, klein)]
    counts = [way.counted() for way in (quick, twisted, klein)]

    assert (without_date(answers[1]), parsed(answers[2]), counts[1], counts[2]) == (
        without_date(answers[0]),
        parsed(answers[0]),
        counts[0],
        counts[0],
    )


def test_a_plain_counting_get_goes_the_quick_way():
    """A whole counting GET makes no Twisted Request; one that asks to close the connection, or HTTP/1.0, does."""
    quick = Way("quick", None)
    made = []
    for request in (
        b"GET /count.gif?pk=a HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /count?pk=a HTTP/1.1\r\n\r\n",
        b"GET /count.gif?pk=a HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /count.gif?pk=a HTTP/1.0\r\n\r\n",
        b"GET /count.gif/?pk=a HTTP/1.1\r\n\r\n",
        b"POST /count.gif?pk=a HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ):
        before = Counted.made
        status = quick.answer(request).split(b"\r\n")[0]
        made.append((status, Counted.made - before))

    assert [
        (b"HTTP/1.1 200 OK", 0),
        (b"HTTP/1.1 200 OK", 0),
        (b"HTTP/1.1 200 OK", 1),
        (b"HTTP/1.0 200 OK", 1),
        (b"HTTP/1.1 404 Not Found", 1),
        (b"HTTP/1.1 200 OK", 1),
    ] == made


def test_requests_on_one_connection_go_either_way_in_order():
    """On one kept-alive connection, quick and Twisted's ways take turns; the answers come in order."""
    quick = Way("quick", None)
    protocol = quick.site.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    for request in (
        b"GET /count.gif?pk=a HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\n\r\n",
        b"GET /count?pk=a HTTP/1.1\r\n\r\n",
        b"GET /count?pk=a HTTP/1.1\r\n\r\nGET /count?pk=b HTTP/1.1\r\n\r\n",
    ):
        protocol.dataReceived(request)
    statuses = re.findall(rb"HTTP/1\.1 \d{3} [A-Za-z ]+", transport.value())
    _, stats = quick.counted()

    assert ([b"HTTP/1.1 200 OK"] * 5, 4) == (statuses, stats["http_events_ok"])


field_values = st.one_of(st.none(), st.just(""), texts, st.just("1700000000"), st.just("soon"))
event_fields = st.dictionaries(
    st.sampled_from(["pk", "dimensions", "dimension", "metrics", "metric", "at", "cb"]), field_values, max_size=6
)


def read(parse, raw: dict, now: float) -> object:
    try:
        return parse(raw, now, LIMITS)
    except FieldError as error:
        return ("error", str(error), error.field, error.reason)


LIMITS = Limits(max_past_seconds=SCHEMA.longest_retention())


@settings(max_examples=300)
@given(st.lists(event_fields, min_size=1, max_size=8), st.floats(0, 120))
def test_remembered_events_are_those_read_anew(fields_seen, later):
    """The events the counting paths remember by their fields are the ones read anew, at each request's time;
    errors included."""
    memo = EventMemo(size=4)
    remembered = [read(memo, raw, NOW + later * i) for i, raw in enumerate(fields_seen * 2)]
    anew = [read(events.from_fields, raw, NOW + later * i) for i, raw in enumerate(fields_seen * 2)]

    assert anew == remembered
