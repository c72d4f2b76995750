"""
Batches of a RabbitMQ stream that a restarted daemon can build again, message for message.

The RabbitMQ input (:mod:`hailwhale.amqp_input`) counts a stream's messages in batches
cut at message boundaries.  Before the first write of a batch goes to the store, the
batch's :class:`Record` is written there: its number, the offsets of its first and last
message, how many messages it holds and a digest of them, the ``now`` its events were
read with (the time of events that carry none, and every expiry decision), the token
space it is written under (``epoch``, ``seq``) and the dimension names the cardinality
bound folded while it was read (:class:`RecordedFolds`).  From that record and the same
messages, read again from the stream, the same batch and so the same writes, under the
same tokens, are made again: what the store had taken of it is skipped, the rest is
written.  Once every write is in, the record says the batch is committed and where the
next one starts.

Pure: values in, values out.
"""

import hashlib
import json
from collections.abc import Mapping

import attrs

from hailwhale.aggregate.cardinality import Cardinality
from hailwhale.model.fields import Leaves
from hailwhale.model.paths import Path

APPLYING = "applying"
COMMITTED = "committed"
MAX_SEQ = 1 << 32  # parts written under one epoch's tokens before a new epoch starts (tokens stay exact in Lua)


@attrs.frozen
class Record:
    """
    What the store holds about a queue's batches: the last one ``committed`` (then
    ``first``..``last`` are its offsets, ``seq`` the next part's sequence number), or the
    one being applied (``applying``: ``seq`` is its first part's).
    """

    state: str
    batch: int  # the batch's number, from 1
    epoch: str  # names the writer id the batch's tokens go under (amqp-<epoch>)
    seq: int
    first: int = -1  # offsets of the batch's first and last message
    last: int = -1
    messages: int = 0
    digest: str = ""
    now: float = 0.0
    folds: tuple = ()  # ((pk, leaves, admitted leaves), ...) as lists, see RecordedFolds

    @property
    def next_offset(self) -> int:
        """Where reading goes on after this record's batch."""
        return self.last + 1

    @property
    def writer_id(self) -> str:
        return f"amqp-{self.epoch}"

    def encode(self) -> str:
        return json.dumps(attrs.asdict(self, recurse=False), separators=(",", ":"), sort_keys=True)

    def committed(self, next_seq: int) -> "Record":
        """This applying record's batch, committed; the next part gets ``next_seq``."""
        return attrs.evolve(self, state=COMMITTED, seq=next_seq, folds=())


def decode(text: str | bytes) -> Record:
    fields = json.loads(text)
    fields["folds"] = tuple(tuple(fold) for fold in fields.get("folds", ()))
    return Record(**fields)


def start(epoch: str) -> Record:
    """The record before a queue's first batch: nothing committed, reading from the stream's first message."""
    return Record(state=COMMITTED, batch=0, epoch=epoch, seq=1, first=-1, last=-1)


class Digest:
    """A digest of a batch's messages (offset, length and body of each, in order)."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)

    def update(self, offset: int, body: bytes) -> None:
        self._hash.update(b"%d:%d:" % (offset, len(body)))
        self._hash.update(body)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class RecordedFolds:
    """
    The cardinality bound as one batch sees it: it asks the daemon's :class:`Cardinality`
    and remembers every (pk, leaves) whose names it folded, so that the batch's record
    can say so; given those folds again (:meth:`replay`), it answers with them instead,
    so that a batch read again after a restart (when the bound remembers other names)
    folds exactly the names it folded the first time.
    """

    def __init__(self, cardinality: Cardinality):
        self._cardinality = cardinality
        self.folded: dict[tuple[Path, Leaves], Leaves] = {}
        self._replayed: dict[tuple[Path, Leaves], Leaves] | None = None

    def reset(self, recorded: tuple = ()) -> None:
        """Start a batch: afresh, or replaying the folds ``recorded`` for it."""
        self.folded = {}
        self._replayed = None
        if recorded:
            self._replayed = {(tuple(pk), _leaves(leaves)): _leaves(admitted) for pk, leaves, admitted in recorded}

    def admit(self, pk: Path, leaves: Leaves) -> Leaves:
        admitted = self._cardinality.admit(pk, leaves)
        if self._replayed is not None:
            admitted = self._replayed.get((pk, leaves), leaves)
        if admitted is not leaves and admitted != leaves:
            self.folded[(pk, leaves)] = admitted
        return admitted if admitted != leaves else leaves

    def recorded(self) -> tuple:
        """The folds of this batch, as a record holds them (in a stable order)."""
        return tuple(
            sorted(
                ([list(pk), _sorted(leaves), _sorted(admitted)] for (pk, leaves), admitted in self.folded.items()),
                key=json.dumps,
            )
        )

    @property
    def folded_counts(self) -> Mapping[str, int]:
        return self._cardinality.folded

    @property
    def tracked(self) -> int:
        return self._cardinality.tracked


def _leaves(paths) -> Leaves:
    return frozenset(tuple(path) for path in paths)


def _sorted(leaves: Leaves) -> list[list[str]]:
    return sorted(list(path) for path in leaves)
