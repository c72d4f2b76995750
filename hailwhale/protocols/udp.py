"""
The UDP receiver: one event per line, many lines per datagram.

It only hands datagrams to the ingest; a large kernel receive buffer, forced where the
process may (SO_RCVBUFFORCE), is what keeps bursts from being dropped by the kernel.
"""

import os
import socket

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from hailwhale.ingest import Ingest

MAX_DATAGRAM = 65535
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
log = Logger()


class EventReceiver(DatagramProtocol):
    def __init__(self, ingest: Ingest):
        self._ingest = ingest

    def datagramReceived(self, data: bytes, addr) -> None:
        self._ingest.datagram(data)


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for ``size`` bytes of receive buffer (forced if allowed); the size obtained."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def listen(reactor, port: int, interface: str, protocol: DatagramProtocol, receive_buffer: int,
           what: str = "UDP events"):
    """Listen for datagrams of up to 64 KiB, with a large receive buffer; the listening port."""
    listening = reactor.listenUDP(port, protocol, interface=interface, maxPacketSize=MAX_DATAGRAM)
    obtained = set_receive_buffer(listening.socket, receive_buffer)
    log.info("{what} on {host}:{port}; receive buffer {got} bytes (asked for {asked})",
             what=what, host=interface, port=listening.getHost().port, got=obtained, asked=receive_buffer)
    return listening


def receive_buffer(listening) -> int:
    return listening.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def kernel_drops(sock: socket.socket) -> int | None:
    """
    Datagrams the kernel dropped for this socket (its receive buffer was full), from
    Linux's /proc/net/udp; None where that cannot be read.
    """
    inode = str(os.fstat(sock.fileno()).st_ino)
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
