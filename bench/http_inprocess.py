"""
CPU time per counting request in the HTTP layer, in process (no sockets, no reactor): the
same ``GET /count.gif`` fed again and again to one connection over an in-memory transport,
by each way through this tree's code:

- ``klein``: a plain twisted.web Site over the Klein app (the way before the counting front);
- ``front``: a plain Site over the counting front (Twisted's request machinery, no Klein);
- ``quick``: the daemon's Site, whose connections read such a request themselves;

and the handler alone (``handler``), given a ready request.  Best of ``--repeat`` rounds.

    .venv/bin/python bench/http_inprocess.py [--requests 50000] [--repeat 3]
"""

import argparse
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet import task  # noqa: E402
from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.web.http import parse_qs  # noqa: E402
from twisted.web.server import Site  # noqa: E402

from hailwhale.aggregate.accumulator import Accumulator  # noqa: E402
from hailwhale.aggregate.cardinality import Cardinality  # noqa: E402
from hailwhale.aggregate.ingest import Ingest  # noqa: E402
from hailwhale.aggregate.selfstats import SelfStats  # noqa: E402
from hailwhale.model.fields import Limits  # noqa: E402
from hailwhale.model.schema import parse_schema  # noqa: E402
from hailwhale.web.app import HailwhaleWeb  # noqa: E402
from hailwhale.web.connections import Caps, Connections  # noqa: E402
from hailwhale.web.server import HailwhaleSite, LeanRequest  # noqa: E402

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
PATH = b"/count.gif"
QUERY = b"pk=bench&dimensions=%7B%22country%22%3A%22US%22%7D"
REQUEST = b"GET " + PATH + b"?" + QUERY + b" HTTP/1.1\r\nHost: 127.0.0.1:8085\r\nUser-Agent: bench\r\n\r\n"
PEER = IPv4Address("TCP", "127.0.0.1", 40000)


def web() -> tuple[HailwhaleWeb, task.Clock]:
    clock = task.Clock()
    clock.advance(time.time())
    stats = SelfStats()
    ingest = Ingest(
        Accumulator(60, 100_000),
        stats,
        Cardinality(1000, 100_000),
        Limits(max_past_seconds=SCHEMA.longest_retention()),
        clock.seconds,
        lambda *_: None,
    )
    return HailwhaleWeb(ingest, None, None, stats.snapshot, clock, SCHEMA), clock


def connection(way: str):
    built, clock = web()
    front = built.resource()
    if way == "quick":
        site: Site = HailwhaleSite(front, Connections(Caps(10, 10), 10, 10, SelfStats(), clock), front.quick, clock)
    else:
        site = Site(built.app.resource() if way == "klein" else front, reactor=clock)
    protocol = site.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


def per_request(way: str, requests: int) -> float:
    if way == "handler":
        built, _ = web()
        answer = built.resource().quick(PATH)
        assert answer is not None
        args = parse_qs(QUERY, 1)

        def once() -> None:
            answer(LeanRequest(PATH, args, {b"host": b"127.0.0.1:8085"}))

    else:
        protocol, transport = connection(way)

        def once() -> None:
            protocol.dataReceived(REQUEST)
            transport.clear()

    for _ in range(2000):
        once()
    gc.collect()
    started = time.process_time()
    for _ in range(requests):
        once()
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for way in ("klein", "front", "quick", "handler"):
        best = min(per_request(way, args.requests) for _ in range(args.repeat))
        print(f"{way:8} {best:6.1f} us of CPU per request", flush=True)


if __name__ == "__main__":
    main()
