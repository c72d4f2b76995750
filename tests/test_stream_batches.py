"""
A RabbitMQ stream's batch records (pure), their folds of dimension names, a message body's
forms, and the record and lease in a real store.
"""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hailwhale.aggregate import stream_batches
from hailwhale.aggregate.cardinality import OVERFLOW, Cardinality
from hailwhale.aggregate.stream_batches import APPLYING, COMMITTED, Digest, Record, RecordedFolds
from hailwhale.formats import messages
from hailwhale.model.fields import FieldError
from hailwhale.store.client import connect
from hailwhale.store.stream_log import LeaseLost, StreamLog

names = st.text(min_size=1, max_size=8)
paths = st.lists(names, min_size=1, max_size=3).map(list)
folds = st.lists(st.tuples(paths, st.lists(paths, max_size=3), st.lists(paths, max_size=3)).map(list), max_size=4)


@given(
    batch=st.integers(0, 1 << 40),
    seq=st.integers(1, 1 << 32),
    first=st.integers(0, 1 << 50),
    messages_=st.integers(0, 10_000),
    now=st.floats(0, 4e9),
    folds=folds,
)
def test_a_record_reads_back_as_written(batch, seq, first, messages_, now, folds):
    """A record, encoded for the store and decoded, is the record it was."""
    record = Record(
        APPLYING, batch, "0a1b2c", seq, first, first + messages_, messages_, "d" * 32, now, tuple(map(tuple, folds))
    )
    assert record == stream_batches.decode(record.encode())


def test_a_committed_record_says_where_the_next_batch_starts():
    """Committing a batch keeps its offsets and epoch, drops its folds, and gives the next part's sequence number."""
    applying = Record(APPLYING, 7, "e", 40, 1000, 1999, 1000, "d", 1.5, ((["p"], [["a"]], [["_other"]]),))
    committed = applying.committed(43)
    assert (COMMITTED, 7, "e", 43, 2000, (), "amqp-e") == (
        committed.state,
        committed.batch,
        committed.epoch,
        committed.seq,
        committed.next_offset,
        committed.folds,
        committed.writer_id,
    )


def test_the_digest_tells_messages_and_their_offsets_apart():
    """Two batches differing in one body, or in one offset, have different digests; the same batch the same one."""

    def digest(items):
        found = Digest()
        for offset, body in items:
            found.update(offset, body)
        return found.hexdigest()

    batch = [(5, b"a:1|c"), (6, b"b:1|c")]
    assert digest(batch) == digest(list(batch))
    assert digest(batch) != digest([(5, b"a:1|c"), (7, b"b:1|c")])
    assert digest(batch) != digest([(5, b"a:1|c"), (6, b"b:2|c")])
    assert digest([(5, b"ab")]) != digest([(5, b"a"), (5, b"b")])


def test_folds_recorded_in_one_batch_are_replayed_whatever_the_bound_remembers():
    """A batch read again after a restart folds the names it folded the first time, though the bound starts empty."""
    before = Cardinality(max_children=1, max_tracked=100)
    first = RecordedFolds(before)
    first.reset()
    kept = first.admit(("shop",), frozenset({("country", "US")}))
    folded = first.admit(("shop",), frozenset({("country", "FR")}))
    recorded = first.recorded()
    assert (frozenset({("country", "US")}), frozenset({("country", OVERFLOW)})) == (kept, folded)

    after = RecordedFolds(Cardinality(max_children=1, max_tracked=100))  # a restart: nothing remembered
    after.reset(stream_batches.decode(Record(APPLYING, 1, "e", 1, folds=recorded).encode()).folds)
    assert [folded, kept] == [
        after.admit(("shop",), frozenset({("country", "FR")})),
        after.admit(("shop",), frozenset({("country", "US")})),
    ]


def test_a_batch_not_replayed_records_only_its_own_folds():
    """Starting a batch afresh forgets the folds of the one before."""
    folds_ = RecordedFolds(Cardinality(max_children=1, max_tracked=100))
    folds_.reset()
    folds_.admit(("shop",), frozenset({("a",)}))
    folds_.admit(("shop",), frozenset({("b",)}))
    folds_.reset()
    folds_.admit(("shop",), frozenset({("a",)}))
    assert () == folds_.recorded()


@pytest.mark.parametrize(
    ("body", "array"),
    [(b'[{"pk": "a"}]', True), (b'  [{"pk": "a"}]', True), (b'{"pk": "a"}', False), (b"a:1|c", False)],
)
def test_a_body_is_an_array_when_it_starts_with_a_bracket(body, array):
    """A body is read as a JSON array when it starts with '[', else as lines."""
    assert array == messages.is_array(body)


@pytest.mark.parametrize("body", [b"[1, 2", b'{"pk": "a"}]', b"[\xff]"])
def test_a_body_that_is_not_a_json_array_is_bad_json(body):
    """A body starting with '[' that is not a JSON array is refused as bad_json."""
    with pytest.raises(FieldError) as raised:
        messages.array_items(body)
    assert "bad_json" == raised.value.reason


def test_only_one_daemon_holds_a_stream(store_url):
    """A second daemon cannot take a stream's lease while the first holds it, and takes it once it is let go."""
    first = StreamLog(connect(store_url), "events", "first", lease_seconds=30)
    second = StreamLog(connect(store_url), "events", "second", lease_seconds=30)
    assert first.claim() is None
    with pytest.raises(LeaseLost) as refused:
        second.claim()
    first.release()
    assert ("first", None) == (refused.value.holder, second.claim())


def test_a_lease_not_renewed_lapses(store_url):
    """A daemon that stops renewing its lease loses the stream to the next one that asks."""
    first = StreamLog(connect(store_url), "events", "first", lease_seconds=0.05)
    second = StreamLog(connect(store_url), "events", "second", lease_seconds=30)
    first.claim()
    time.sleep(0.1)
    second.claim()
    with pytest.raises(LeaseLost):
        first.write(None, stream_batches.start("e"))


def test_the_record_moves_only_from_the_record_expected(store_url):
    """A record replaces only the one expected; a write repeated after a lost reply is taken as done."""
    log = StreamLog(connect(store_url), "events", "me", lease_seconds=30)
    start = stream_batches.start("e")
    applying = Record(APPLYING, 1, "e", 1, 0, 9, 10, "d", 1.0)
    log.write(None, start)
    log.write(start, applying)
    log.write(start, applying)  # the same write again: the reply of the first was lost
    with pytest.raises(LeaseLost) as refused:
        log.write(start, applying.committed(2))
    assert (applying, applying) == (log.claim(), refused.value.record)
