"""
HTTP connections: the caps (overall, per client address), the request and idle timeouts,
and accepting when out of files; on the real Site and channels, over in-memory transports
and a fake clock.
"""

import errno
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.web import connections
from hailwhale.web.connections import (
    ABORT_AFTER_SECONDS,
    ACCEPT_PAUSE_SECONDS,
    LOG_EVERY_SECONDS,
    RESERVED_FILES,
    AcceptGuard,
    Caps,
    Connections,
    Throttle,
    address_key,
)
from hailwhale.web.server import HailwhaleSite

REQUEST_TIMEOUT, IDLE_TIMEOUT = 5.0, 20.0


class Held(Resource):
    """Answers nothing until told: a request in the making, as a slow query is."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.waiting = []

    def render(self, request):
        if request.path == b"/hold":
            self.waiting.append(request)
            return NOT_DONE_YET
        request.setHeader(b"Content-Type", b"text/plain")
        return b"OK"


class Server:
    def __init__(self, total=10, per_address=3):
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.stats = SelfStats()
        self.book = Connections(Caps(total, per_address), REQUEST_TIMEOUT, IDLE_TIMEOUT, self.stats, self.clock)
        self.resource = Held()
        self.site = HailwhaleSite(self.resource, self.book, lambda path: None, self.clock)

    def connect(self, address=None):
        """(protocol, transport) of a new connection from ``address``."""
        address = address or IPv4Address("TCP", "192.0.2.1", 40000)
        protocol = self.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, sweeping as the daemon does."""
        step = self.book.sweep_interval
        while seconds > 1e-9:
            self.clock.advance(min(step, seconds))
            seconds -= min(step, seconds)
            self.book.sweep()


def answer(transport: StringTransport) -> tuple[int, dict]:
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


@pytest.mark.parametrize(
    "open_files, total, per_address, expected, warned",
    [
        (1024, None, None, Caps(1024 - RESERVED_FILES, (1024 - RESERVED_FILES) // 4), False),
        (1 << 20, None, None, Caps(10_000, 2_500), False),
        (20_000, 500, None, Caps(500, 125), False),
        (20_000, 500, 400, Caps(500, 400), False),
        (1024, 5000, 5000, Caps(5000, 5000), True),
        (64, None, None, Caps(1, 1), True),
    ],
)
def test_caps(open_files, total, per_address, expected, warned):
    """The defaults leave room for the rest of the process and give one address a quarter; options win, with a
    warning past the open-files limit."""
    found, warnings = connections.caps(open_files, total, per_address)

    assert (expected, warned) == (found, bool(warnings))


@given(st.integers(RESERVED_FILES + 1, 1 << 24))
def test_default_caps_fit_the_open_files_limit(open_files):
    """By default the HTTP connections never take the files kept for the store, the threads and the logs."""
    found, warnings = connections.caps(open_files, None, None)

    assert (True, True, []) == (
        found.total <= open_files - RESERVED_FILES,
        1 <= found.per_address <= found.total,
        warnings,
    )


@pytest.mark.parametrize(
    "address, expected",
    [
        (IPv4Address("TCP", "203.0.113.7", 5000), "203.0.113.7"),
        (IPv6Address("TCP", "2001:db8:1:2:aaaa::1", 5000), "2001:db8:1:2::/64"),
        (IPv6Address("TCP", "2001:db8:1:2:ffff:ffff:ffff:ffff", 5000), "2001:db8:1:2::/64"),
        (IPv6Address("TCP", "2001:db8:1:3::1", 5000), "2001:db8:1:3::/64"),
        (IPv6Address("TCP", "::ffff:203.0.113.7", 5000), "203.0.113.7"),
        (UNIXAddress(None), None),
    ],
)
def test_the_client_a_connection_counts_against(address, expected):
    """An IPv4 address, an IPv6 /64 (so one host cannot take a new address per connection), none over a unix
    socket."""
    assert expected == address_key(address)


def test_throttle_reports_at_most_once_per_period():
    """The first event is reported at once; the next ones together, once the period is over (by note or flush)."""
    reported = []
    throttle = Throttle(reported.append, every=10)
    for moment in (0, 1, 2, 3):
        throttle.note(moment)
    throttle.flush(9)
    after_nine = list(reported)
    throttle.flush(10)
    throttle.note(11)
    throttle.note(21)

    assert ([1], [1, 3], [1, 3, 2]) == (after_nine, reported[:2], reported)


def test_one_address_cannot_take_every_connection():
    """Past the per-address cap a connection is answered 503 and closed at once; other addresses still get in."""
    server = Server(total=10, per_address=3)
    held = [server.connect() for _ in range(3)]
    _, refused = server.connect()
    _, other = server.connect(IPv4Address("TCP", "192.0.2.2", 40000))

    assert (
        (503, "too_many_from_address"),
        True,
        False,
        {"too_many_from_address": 1},
        4,
    ) == (
        (answer(refused)[0], answer(refused)[1]["reason"]),
        refused.disconnecting,
        other.disconnecting or any(transport.disconnecting for _, transport in held),
        dict(server.stats.http_connections_refused),
        len(server.book),
    )


def test_the_overall_cap():
    """Past the overall cap every new connection is refused, whatever its address, until one closes."""
    server = Server(total=3, per_address=3)
    held = [server.connect(IPv4Address("TCP", f"192.0.2.{i}", 40000)) for i in range(3)]
    _, refused = server.connect(IPv4Address("TCP", "192.0.2.9", 40000))
    held[0][0].connectionLost(None)
    _, admitted = server.connect(IPv4Address("TCP", "192.0.2.9", 40000))

    assert ("too_many_connections", False, {"too_many_connections": 1}) == (
        answer(refused)[1]["reason"],
        admitted.disconnecting,
        dict(server.stats.http_connections_refused),
    )


def test_unix_socket_connections_count_only_overall():
    """Over a unix socket every connection comes from the local proxy: no per-address cap."""
    server = Server(total=5, per_address=1)
    transports = [server.connect(UNIXAddress(None))[1] for _ in range(5)]
    _, refused = server.connect(UNIXAddress(None))

    assert ([False] * 5, "too_many_connections") == (
        [transport.disconnecting for transport in transports],
        answer(refused)[1]["reason"],
    )


def test_refusals_are_logged_at_a_bounded_rate():
    """A flood of refused connections makes one log line per period, with the count."""
    server = Server(total=10, per_address=1)
    server.connect()
    with capturedLogs() as logged:
        for _ in range(100):
            server.connect()
        server.advance(LOG_EVERY_SECONDS)
    counts = [event["count"] for event in logged if "refused" in event.get("log_format", "")]

    assert [1, 99] == counts


def test_a_request_must_arrive_whole_in_time():
    """Half a request line, then nothing: answered 408 and closed at the request timeout, counted."""
    server = Server()
    protocol, transport = server.connect()
    protocol.dataReceived(b"GET /count.gif?pk=a")
    server.advance(REQUEST_TIMEOUT - 1)
    before = transport.disconnecting
    server.advance(1 + server.book.sweep_interval)

    assert (False, True, (408, "request_timeout"), {"request": 1}) == (
        before,
        transport.disconnecting,
        (answer(transport)[0], answer(transport)[1]["reason"]),
        dict(server.stats.http_timeouts),
    )


@pytest.mark.parametrize(
    "first, trickle",
    [
        (b"GET /count.gif?pk=a HTTP/1.1\r\nHost: x\r\n", b"X-A: b\r\n"),
        (b"POST /count HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{", b" "),
    ],
)
def test_trickling_bytes_does_not_extend_the_request_timeout(first, trickle):
    """A header or a body sent a byte at a time is closed at the request timeout from its first byte."""
    server = Server()
    protocol, transport = server.connect()
    protocol.dataReceived(first)
    for _ in range(int(REQUEST_TIMEOUT * 2)):
        server.advance(0.5)
        if transport.disconnecting:
            break
        protocol.dataReceived(trickle)

    assert (True, 408) == (transport.disconnecting, answer(transport)[0])


def test_idle_connections_close_after_the_idle_timeout():
    """A connection that sends nothing, and a kept-alive one after its answer, close after the idle timeout, with
    no answer."""
    server = Server()
    _, silent = server.connect()
    protocol, kept = server.connect(IPv4Address("TCP", "192.0.2.2", 40000))
    server.advance(IDLE_TIMEOUT / 2)
    protocol.dataReceived(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    answered = kept.value()
    server.advance(IDLE_TIMEOUT / 2 + server.book.sweep_interval)
    silent_closed, kept_closed = silent.disconnecting, kept.disconnecting
    server.advance(IDLE_TIMEOUT / 2)

    assert (b"HTTP/1.1 200 OK", True, False, True, b"", {"idle": 2}) == (
        answered.split(b"\r\n")[0],
        silent_closed,
        kept_closed,
        kept.disconnecting,
        silent.value(),
        dict(server.stats.http_timeouts),
    )


def test_a_request_in_the_making_is_not_timed_out():
    """A request that arrived whole and waits for its answer (a slow query) is not closed by either timeout."""
    server = Server()
    protocol, transport = server.connect()
    protocol.dataReceived(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    server.advance(IDLE_TIMEOUT * 2)
    open_while_held = not transport.disconnecting
    (request,) = server.resource.waiting
    request.write(b"late")
    request.finish()
    server.advance(IDLE_TIMEOUT + server.book.sweep_interval)

    assert (True, True, {"idle": 1}) == (open_while_held, transport.disconnecting, dict(server.stats.http_timeouts))


def test_a_timed_out_connection_that_does_not_close_is_cut():
    """A connection told to close that is still open later (its answer unread) is aborted."""
    server = Server()
    _, transport = server.connect()
    server.advance(IDLE_TIMEOUT + server.book.sweep_interval)
    told = (transport.disconnecting, transport.disconnected)
    server.advance(ABORT_AFTER_SECONDS + server.book.sweep_interval)

    assert ((True, False), True) == (told, transport.disconnected)


def test_closed_connections_leave_the_book():
    """Open connections and addresses are counted while open only."""
    server = Server(total=10, per_address=5)
    protocols = [server.connect()[0] for _ in range(3)] + [server.connect(UNIXAddress(None))[0]]
    counted = (len(server.book), server.book.addresses())
    for protocol in protocols:
        protocol.connectionLost(None)

    assert ((4, 1), (0, 0)) == (counted, (len(server.book), server.book.addresses()))


class ListeningPort:
    """The part of a Twisted listening port the guard uses; its socket fails with ``errors`` first."""

    def __init__(self, errors):
        self.socket = Socket(errors)
        self.connected, self.disconnecting, self.reading = True, False, True

    def startReading(self):
        self.reading = True

    def stopReading(self):
        self.reading = False


class Socket:
    def __init__(self, errors):
        self.errors = list(errors)

    def accept(self):
        if self.errors:
            raise OSError(self.errors.pop(0), "failed")
        raise BlockingIOError(errno.EAGAIN, "nothing")

    def fileno(self):
        return 99


def test_out_of_files_pauses_accepting():
    """EMFILE: the port stops reading for a moment (Twisted's loop sees EAGAIN), counted; then it reads again."""
    clock, stats = task.Clock(), SelfStats()
    port = ListeningPort([errno.EMFILE])
    guard = AcceptGuard.install(port, clock, stats, lambda: 7)
    with pytest.raises(BlockingIOError):
        port.socket.accept()
    paused = not port.reading
    clock.advance(ACCEPT_PAUSE_SECONDS)

    assert (True, True, {"out_of_files": 1}, 99) == (
        guard is not None and paused,
        port.reading,
        dict(stats.http_accept_failures),
        port.socket.fileno(),
    )


def test_a_closed_connection_resumes_a_paused_port_at_once():
    """When a connection closes, a file is free: a port paused for want of files reads again at once."""
    clock, stats = task.Clock(), SelfStats()
    port = ListeningPort([errno.ENFILE])
    guard = AcceptGuard.install(port, clock, stats, lambda: 7)
    with pytest.raises(BlockingIOError):
        port.socket.accept()
    guard.connection_closed()

    assert (True, {"system_out_of_files": 1}, []) == (
        port.reading,
        dict(stats.http_accept_failures),
        clock.getDelayedCalls(),
    )


def test_running_out_of_files_is_logged_at_a_bounded_rate():
    """Out of files for a minute: a log line every LOG_EVERY_SECONDS at most, not one per attempt."""
    clock, stats = task.Clock(), SelfStats()
    port = ListeningPort([errno.EMFILE] * 10_000)
    AcceptGuard.install(port, clock, stats, lambda: 7)
    with capturedLogs() as logged:
        for _ in range(int(60 / ACCEPT_PAUSE_SECONDS)):
            with pytest.raises(BlockingIOError):
                port.socket.accept()
            clock.advance(ACCEPT_PAUSE_SECONDS)
    lines = [event for event in logged if "cannot accept" in event.get("log_format", "")]

    assert (True, int(60 / ACCEPT_PAUSE_SECONDS)) == (
        len(lines) <= 60 / LOG_EVERY_SECONDS + 1,
        stats.http_accept_failures["out_of_files"],
    )


def test_other_accept_errors_go_to_twisted():
    """An error that is not a want of files (ECONNABORTED) is Twisted's to handle, as before."""
    clock, stats = task.Clock(), SelfStats()
    port = ListeningPort([errno.ECONNABORTED])
    AcceptGuard.install(port, clock, stats, lambda: 7)
    with pytest.raises(ConnectionAbortedError):
        port.socket.accept()

    assert (True, {}) == (port.reading, dict(stats.http_accept_failures))
