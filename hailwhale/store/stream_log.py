"""
A RabbitMQ stream's record in the store: which batch is being applied or was committed
(:mod:`hailwhale.aggregate.stream_batches`), and a lease saying which daemon reads the
stream.

Two keys share the queue's hash tag: ``hw:amqp:{<queue>}:batch`` (the record, JSON) and
``hw:amqp:{<queue>}:holder`` (the id of the daemon holding the lease, expiring unless
renewed).  Every change of the record is a compare-and-set in one script
(``lua/stream.lua``) that also checks and renews the lease, so a daemon that lost the
lease (paused past it, while another took over) cannot move the record on.
"""

from hailwhale.aggregate import stream_batches
from hailwhale.aggregate.stream_batches import Record
from hailwhale.model import keys
from hailwhale.store.client import lua


class LeaseLost(Exception):
    """Another daemon holds the stream, or moved its record on: this one must stop reading it."""

    def __init__(self, holder: str, record: Record | None, mine: bool = False):
        super().__init__("the stream's record moved on" if mine else f"the stream is held by {holder or 'no one'}")
        self.holder = holder
        self.record = record


class StreamLog:
    def __init__(self, client, queue: str, holder: str, lease_seconds: float):
        self._holder_key = keys.stream_holder_key(queue)
        self._record_key = keys.stream_record_key(queue)
        self._client = client
        self.holder = holder
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._script = client.register_script(lua("stream"))

    def claim(self) -> Record | None:
        """Take or renew the lease; the record (None before the first batch).  Raises :class:`LeaseLost`."""
        return self._call("", "")

    def write(self, expected: Record | None, new: Record) -> None:
        """Replace the record ``expected`` by ``new`` (renewing the lease).  Raises :class:`LeaseLost`."""
        self._call(expected.encode() if expected is not None else "", new.encode())

    def release(self) -> None:
        """Let the lease go, if this daemon holds it, so that another may take the stream at once."""
        holder = self._client.get(self._holder_key)
        if holder is not None and holder.decode() == self.holder:
            self._client.delete(self._holder_key)

    def _call(self, expected: str, new: str) -> Record | None:
        reply = self._script(
            keys=[self._holder_key, self._record_key], args=[self.holder, self._lease_ms, expected, new]
        )
        if int(reply[0]) != 1:
            record = reply[2].decode() if reply[2] else ""
            holder = reply[1].decode()
            raise LeaseLost(holder, stream_batches.decode(record) if record else None, holder == self.holder)
        text = reply[1].decode() if reply[1] else ""
        return stream_batches.decode(text) if text else None
