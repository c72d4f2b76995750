"""
The UDP receiver: one event per line, many lines per datagram.

It only hands datagrams to the ingest; a large kernel receive buffer, forced where the
process may (SO_RCVBUFFORCE), is what keeps bursts from being dropped by the kernel.
Events arrive on a :class:`BatchingPort`, which hands over every datagram waiting (up to a
bound) at once: many one-line datagrams are then counted as one run of lines.
"""

import errno
import os
import socket

from twisted.internet import udp
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from hailwhale.aggregate.ingest import Ingest

MAX_DATAGRAM = 65535
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
log = Logger()


class EventReceiver(DatagramProtocol):
    def __init__(self, ingest: Ingest):
        self._ingest = ingest

    def datagramReceived(self, data: bytes, addr) -> None:
        self._ingest.datagram(data)

    def datagramsReceived(self, batch: list[bytes]) -> None:
        """Datagrams that arrived together (from a :class:`BatchingPort`)."""
        self._ingest.datagrams(batch)


class SharedPort(udp.Port):
    """A UDP port bound with SO_REUSEPORT, if ``reuse_port``: the worker processes of one daemon share it."""

    reuse_port = False

    def createInternetSocket(self):
        sock = super().createInternetSocket()
        if self.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return sock


class BatchingPort(SharedPort):
    """
    A UDP port that reads the datagrams waiting, up to ``most_datagrams`` or
    ``most_bytes``, and hands them to the protocol's ``datagramsReceived`` in one list
    (reading with ``recv``: the sender's address is not needed).
    """

    most_datagrams = 256
    most_bytes = 256 * 1024  # as Twisted's own port reads per wakeup

    def doRead(self) -> None:
        recv, size = self.socket.recv, self.maxPacketSize
        batch: list[bytes] = []
        read = 0
        while len(batch) < self.most_datagrams and read < self.most_bytes:
            try:
                data = recv(size)
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ECONNREFUSED):
                    break
                raise
            batch.append(data)
            read += len(data)
        if batch:
            try:
                self.protocol.datagramsReceived(batch)
            except Exception:
                log.failure("while counting {count} datagrams", count=len(batch))


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for ``size`` bytes of receive buffer (forced if allowed); the size obtained."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def listen(
    reactor,
    port: int,
    interface: str,
    protocol: DatagramProtocol,
    receive_buffer: int,
    what: str = "UDP events",
    batching: bool = False,
    reuse_port: bool = False,
):
    """
    Listen for datagrams of up to 64 KiB, with a large receive buffer, handing them over in
    batches if ``batching`` (the protocol has ``datagramsReceived``), sharing the port with
    the other workers if ``reuse_port``; the listening port.
    """
    listening = (BatchingPort if batching else SharedPort)(port, protocol, interface, MAX_DATAGRAM, reactor)
    listening.reuse_port = reuse_port
    listening.startListening()
    obtained = set_receive_buffer(listening.socket, receive_buffer)
    log.info(
        "{what} on {host}:{port}; receive buffer {got} bytes (asked for {asked})",
        what=what,
        host=interface,
        port=listening.getHost().port,
        got=obtained,
        asked=receive_buffer,
    )
    return listening


def receive_buffer(listening) -> int:
    return listening.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def kernel_drops(handle) -> int | None:
    """
    Datagrams the kernel dropped for ``handle``'s socket (its receive buffer was full), from
    Linux's /proc/net/udp; None where that cannot be read.  ``handle``: a socket, or the
    listening port (anything with ``fileno()``).
    """
    inode = str(os.fstat(handle.fileno()).st_ino)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as rows:
                for row in rows:
                    fields = row.split()
                    if len(fields) > 12 and fields[9] == inode:
                        return int(fields[12])
        except OSError:
            continue
    return None
