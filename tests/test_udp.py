import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs

from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.aggregate.cardinality import Cardinality
from hailwhale.aggregate.ingest import BAD_LINES_LOGGED_PER_MINUTE, Ingest
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.formats import lines
from hailwhale.model.fields import FieldError, Limits
from hailwhale.model.schema import parse_schema
from hailwhale.receivers import udp
from hailwhale.receivers.udp import EventReceiver, set_receive_buffer

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")


def receiver(now=1_795_830_000.0, max_keys=1000):
    clock = task.Clock()
    clock.advance(now)
    stats = SelfStats()
    reported = []
    accumulator = Accumulator(60, max_keys)
    ingest = Ingest(
        accumulator,
        stats,
        Cardinality(1000, 100_000),
        Limits(max_past_seconds=SCHEMA.longest_retention()),
        clock.seconds,
        lambda line, why: reported.append(line),
    )
    return EventReceiver(ingest), accumulator, stats, reported, clock


def test_every_line_of_a_datagram_counts():
    """Lines are events on their own: a bad one is counted by reason and the rest still count."""
    protocol, accumulator, stats, _, _ = receiver()

    protocol.datagramReceived(
        b'{"pk":"a"}\n\npk=b\r\ngorets:1|q\n{"pk":"c","metrics":{"x":"y"}}\n{"pk":"a"}', ("127.0.0.1", 5000)
    )

    assert (1, 3, {"bad_statsd_type": 1, "bad_metrics": 1}, 3) == (
        stats.datagrams,
        stats.lines_ok,
        dict(stats.lines_bad),
        accumulator.pending_events,
    )


def test_too_old_and_overflow_are_counted():
    """An event older than the time window is a bad line; one beyond the pending-key bound is dropped; both counted."""
    protocol, _accumulator, stats, _, _ = receiver(max_keys=1)

    protocol.datagramReceived(b'{"pk":"a","at":1000}\n{"pk":"a"}\n{"pk":"b"}', ("127.0.0.1", 5000))

    assert ({"too_many_pending_keys": 1}, {"too_old": 1, "too_many_pending_keys": 1}, 1) == (
        dict(stats.events_dropped),
        dict(stats.lines_bad),
        stats.lines_ok,
    )


def test_bad_line_logging_is_sampled_and_clipped():
    """Bad lines are logged at most a few per minute, each cut short."""
    protocol, _, stats, reported, clock = receiver()

    for _ in range(50):
        protocol.datagramReceived(b"x" * 1000, ("127.0.0.1", 5000))
    clock.advance(61)
    protocol.datagramReceived(b"y", ("127.0.0.1", 5000))

    assert (BAD_LINES_LOGGED_PER_MINUTE + 1, 400, 51) == (
        len(reported),
        max(map(len, reported)),
        stats.lines_bad["unrecognised"],
    )


def test_receive_buffer_is_raised():
    """The socket gets a receive buffer far above the 208 KiB default."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        obtained = set_receive_buffer(sock, 8 * 1024 * 1024)

    assert obtained >= 8 * 1024 * 1024


def test_kernel_drops_are_read():
    """Datagrams the kernel dropped because the receive buffer was full are counted, not silent."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiving,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sending,
    ):
        receiving.bind(("127.0.0.1", 0))
        receiving.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        before = udp.kernel_drops(receiving)
        for _ in range(100):
            sending.sendto(b"x" * 1000, receiving.getsockname())

        assert (0, True) == (before, udp.kernel_drops(receiving) > 50)


@pytest.mark.parametrize("batching", [False, True])
def test_listener_asks_for_large_datagrams(batching):
    """The UDP port reads datagrams up to 64 KiB (Twisted's default would cut them at 8 KiB)."""
    reactor = MemoryReactorClock()

    listening = udp.listen(reactor, 0, "127.0.0.1", udp.EventReceiver(None), 1 << 20, batching=batching)

    assert (65535, True) == (listening.maxPacketSize, udp.receive_buffer(listening) >= 1 << 20)
    listening.stopListening()
    reactor.advance(0)


def test_workers_share_a_port_that_a_plain_socket_cannot_take():
    """Listeners made with reuse_port share one port (the workers); a socket without SO_REUSEPORT is refused it."""
    reactor = MemoryReactorClock()
    first = udp.listen(reactor, 0, "127.0.0.1", udp.EventReceiver(None), 1 << 16, batching=True, reuse_port=True)
    port = first.getHost().port
    second = udp.listen(reactor, port, "127.0.0.1", udp.EventReceiver(None), 1 << 16, batching=True, reuse_port=True)
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))

        assert port == second.getHost().port
    finally:
        plain.close()
        first.stopListening()
        second.stopListening()
        reactor.advance(0)


@given(
    st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.sampled_from(
                [
                    b"a.b:1|c|#x:y",
                    b"g:+3|g",
                    b"t:5:7|ms|@0.5",
                    b"s:v|s",
                    b'{"pk":"j","metrics":{"m":2}}',
                    b"pk=q&metrics=%7B%22x%22%3A1%7D",
                    b"a:1|c|@9",
                    b"a:x|g",
                ]
            ),
        ),
        max_size=20,
    )
)
def test_every_line_is_counted_once_whole_or_rejected(parts):
    """Any datagram: each non-empty line is either one whole event in the accumulator or one rejection."""
    protocol, accumulator, stats, _, _ = receiver()
    datagram = b"\n".join(parts)

    protocol.datagramReceived(datagram, ("127.0.0.1", 5000))

    lines = [line for line in datagram.split(b"\n") if line.strip()]
    assert (len(lines), stats.lines_ok) == (stats.lines_ok + sum(stats.lines_bad.values()), accumulator.pending_events)


def test_repeated_statsd_lines_count_as_the_first():
    """A statsd line seen before counts exactly as it did the first time, in a later bucket too."""
    protocol, accumulator, stats, _, clock = receiver()

    protocol.datagramReceived(b"a.b:2|c|@0.5|#x:y\na.b:2|c|@0.5|#x:y\nt:4|ms", ("127.0.0.1", 5000))
    clock.advance(60)
    protocol.datagramReceived(b"a.b:2|c|@0.5|#x:y\nt:4|ms", ("127.0.0.1", 5000))

    bucket = int(clock.seconds() // 60) * 60
    assert (
        {
            (("a", "b"), frozenset({("x", "y")}), bucket - 60): {"hits": 2, "count": 8.0},
            (("t",), frozenset(), bucket - 60): {"hits": 1, "ms.sum": 4.0, "ms.count": 1.0},
            (("a", "b"), frozenset({("x", "y")}), bucket): {"hits": 1, "count": 4.0},
            (("t",), frozenset(), bucket): {"hits": 1, "ms.sum": 4.0, "ms.count": 1.0},
        },
        5,
    ) == (accumulator.swap().entries, stats.lines_ok)


def test_folded_statsd_lines_are_folded_every_time():
    """
    A statsd line whose tag is folded by the cardinality guard is folded, and counted as folded, every time it
    comes.
    """
    clock = task.Clock()
    stats, accumulator, cardinality = SelfStats(), Accumulator(60, 1000), Cardinality(1, 100_000)
    ingest = Ingest(accumulator, stats, cardinality, Limits(), clock.seconds, lambda line, why: None)

    ingest.datagram(b"a:1|c|#x:1\na:1|c|#x:2\na:1|c|#x:2")

    assert (
        {
            (("a",), frozenset({("x", "1")}), 0): {"hits": 1, "count": 1.0},
            (("a",), frozenset({("x", "_other")}), 0): {"hits": 2, "count": 2.0},
        },
        2,
    ) == (accumulator.swap().entries, cardinality.folded["max_children"])


def test_a_stopping_ingest_takes_no_repeated_line():
    """Once the daemon is stopping, a statsd line seen before is turned away like any other."""
    protocol, accumulator, stats, _, _ = receiver()
    protocol.datagramReceived(b"a:1|c", ("127.0.0.1", 5000))
    protocol._ingest.closed = True

    protocol.datagramReceived(b"a:1|c", ("127.0.0.1", 5000))

    assert (1, 1, {"stopping": 1}) == (accumulator.pending_events, stats.lines_ok, dict(stats.lines_bad))


def test_pending_key_bound_holds_for_repeated_lines():
    """A repeated statsd line that would need a new key past the bound is dropped and counted."""
    protocol, accumulator, stats, _, clock = receiver(max_keys=1)
    protocol.datagramReceived(b"a:1|c", ("127.0.0.1", 5000))
    clock.advance(60)

    protocol.datagramReceived(b"a:1|c", ("127.0.0.1", 5000))

    assert (1, {"too_many_pending_keys": 1}) == (accumulator.pending_keys, dict(stats.events_dropped))


POOL = [
    b"a.b:1|c",
    b"a.b:3|c|#x:y",
    b"a.b:1|c|@0.5",
    b"a.b:0.5|c",
    b"t:5|ms",
    b"t:5:7|ms|@0.5",
    b"g:+3|g",
    b"g:2|g",
    b"s:v|s",
    b'{"pk":"j","metrics":{"m":2}}',
    b"a:x|g",
    b"",
    b"a.b:1|c|T1795830000",
    b"z:1|c|#k:1",
    b"z:1|c|#k:2",
    b"c.d:7|c",
    b"c.d:-3|c",
    b"a.b:999999|c",
    b"a.b:1000000|c",
    b".x:1|c",
    b"a.b.c.d.e.f.g.h.i:1|c",
]


@given(
    st.lists(
        st.tuples(st.lists(st.sampled_from(POOL), min_size=1, max_size=6), st.sampled_from([0, 1, 59])), max_size=12
    )
)
def test_repeated_lines_count_as_lines_one_by_one(datagrams):
    """
    Datagrams of repeated lines, however they come and whenever the bucket turns, count as each line parsed
    and taken in turn.
    """
    protocol, accumulator, _stats, _, clock = receiver()
    reference_clock = task.Clock()
    reference_clock.advance(clock.seconds())
    reference = Ingest(
        Accumulator(60, 1000),
        SelfStats(),
        Cardinality(1000, 100_000),
        Limits(max_past_seconds=SCHEMA.longest_retention()),
        reference_clock.seconds,
        lambda *_: None,
    )

    for parts, wait in datagrams:
        protocol.datagramReceived(b"\n".join(parts), ("127.0.0.1", 5000))
        for line in parts:
            if line.strip():
                try:
                    reference.accept_all([lines.parse_line(line, reference_clock.seconds(), reference.limits)])
                except FieldError:
                    pass
        clock.advance(wait)
        reference_clock.advance(wait)

    expected = reference.accumulator.swap()
    actual = accumulator.swap()
    assert (expected and (expected.entries, expected.levels, expected.events)) == (
        actual and (actual.entries, actual.levels, actual.events)
    )


def test_batching_port_hands_over_what_waits():
    """The events port reads every datagram waiting, up to its bound, and hands them over together."""
    protocol, _accumulator, stats, _, _ = receiver()
    port = udp.BatchingPort(0, protocol, "127.0.0.1", udp.MAX_DATAGRAM, MemoryReactorClock())
    port.startListening()
    port.most_datagrams = 3
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sending:
        for payload in (b"a:1|c", b"a:1|c\nb:2|c", b"c:1|c", b"d:1|c"):
            sending.sendto(payload, ("127.0.0.1", port.getHost().port))

        port.doRead()
        first = (stats.datagrams, stats.lines_ok)
        port.doRead()
        port.doRead()
    port.stopListening()

    assert ((3, 4), (4, 5)) == (first, (stats.datagrams, stats.lines_ok))


def test_the_batching_port_survives_errors_but_not_exits():
    """An error while counting is logged and reading goes on; SystemExit and KeyboardInterrupt are not swallowed."""
    raised = [ValueError("a bug"), SystemExit(3)]

    class Failing(DatagramProtocol):
        def datagramsReceived(self, batch):
            raise raised.pop(0)

    port = udp.BatchingPort(0, Failing(), "127.0.0.1", udp.MAX_DATAGRAM, MemoryReactorClock())
    port.startListening()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sending, capturedLogs() as logged:
        sending.sendto(b"a:1|c", ("127.0.0.1", port.getHost().port))
        port.doRead()
        sending.sendto(b"a:1|c", ("127.0.0.1", port.getHost().port))
        with pytest.raises(SystemExit):
            port.doRead()
    port.stopListening()

    assert (1, []) == (len(logged), raised)


def test_whole_counters_are_counted_name_by_name():
    """
    A run of plain whole-number counters adds up per name, as line by line would; a bad name sends the run the
    long way.
    """
    protocol, accumulator, stats, _, clock = receiver()

    protocol.datagramReceived(b"a.b:2|c\nc:5|c\na.b:-1|c", ("127.0.0.1", 5000))
    protocol.datagramReceived(b"a.b:2|c\n.bad:1|c", ("127.0.0.1", 5000))

    bucket = int(clock.seconds() // 60) * 60
    assert (
        {
            (("a", "b"), frozenset(), bucket): {"hits": 3, "count": 3.0},
            (("c",), frozenset(), bucket): {"hits": 1, "count": 5.0},
        },
        4,
        {"bad_pk": 1},
    ) == (accumulator.swap().entries, stats.lines_ok, dict(stats.lines_bad))
