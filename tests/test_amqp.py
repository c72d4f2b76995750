"""
The RabbitMQ input on a real broker (a private node of Debian's rabbitmq-server), the real
daemon process and a real store: every message published (with publisher confirms) is
counted exactly once, through a clean run, kill -9 of the daemon at each step of a batch
and at random moments, a broker restart, a store hung past the broker's consumer timeout,
malformed messages, and two daemons on one stream.  Each event carries a distinct ``v``,
so a batch counted twice or lost shows in the sum of ``v``.  Tests print what they
measured (``pytest -s``).
"""

import os
import random
import signal
import threading
import time
import uuid

import attrs
import pytest
import redis
from twisted.python import usage

from hailwhale import testing
from hailwhale.amqp_input import PARTIAL_CALLS
from hailwhale.tap import Options
from hailwhale.testing import wait_for
from hailwhale.testing.processes import Daemon
from hailwhale.testing.rabbitmq import RabbitNode, declare_stream, publish
from hailwhale.whale import Whale

PKS = 3000  # distinct pks the events spread over: a batch is written in several script calls


@pytest.fixture(scope="module")
def rabbit():
    """A RabbitMQ node of this module's own."""
    node = RabbitNode().start()
    print(f"\nRabbitMQ node up in {node.boot_seconds:.1f} s")
    yield node
    node.close()


@pytest.fixture
def queue():
    return f"events-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def own_valkey(tmp_path):
    """A Valkey server of this test's own, so that it can be hung."""
    server = testing.start_valkey(port=testing.free_port(), data_dir=tmp_path / "valkey")
    yield server
    if server.is_running():
        server.stop()


@attrs.define
class Sent:
    """What was published: messages, events and the sum of their ``v``; ``next`` numbers the next event."""

    messages: int = 0
    events: int = 0
    v: int = 0
    next: int = 1

    def bodies(self, count: int, lines: int = 5) -> list[bytes]:
        """``count`` messages of ``lines`` JSON lines, each event under ``["amqp", "p<n>"]`` with the next ``v``."""
        made = []
        for _ in range(count):
            values = range(self.next, self.next + lines)
            made.append(b"\n".join(b'{"pk":["amqp","p%d"],"metrics":{"v":%d}}' % (v % PKS, v) for v in values))
            self.next += lines
            self.messages += 1
            self.events += lines
            self.v += sum(values)
        return made

    @property
    def expected(self) -> dict:
        return {"hits": float(self.events), "v": float(self.v)}


def amqp_daemon(directory, store_url: str, rabbit: RabbitNode, queue: str, *args: str) -> Daemon:
    directory.mkdir(parents=True, exist_ok=True)
    return Daemon(
        directory, "--redis", store_url, "--amqp", rabbit.url, "--amqp-queue", queue, "--collectd-port", "0", *args
    )


def stored(store_url: str, pk="amqp", metrics=("hits", "v")) -> dict:
    """What the store holds for ``pk`` over the last day, read without a daemon."""
    Whale.configure(store_url)
    return Whale.totals(pk, metrics=list(metrics), periods=["day"])["day"]["_"]


def counted(store_url: str, expected: dict, timeout: float = 60.0) -> dict:
    """The store's totals once they reach ``expected`` (or whatever they are after ``timeout`` s)."""
    try:
        wait_for(lambda: stored(store_url) == expected, timeout, "the totals")
    except AssertionError:
        pass
    return stored(store_url)


def amqp_stats(daemon: Daemon) -> dict:
    return daemon.get("/stats")["amqp"]


@pytest.mark.slow
def test_every_message_is_counted_once_and_acknowledged(tmp_path, store_url, rabbit, queue):
    """Lines of every format and JSON arrays, published before and while the daemon reads, each counted once."""
    sent = Sent()
    declare_stream(rabbit.url, queue)
    publish(rabbit.url, sent.bodies(1500), queue=queue)
    daemon = amqp_daemon(tmp_path, store_url, rabbit, queue)
    try:
        publish(rabbit.url, sent.bodies(1500), queue=queue)
        formats = [
            b"web.checkout:2|c\nweb.checkout:3|c|@0.5",
            b'pk=shop&metrics={"revenue":5}',
            b'[{"pk":"shop","metrics":{"revenue":1}},{"pk":"shop","dimensions":{"country":"US"}}]',
        ]
        publish(rabbit.url, formats, queue=queue)
        totals = counted(store_url, sent.expected)
        shop = wait_for(
            lambda: (found := stored(store_url, "shop", ("hits", "revenue")))["hits"] == 3 and found, 30, "shop"
        )
        checkout = stored(store_url, ["web", "checkout"], ("hits", "count"))
        stats = wait_for(
            lambda: (found := amqp_stats(daemon))["messages_acked"] == sent.messages + 3 and found, 30, "the acks"
        )
    finally:
        daemon.kill()
    print(f"\n{sent.messages + 3} messages: {stats['batches_committed']} batches; {stats}")
    assert sent.expected == totals
    assert [{"hits": 3.0, "revenue": 6.0}, {"hits": 2.0, "count": 8.0}] == [shop, checkout]
    assert (sent.messages + 3, sent.events + 5, {}, 0, True) == (
        stats["messages"],
        stats["lines_ok"],
        stats["lines_bad"],
        stats["batches_replayed"],
        stats["connected"],
    )


@pytest.mark.slow
def test_malformed_messages_are_counted_by_reason_and_acknowledged(tmp_path, store_url, rabbit, queue):
    """Bad lines, arrays and bodies are counted by reason and acknowledged; the good lines beside them count."""
    daemon = amqp_daemon(tmp_path, store_url, rabbit, queue, "--max-body-bytes", "2000")
    try:
        bodies = [
            b'{"pk":["amqp","p1"],"metrics":{"v":1}}\nnot a line at all\n{"pk":"x","metrics":{"v":"lots"}}',
            b"\xff\xfe not utf-8\n" + b'{"pk":["amqp","p2"],"metrics":{"v":2}}',
            b'[{"pk":["amqp","p3"],"metrics":{"v":4}}, 7, {"metrics":{"v":1}}]',
            b"[1, 2",
            b'{"pk":"amqp"}\n' * 200,  # longer than --max-body-bytes: nothing of it counts
            b"",
        ]
        publish(rabbit.url, bodies, queue=queue)
        stats = wait_for(lambda: (found := amqp_stats(daemon))["messages_acked"] == 6 and found, 30, "the acks")
        totals = counted(store_url, {"hits": 3.0, "v": 7.0})
        health = daemon.health()
    finally:
        daemon.kill()
    assert {"hits": 3.0, "v": 7.0} == totals
    assert (
        {"unrecognised": 1, "bad_metrics": 1, "not_utf8": 1, "bad_json": 1, "bad_pk": 1},
        {"bad_json": 1, "body_too_long": 1},
        3,
        6,
    ) == (stats["lines_bad"], stats["messages_bad"], stats["lines_ok"], stats["messages"])
    assert (200, {"status": "ok"}) == health


@pytest.mark.slow
def test_the_pending_bound_cuts_batches_and_drops_nothing(tmp_path, store_url, rabbit, queue):
    """With few pending keys allowed, batches are cut at the bound, at message boundaries, and nothing is dropped."""
    sent = Sent()
    declare_stream(rabbit.url, queue)
    publish(rabbit.url, sent.bodies(400, lines=10), queue=queue)
    daemon = amqp_daemon(tmp_path, store_url, rabbit, queue, "--max-pending-keys", "100")
    try:
        totals = counted(store_url, sent.expected)
        stats = wait_for(lambda: (found := amqp_stats(daemon))["messages_acked"] == 400 and found, 30, "the acks")
    finally:
        daemon.kill()
    assert sent.expected == totals
    assert (True, {}) == (stats["batches_committed"] >= 4000 // 110, stats["events_dropped"])


def test_broker_urls_are_plain_amqp():
    """--amqp takes amqp:// URLs, repeatedly; an amqps:// URL is refused at the start, its password hidden."""
    options = Options()
    options.parseOptions(["--amqp", "amqp://a:secret@one:5672/v", "--amqp", "amqp://a:secret@two:5672/v"])
    refused = Options()
    with pytest.raises(usage.UsageError) as raised:
        refused.parseOptions(["--amqp", "amqps://a:secret@one:5671/v"])
    assert ("amqp://a:secret@one:5672/v", "amqp://a:secret@two:5672/v") == options["config"].amqp_urls
    assert ("secret" not in str(raised.value), "amqps://a:***@one:5671/v" in str(raised.value)) == (True, True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "replayed", "repeated"),
    [
        ("cut", 0, 0),  # batch 2 cut, nothing of it recorded: read again as a new batch
        ("recorded", 1, 0),  # recorded, no write out: rebuilt and written
        ("partial", 1, PARTIAL_CALLS),  # some calls of its first part in: those are skipped by their tokens
        ("applied", 1, None),  # every call in, not committed: all skipped
        ("committed", 0, 0),  # committed, not acknowledged: nothing to do
    ],
)
def test_kill_9_at_each_step_of_a_batch_counts_every_message_once(
    tmp_path, store_url, rabbit, queue, monkeypatch, point, replayed, repeated
):
    """The daemon is killed (SIGKILL) at one step of its second batch; the next daemon completes it, exactly once."""
    sent = Sent()
    declare_stream(rabbit.url, queue)
    publish(rabbit.url, sent.bodies(3000), queue=queue)
    monkeypatch.setenv("HAILWHALE_TEST_AMQP_CRASH", f"{point}:2")
    first = amqp_daemon(tmp_path / "first", store_url, rabbit, queue)
    try:
        status = first.process.wait(60)
    finally:
        first.kill()
    monkeypatch.delenv("HAILWHALE_TEST_AMQP_CRASH")
    after_crash = stored(store_url)
    second = amqp_daemon(tmp_path / "second", store_url, rabbit, queue)
    try:
        totals = counted(store_url, sent.expected)
        stats = second.get("/stats")
    finally:
        second.kill()
    print(
        f"\nkill -9 at {point} of batch 2: {after_crash['hits']:.0f} of {sent.events} events in the store after the "
        f"crash; the next daemon replayed {stats['amqp']['batches_replayed']} batch(es), found "
        f"{stats['writes_repeated']} call(s) already applied, committed {stats['amqp']['batches_committed']}"
    )
    assert (-signal.SIGKILL, sent.expected) == (status, totals)
    assert replayed == stats["amqp"]["batches_replayed"]
    if repeated is None:
        assert stats["writes_repeated"] > PARTIAL_CALLS
    else:
        assert repeated == stats["writes_repeated"]


class Publisher:
    """Publishes batches of messages from a thread until stopped, each confirmed before the next."""

    def __init__(self, url: str, queue: str, sent: Sent, per_round: int = 50, pause: float = 0.02):
        self._url, self._queue, self._sent = url, queue, sent
        self._per_round, self._pause = per_round, pause
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._publish)

    def __enter__(self) -> "Publisher":
        self._running.set()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._running.clear()
        self._thread.join()

    def _publish(self) -> None:
        while self._running.is_set():
            publish(self._url, self._sent.bodies(self._per_round), queue=self._queue)
            time.sleep(self._pause)


@pytest.mark.slow
def test_kill_9_at_random_moments_under_load_counts_every_message_once(tmp_path, store_url, rabbit, queue):
    """While messages keep coming, the daemon is killed (SIGKILL) three times at a random moment of its reading."""
    sent = Sent()
    declare_stream(rabbit.url, queue)
    rng = random.Random(os.environ.get("HAILWHALE_SEED", "18"))
    moments = []
    daemon = None
    try:
        with Publisher(rabbit.url, queue, sent):
            for round_ in range(3):
                daemon = amqp_daemon(tmp_path / f"d{round_}", store_url, rabbit, queue)
                # the one before held the stream: this one takes it once that lease lapses
                wait_for(lambda: amqp_stats(daemon)["connected"], 30, "the daemon to read")  # noqa: B023
                moment = rng.uniform(0.2, 3.0)
                time.sleep(moment)
                moments.append((round(moment, 2), amqp_stats(daemon)["batches_committed"]))
                daemon.process.kill()
                daemon.process.wait(10)
        daemon = amqp_daemon(tmp_path / "last", store_url, rabbit, queue)
        totals = counted(store_url, sent.expected, timeout=90)
        stats = amqp_stats(daemon)
    finally:
        if daemon is not None:
            daemon.kill()
    print(f"\nkilled after (seconds, batches committed) {moments}; {sent.events} events sent; last daemon {stats}")
    assert sent.expected == totals


@pytest.mark.slow
def test_a_broker_restart_mid_run_loses_and_repeats_nothing(tmp_path, store_url, queue):
    """
    The broker is stopped and started again while the daemon reads: /health says the broker
    is lost; the daemon reconnects and goes on from its committed offset.
    """
    with RabbitNode() as node:
        sent = Sent()
        declare_stream(node.url, queue)
        publish(node.url, sent.bodies(4000), queue=queue)
        daemon = amqp_daemon(tmp_path, store_url, node, queue)
        try:
            reading = wait_for(lambda: (found := amqp_stats(daemon))["messages"] > 0 and found, 30, "reading")
            node.stop()
            lost = wait_for(lambda: (found := daemon.health())[0] == 503 and found, 30, "/health to see the loss")
            node.start()
            publish(node.url, sent.bodies(1000), queue=queue)
            totals = counted(store_url, sent.expected, timeout=90)
            stats = amqp_stats(daemon)
            health = daemon.health()
        finally:
            daemon.kill()
    print(f"\nbroker restarted after {reading['messages']} messages read; then {stats}")
    assert sent.expected == totals
    assert (True, True, (200, {"status": "ok"})) == (stats["reconnects"] >= 1, stats["connected"], health)
    assert "broker_unreachable" == lost[1]["reason"]


@pytest.mark.slow
def test_a_store_hung_past_the_consumer_timeout_loses_and_repeats_nothing(tmp_path, own_valkey, queue):
    """
    The store hangs (SIGSTOP) for longer than the broker's consumer timeout: the broker
    closes the channel of the messages not acknowledged, the daemon reads them again, and
    once the store is back every message is counted once.
    """
    store_url = testing.valkey_url(own_valkey)
    pid = redis.Redis.from_url(store_url).info("server")["process_id"]
    with RabbitNode(consumer_timeout_ms=1000) as node:
        sent = Sent()
        declare_stream(node.url, queue)
        daemon = amqp_daemon(tmp_path, store_url, node, queue, "--store-timeout", "1")
        try:
            publish(node.url, sent.bodies(200), queue=queue)
            before = counted(store_url, sent.expected)
            os.kill(pid, signal.SIGSTOP)
            try:
                publish(node.url, sent.bodies(300), queue=queue)
                # the broker checks consumer timeouts about once a minute
                timed_out = wait_for(
                    lambda: "timed out" in (amqp_stats(daemon)["last_error"] or "") and amqp_stats(daemon),
                    150,
                    "the broker's consumer timeout",
                )
                health = daemon.health()
            finally:
                os.kill(pid, signal.SIGCONT)
            totals = counted(store_url, sent.expected, timeout=90)
            stats = amqp_stats(daemon)
        finally:
            daemon.kill()
    print(f"\nstore hung; the broker timed the consumer out: {timed_out['last_error']}; afterwards {stats}")
    assert {"hits": 1000.0, "v": float(sum(range(1, 1001)))} == before
    assert sent.expected == totals
    assert (503, "store_unreachable") == (health[0], health[1]["reason"])
    assert stats["reconnects"] >= 1


@pytest.mark.slow
def test_two_daemons_on_one_stream_count_every_message_once(tmp_path, store_url, rabbit, queue):
    """Two daemons on one stream: one reads, the other stands by and takes over when the first is killed."""
    sent = Sent()
    declare_stream(rabbit.url, queue)
    first = amqp_daemon(tmp_path / "first", store_url, rabbit, queue)
    second = amqp_daemon(tmp_path / "second", store_url, rabbit, queue)
    try:
        publish(rabbit.url, sent.bodies(2000), queue=queue)
        wait_for(lambda: amqp_stats(first)["holding"] or amqp_stats(second)["holding"], 30, "a holder")
        holder, standby = (first, second) if amqp_stats(first)["holding"] else (second, first)
        states = (amqp_stats(holder)["state"], amqp_stats(standby)["state"])
        wait_for(lambda: amqp_stats(holder)["batches_committed"] > 0, 30, "a first batch")
        holder.process.kill()
        holder.process.wait(10)
        publish(rabbit.url, sent.bodies(1000), queue=queue)
        totals = counted(store_url, sent.expected, timeout=90)
        took_over = amqp_stats(standby)
    finally:
        first.kill()
        second.kill()
    print(f"\nthe standby took over: {took_over}")
    assert ("reading", "standby") == states
    assert sent.expected == totals
    assert (True, True) == (took_over["holding"], took_over["batches_committed"] > 0)
