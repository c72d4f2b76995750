"""
The HTTP server under the API: the Site, its connections, and a quick way for the
counting traffic.

Each connection (:class:`HailwhaleChannel`, Twisted's ``HTTPChannel``) is in the book of
:class:`hailwhale.web.connections.Connections` while open, which caps them and times them
out; the channel only notes when it started waiting for a request, and when a request
started arriving.

Twisted's way through a request (parse it into a ``Request`` with ``Headers``, find the
resource, render, write the answer into the transport's buffer, sent on the reactor's
next turn) costs most of a pixel's CPU time.  A request for one of the paths the site
answers quickly (``fast``: ``GET /count.gif`` and ``GET /count``, see
:class:`hailwhale.web.app.CountingFront`) that arrives whole in one read, with no body and
nothing unusual about it, is read here instead: the request line and headers, a
:class:`LeanRequest` (the part of ``IRequest`` the counting handlers use) given to the
same handler, and the answer written straight to the socket when nothing waits in the
transport's buffer.  Its answer is the one Twisted's way gives, byte for byte (the Date
aside; ``tests/test_server.py`` checks); anything else takes Twisted's way, unchanged.
"""

import functools
import re
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp, unix
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, HTTPChannel, datetimeToString, parse_qs
from twisted.web.http_headers import Headers
from twisted.web.resource import IResource
from twisted.web.server import Site
from twisted.web.server import version as SERVER

from hailwhale.web import connections as connections_module
from hailwhale.web.connections import Connections

# "GET <path>[?<query>] HTTP/1.1" and its line end: the path and query of visible ASCII, as Twisted takes them
REQUEST_LINE = re.compile(rb"GET (/[!->@-~]*)(?:\?([!-~]*))? HTTP/1\.1\r\n")
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
LARGEST_QUICK_REQUEST = 8192  # bytes; a longer one takes Twisted's way (and its limits)
NOT_QUICK_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"expect"})

QuickAnswer = Callable[[Any], bytes]  # given a LeanRequest, which the handlers take as their IRequest


class LeanRequest:
    """
    The part of ``IRequest`` the counting handlers use, for a GET read by
    :class:`HailwhaleChannel`: ``method``, ``path``, ``args``, ``content`` (None),
    ``getHeader``, ``setHeader``, ``setResponseCode``; and the answer as Twisted writes it.
    """

    __slots__ = ("_answer_headers", "_headers", "args", "code", "path")
    method = b"GET"
    content = None

    def __init__(self, path: bytes, args: dict[bytes, list[bytes]], headers: dict[bytes, bytes]):
        self.path = path
        self.args = args
        self.code = 200
        self._headers = headers
        self._answer_headers: dict[bytes, bytes] = {}

    def getHeader(self, name: bytes | str) -> bytes | None:
        """The request's (last) value of the header ``name``, as Twisted's ``Request.getHeader``."""
        return self._headers.get(name.lower() if isinstance(name, bytes) else name.lower().encode("latin-1"))

    def setHeader(self, name: bytes | str, value: bytes | str) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        self._answer_headers[_canonical(name)] = b" ".join(value.splitlines())

    def setResponseCode(self, code: int) -> None:
        self.code = code

    def answer(self, body: bytes, date: bytes) -> bytes:
        """The bytes of the answer, as Twisted's ``Request.render`` and ``HTTPChannel.writeHeaders`` write it."""
        headers = self._answer_headers
        parts = [
            b"HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n"
            % (self.code, RESPONSES.get(self.code, b"Unknown Status"), SERVER, date)
        ]
        for name, value in headers.items():
            parts.append(b"%s: %s\r\n" % (name, value))
        parts.append(b"Content-Length: %d\r\n" % len(body))
        if b"Content-Type" not in headers and self.code not in (204, 304) and body:
            parts.append(b"Content-Type: text/html\r\n")  # Twisted's default
        parts.append(b"\r\n")
        parts.append(body)
        return b"".join(parts)


@functools.lru_cache(maxsize=256)
def _canonical(name: bytes | str) -> bytes:
    """A header name as Twisted writes it (Content-Type, WWW-Authenticate); the handlers' few names, remembered."""
    headers = Headers()
    headers.setRawHeaders(name, [b""])
    ((found, _),) = headers.getAllRawHeaders()
    return found


class DateHeader:
    """The Date header's value at a moment, made once a second."""

    def __init__(self):
        self._second = -1
        self._value = b""

    def at(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            self._second, self._value = second, datetimeToString(second)
        return self._value


_DIRECT = (tcp.Server, unix.Server)


class HailwhaleChannel(HTTPChannel):
    """An HTTP connection in the book of :class:`Connections`, with the quick way for counting requests."""

    site: "HailwhaleSite"
    address: str | None = None
    waiting_since: float | None = None
    arriving_since: float | None = None
    closing_since: float | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.waiting_since = self.site.clock.seconds()
        self.site.connections.opened(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.site.connections.closed(self)
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        if self.arriving_since is None and not self._handlingRequest:
            if self._quick(data):
                return
            self.arriving_since = self.site.clock.seconds()
            self.waiting_since = None
        super().dataReceived(data)

    def allContentReceived(self) -> None:
        self.arriving_since = None
        super().allContentReceived()

    def requestDone(self, request) -> None:
        now = self.site.clock.seconds()
        self.waiting_since = now
        super().requestDone(request)
        if self._buffer and self.arriving_since is None and not self._handlingRequest:
            self.arriving_since, self.waiting_since = now, None  # part of the next request came with this one

    def time_out(self, answer: bytes | None) -> None:
        """Close for a timeout, after ``answer`` if any (a 408 for a request that did not arrive whole)."""
        self.waiting_since = self.arriving_since = None
        transport: Any = self.transport
        if answer is not None:
            transport.write(answer)
        transport.loseConnection()

    def abort(self) -> None:
        transport: Any = self.transport
        transport.abortConnection()

    def _quick(self, data: bytes) -> bool:
        """Answer ``data`` if it is a whole counting GET that can go the quick way; False if it takes Twisted's."""
        if (
            self.requests
            or self._buffer
            or self._busyReceiving
            or not self.line_mode
            or not self.persistent
            or self._waitingForTransport
            or len(data) > LARGEST_QUICK_REQUEST
            or not data.endswith(b"\r\n\r\n")
        ):
            return False
        line = REQUEST_LINE.match(data)
        if line is None:
            return False
        answer = self.site.quick(line.group(1))
        if answer is None:
            return False
        headers = {}
        end = len(data) - 4
        if line.end() < end:  # else no headers
            for header in data[line.end() : end].split(b"\r\n"):
                name, colon, value = header.partition(b":")
                if not colon or TOKEN.fullmatch(name) is None:
                    return False
                name, value = name.lower(), value.strip(b" \t")
                if name in headers or b"\r" in value or b"\n" in value or b"\x00" in value:
                    return False  # a header given twice: Twisted's way, which reads some by their first value
                headers[name] = value
            if not NOT_QUICK_HEADERS.isdisjoint(headers) or b"close" in headers.get(b"connection", b"").lower():
                return False
        elif line.end() != len(data) - 2:
            return False
        query = line.group(2)
        request = LeanRequest(line.group(1), parse_qs(query, 1) if query else {}, headers)
        body = answer(request)
        now = self.site.clock.seconds()
        self._send(request.answer(body, self.site.date.at(now)))
        self.waiting_since = now
        return True

    def _send(self, data: bytes) -> None:
        """Write ``data``: straight to the socket when nothing waits in the transport's buffer, else through it."""
        transport: Any = self.transport
        if (
            type(transport) in _DIRECT
            and not transport.dataBuffer
            and not transport._tempDataBuffer
            and transport.connected
            and not transport.disconnecting
        ):
            try:
                sent = transport.socket.send(data)
            except OSError:
                sent = 0  # EAGAIN, or an error the transport meets again and handles
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)


class HailwhaleSite(Site):
    """
    The Site: no access log (counting traffic would drown it), connections capped and
    timed out by ``connections`` (not by Twisted's own idle timeout), and ``quick``: the
    answer, for a path, of the requests that may go the quick way (None for the others).
    """

    protocol = HailwhaleChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: IResource,
        connections: Connections,
        quick: Callable[[bytes], QuickAnswer | None],
        reactor,
    ):
        super().__init__(resource, timeout=None, reactor=reactor)
        self.connections = connections
        self.quick = quick
        self.clock = reactor
        self.date = DateHeader()

    def log(self, request) -> None:
        pass

    def buildProtocol(self, addr):
        address = connections_module.address_key(addr)
        refusal = self.connections.refusal(address)
        if refusal is not None:
            return refusal
        channel = super().buildProtocol(addr)
        channel.address = address
        return channel
