"""
The UDP receiver: one event per line, many lines per datagram.

It only hands datagrams to the ingest; a large kernel receive buffer, forced where the
process may (SO_RCVBUFFORCE), is what keeps bursts from being dropped by the kernel.
"""

import socket

from twisted.application.service import Service
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from hailwhale.ingest import Ingest

MAX_DATAGRAM = 65535
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


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


class UDPListener(Service):
    """Listens while running; ``port`` is the listening port once started."""

    log = Logger()

    def __init__(self, reactor, port: int, interface: str, protocol: DatagramProtocol, receive_buffer: int):
        self._reactor = reactor
        self._port_number = port
        self._interface = interface
        self._protocol = protocol
        self._receive_buffer = receive_buffer
        self.port = None
        self.receive_buffer = None

    def startService(self) -> None:
        super().startService()
        self.port = self._reactor.listenUDP(
            self._port_number, self._protocol, interface=self._interface, maxPacketSize=MAX_DATAGRAM
        )
        self.receive_buffer = set_receive_buffer(self.port.socket, self._receive_buffer)
        self.log.info(
            "UDP events on {host}:{port}; receive buffer {got} bytes (asked for {asked})",
            host=self._interface, port=self.port.getHost().port, got=self.receive_buffer, asked=self._receive_buffer,
        )

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
