"""
HTTP connections, for a daemon facing the public internet: caps on how many are open
(overall and per client address), two timeouts, and what happens when the process runs
out of open files anyway.

- **Caps.** A connection past ``--http-max-connections``, or past
  ``--http-max-connections-per-address`` from its client's address (an IPv4 address, an
  IPv6 /64; connections over a unix socket come from a local proxy and count only
  overall), is answered a 503 (``too_many_connections`` or ``too_many_from_address``) and
  closed at once, and counted in ``http_connections_refused``: it is accepted (so that it
  leaves the listen queue to the others) but holds no file for longer than that.
- **Timeouts.** A request must arrive whole (line, headers, body) within
  ``--http-request-timeout`` of its first byte: a slow sender cannot keep a connection by
  trickling bytes; it is answered 408 and closed.  A connection waiting for a request (its
  first, or the next one on a kept-alive connection) is closed after
  ``--http-idle-timeout``.  Both are counted in ``http_timeouts``.  One timer checks every
  open connection a few times per timeout (:meth:`Connections.sweep`), so a request costs
  no timer of its own.
- **Out of open files.** If accepting fails for want of files (or memory), the port stops
  accepting for a moment (:class:`AcceptGuard`): the new connections wait in the listen
  queue until some close; UDP keeps counting; it is counted in ``http_accept_failures``
  and logged at most once per ``LOG_EVERY_SECONDS``.

All of this is per process: several processes sharing a port each have their own caps,
timeouts and open-files limit.
"""

import errno
import ipaddress
from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from hailwhale.aggregate.selfstats import SelfStats

log = Logger()

DEFAULT_MAX_CONNECTIONS = 10_000
RESERVED_FILES = 100  # kept for the rest: store connections, thread pools, the embedded store's pipes, logs, sockets
LOG_EVERY_SECONDS = 10.0
ACCEPT_PAUSE_SECONDS = 0.25  # how long a port out of files waits before it tries to accept again
ABORT_AFTER_SECONDS = 10.0  # a timed-out connection that has not closed by then (its answer unread) is cut
SWEEPS_PER_TIMEOUT = 4

PAUSING_ERRORS = {
    errno.EMFILE: "out_of_files",
    errno.ENFILE: "system_out_of_files",
    errno.ENOBUFS: "out_of_memory",
    errno.ENOMEM: "out_of_memory",
}

TOO_MANY = "too_many_connections"
TOO_MANY_FROM_ADDRESS = "too_many_from_address"
REQUEST, IDLE = "request", "idle"


def _answer(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nAccess-Control-Allow-Origin: *\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
    )


REFUSALS = {
    TOO_MANY: _answer(
        b"503 Service Unavailable",
        b'{"error": "too many connections open; try again later", "reason": "too_many_connections"}',
    ),
    TOO_MANY_FROM_ADDRESS: _answer(
        b"503 Service Unavailable",
        b'{"error": "too many connections open from your address; close some", "reason": "too_many_from_address"}',
    ),
}
REQUEST_TIMEOUT_ANSWER = _answer(
    b"408 Request Timeout",
    b'{"error": "the request did not arrive whole in time", "reason": "request_timeout"}',
)


@attrs.frozen
class Caps:
    """How many HTTP connections may be open at once: in all, and from one client address."""

    total: int
    per_address: int


def caps(open_files: int, total: int | None, per_address: int | None) -> tuple[Caps, list[str]]:
    """
    The caps for ``open_files`` (the soft open-files limit) and the options (None: the
    defaults), and what to warn about.  By default the total leaves ``RESERVED_FILES``
    files for everything else, and one address may hold a quarter of it.
    """
    warnings = []
    room = open_files - RESERVED_FILES
    if total is None:
        total = max(min(DEFAULT_MAX_CONNECTIONS, room), 1)
        if room < 1:
            warnings.append(
                f"the open-files limit ({open_files}) leaves no room for HTTP connections; raise it (ulimit -n)"
            )
    elif total > room:
        warnings.append(
            f"--http-max-connections {total} is more than the open-files limit ({open_files}) leaves room for "
            f"({max(room, 0)}): the process may run out of files first (new connections then wait)"
        )
    if per_address is None:
        per_address = max(total // 4, 1)
    return Caps(total, per_address), warnings


def address_key(address: IAddress | None) -> str | None:
    """
    The client a connection counts against: its IPv4 address, the /64 of its IPv6 address
    (an IPv4-mapped one counts as the IPv4 address), or None (a unix socket).
    """
    if isinstance(address, IPv4Address):
        return address.host
    if isinstance(address, IPv6Address):
        try:
            parsed = ipaddress.IPv6Address(address.host)
        except ValueError:
            return address.host
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)))
    return None


class Throttle:
    """
    Log lines at a bounded rate: :meth:`note` counts an event and calls ``report`` with
    the number of events not reported yet when the last report is at least ``every``
    seconds old; :meth:`flush` reports the rest once they are due.
    """

    def __init__(self, report: Callable[[int], None], every: float = LOG_EVERY_SECONDS):
        self._report = report
        self._every = every
        self._last: float | None = None
        self._unreported = 0

    def note(self, now: float) -> None:
        self._unreported += 1
        self.flush(now)

    def flush(self, now: float) -> None:
        if self._unreported and (self._last is None or now - self._last >= self._every):
            self._last, count, self._unreported = now, self._unreported, 0
            self._report(count)


class Tracked(TypingProtocol):
    """What the book needs of a connection (:class:`hailwhale.web.server.HailwhaleChannel`)."""

    address: str | None
    waiting_since: float | None  # waiting for a request (its first, or the next one) since
    arriving_since: float | None  # a request started arriving at
    closing_since: float | None  # told to close at

    def time_out(self, answer: bytes | None) -> None: ...

    def abort(self) -> None: ...


class Connections:
    """The book of open HTTP connections: the caps, the timeouts (:meth:`sweep`), their counts."""

    def __init__(
        self,
        caps: Caps,
        request_timeout: float,
        idle_timeout: float,
        stats: SelfStats,
        clock: IReactorTime,
    ):
        self.caps = caps
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self._stats = stats
        self._clock = clock
        self._open: dict[Tracked, None] = {}
        self._per_address: dict[str, int] = {}
        self._refused: tuple[str, str | None] = (TOO_MANY, None)
        self._refusals = Throttle(self._report_refusals)
        self._throttles = [self._refusals]
        self._on_close: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self._open)

    @property
    def sweep_interval(self) -> float:
        """Seconds between sweeps: a few per timeout, at most one."""
        return min(1.0, min(self.request_timeout, self.idle_timeout) / SWEEPS_PER_TIMEOUT)

    def refusal(self, address: str | None) -> Protocol | None:
        """None if a new connection from ``address`` may open, else the protocol that refuses it (counted)."""
        if len(self._open) >= self.caps.total:
            reason = TOO_MANY
        elif address is not None and self._per_address.get(address, 0) >= self.caps.per_address:
            reason = TOO_MANY_FROM_ADDRESS
        else:
            return None
        self._stats.http_connections_refused[reason] += 1
        self._refused = (reason, address)
        self._refusals.note(self._clock.seconds())
        return Refusal(REFUSALS[reason])

    def _report_refusals(self, count: int) -> None:
        reason, address = self._refused
        log.warn(
            "refused {count} HTTP connection(s) since the last note (the last: {reason}, from {address}); "
            "{open} open, at most {total} in all and {per_address} per address",
            count=count,
            reason=reason,
            address=address or "a unix socket",
            open=len(self._open),
            total=self.caps.total,
            per_address=self.caps.per_address,
        )

    def throttled(self, throttle: Throttle) -> None:
        """Let :meth:`sweep` flush ``throttle`` too, so that its last events are logged."""
        self._throttles.append(throttle)

    def opened(self, connection: Tracked) -> None:
        self._open[connection] = None
        if connection.address is not None:
            self._per_address[connection.address] = self._per_address.get(connection.address, 0) + 1

    def closed(self, connection: Tracked) -> None:
        if connection not in self._open:
            return
        del self._open[connection]
        if connection.address is not None:
            left = self._per_address[connection.address] - 1
            if left:
                self._per_address[connection.address] = left
            else:
                del self._per_address[connection.address]
        for call in self._on_close:
            call()

    def on_close(self, call: Callable[[], None]) -> None:
        """Call ``call`` whenever a connection closes (a paused port may accept again)."""
        self._on_close.append(call)

    def addresses(self) -> int:
        return len(self._per_address)

    def sweep(self) -> None:
        """Close the connections whose request is late or that waited too long; cut those that did not close."""
        now = self._clock.seconds()
        for throttle in self._throttles:
            throttle.flush(now)
        request_due, idle_due = now - self.request_timeout, now - self.idle_timeout
        abort_due = now - ABORT_AFTER_SECONDS
        for connection in list(self._open):
            if connection.closing_since is not None:
                if connection.closing_since <= abort_due:
                    connection.abort()
            elif connection.arriving_since is not None and connection.arriving_since <= request_due:
                self._stats.http_timeouts[REQUEST] += 1
                connection.closing_since = now
                connection.time_out(REQUEST_TIMEOUT_ANSWER)
            elif connection.waiting_since is not None and connection.waiting_since <= idle_due:
                self._stats.http_timeouts[IDLE] += 1
                connection.closing_since = now
                connection.time_out(None)


class Refusal(Protocol):
    """Answers a canned 503 and closes the connection at once."""

    def __init__(self, answer: bytes):
        self._answer = answer

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(self._answer)
        transport.loseConnection()


class _Listening(TypingProtocol):
    socket: object
    connected: bool
    disconnecting: bool

    def startReading(self) -> None: ...

    def stopReading(self) -> None: ...


class AcceptGuard:
    """
    Keeps a listening port from spinning and logging when the process runs out of files.

    Twisted's accept loop, on ``EMFILE``, closes every connection waiting in the listen
    queue (with a spare file it keeps) and logs a line per connection, for as long as the
    process has no file to spare.  Here the port's socket is wrapped so that an accept that
    fails for want of files (or memory) is counted, logged at most once per
    ``LOG_EVERY_SECONDS``, and stops the port reading for ``ACCEPT_PAUSE_SECONDS`` (or
    until a connection closes); Twisted's loop is told there is nothing more to accept
    (``EAGAIN``).  The connections wait in the listen queue meanwhile, and are accepted
    once files are free again.
    """

    def __init__(
        self,
        port: _Listening,
        reactor: IReactorTime,
        stats: SelfStats,
        connections: Callable[[], int],
    ):
        self._port = port
        self._reactor = reactor
        self._stats = stats
        self._connections = connections
        self._resume: IDelayedCall | None = None
        self._error = ""
        self.throttle = Throttle(self._report)
        port.socket = _GuardedSocket(port.socket, self._failed)

    @classmethod
    def install(
        cls, port, reactor: IReactorTime, stats: SelfStats, connections: Callable[[], int]
    ) -> "AcceptGuard | None":
        """Guard ``port`` if it is a listening socket port (TCP, unix); None if it is not one."""
        if not all(hasattr(port, name) for name in ("socket", "startReading", "stopReading", "connected")):
            return None
        return cls(port, reactor, stats, connections)

    def _failed(self, error: OSError) -> None:
        reason = PAUSING_ERRORS[error.errno or 0]
        self._stats.http_accept_failures[reason] += 1
        self._error = errno.errorcode.get(error.errno or 0, str(error.errno))
        self.throttle.note(self._reactor.seconds())
        self._port.stopReading()
        if self._resume is None or not self._resume.active():
            self._resume = self._reactor.callLater(ACCEPT_PAUSE_SECONDS, self.resume)

    def _report(self, count: int) -> None:
        log.warn(
            "cannot accept HTTP connections ({error}; {count} time(s) since the last note): they wait in the "
            "listen queue until connections close; {open} HTTP connections open",
            error=self._error,
            count=count,
            open=self._connections(),
        )

    def resume(self) -> None:
        """Accept again (a connection closed, or the pause is over), unless the port has stopped."""
        if self._resume is not None and self._resume.active():
            self._resume.cancel()
        self._resume = None
        if self._port.connected and not self._port.disconnecting:
            self._port.startReading()

    def connection_closed(self) -> None:
        """A connection closed: a file is free, so a paused port tries again at once."""
        if self._resume is not None:
            self.resume()


class _GuardedSocket:
    """A listening socket whose ``accept`` reports a want of files (or memory) and then says EAGAIN."""

    def __init__(self, sock, failed: Callable[[OSError], None]):
        self._socket = sock
        self._failed = failed

    def accept(self):
        try:
            return self._socket.accept()
        except OSError as error:
            if (error.errno or 0) not in PAUSING_ERRORS:
                raise
            self._failed(error)
            raise BlockingIOError(errno.EAGAIN, "paused: out of files") from None

    def __getattr__(self, name: str):
        return getattr(self._socket, name)
