"""
The collectd receiver: collectd's network plugin sends value lists here over UDP.

Each datagram is parsed, verified or decrypted whole (:mod:`hailwhale.formats.collectd`), turned
into events (:mod:`hailwhale.formats.collectd_events`) and handed to the ingest all or nothing.
A rejected packet is counted by reason; each reason is logged at most once a minute.
The auth file is looked at on a timer (:data:`AUTH_FILE_CHECK_SECONDS`), never per packet:
a packet costs no system call beyond its own read.
"""

import os
from collections.abc import Callable, Mapping

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from hailwhale.aggregate.ingest import Ingest
from hailwhale.aggregate.selfstats import CollectdStats
from hailwhale.formats.collectd import PacketError, Security, SecurityLevel, parse_auth_file, parse_packet
from hailwhale.formats.collectd_events import ValueListEvents

COMPLAINT_EVERY_SECONDS = 60.0
AUTH_FILE_CHECK_SECONDS = 1.0
log = Logger()


class AuthFile:
    """
    collectd's AuthFile (``user: password`` lines), read again by :meth:`current` when its
    modification time has changed (the daemon calls it every :data:`AUTH_FILE_CHECK_SECONDS`);
    if it becomes unreadable the users last read stay in force.
    """

    def __init__(self, path: str):
        self._path = path
        self._read: int | None = None
        self.users: Mapping[bytes, bytes] = {}
        self._warned = False
        self.current(must=True)

    def current(self, must: bool = False) -> Mapping[bytes, bytes]:
        """The users, read again if the file changed; ``must`` raises OSError if it cannot be read."""
        try:
            changed = os.stat(self._path).st_mtime_ns
            if changed != self._read:
                with open(self._path, "rb") as file:
                    self.users = parse_auth_file(file.read())
                self._read = changed
                log.info("collectd auth file {path}: {count} users", path=self._path, count=len(self.users))
            self._warned = False
        except OSError as error:
            if must:
                raise
            if not self._warned:
                log.warn(
                    "cannot read the collectd auth file ({error}); keeping its {count} users",
                    error=error,
                    count=len(self.users),
                )
                self._warned = True
        return self.users


class CollectdReceiver(DatagramProtocol):
    def __init__(
        self,
        ingest: Ingest,
        to_events: ValueListEvents,
        level: SecurityLevel,
        auth: AuthFile | None,
        stats: CollectdStats,
        seconds: Callable[[], float],
    ):
        self._ingest = ingest
        self._to_events = to_events
        self._auth = auth
        self._security = Security(level, auth.users if auth else None)
        self._stats = stats
        self._seconds = seconds
        self._complained: dict[str, float] = {}  # reason -> when last logged

    def datagramReceived(self, data: bytes, addr) -> None:
        now = self._seconds()
        if self._auth is not None and self._auth.users is not self._security.users:
            self._security = Security(self._security.level, self._auth.users)
        try:
            packet = parse_packet(data, self._security)
            events = self._to_events.events(packet.value_lists, now)
        except PacketError as error:
            self._stats.packets_bad[error.reason] += 1
            self._complain(error, addr, now)
            return
        self._stats.packets_ok += 1
        self._stats.notifications += packet.notifications
        if events and self._ingest.accept_all(events) is None:
            self._stats.value_lists += len(events)

    def _complain(self, error: PacketError, addr, now: float) -> None:
        if now - self._complained.get(error.reason, -COMPLAINT_EVERY_SECONDS) >= COMPLAINT_EVERY_SECONDS:
            self._complained[error.reason] = now
            log.warn(
                "collectd packet from {addr} rejected ({error}); such packets are counted in /stats, "
                "logged once a minute",
                addr=addr,
                error=error,
            )
