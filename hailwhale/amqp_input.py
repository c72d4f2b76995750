"""
The RabbitMQ input: a stream's messages counted exactly once, across crashes.

Messages come from a RabbitMQ stream (:mod:`hailwhale.receivers.amqp`), each with its
offset, and add up in an accumulator of their own, in batches cut at message boundaries.
One batch at a time goes to the store, in these steps:

1. **record**: the batch's :class:`~hailwhale.aggregate.stream_batches.Record` (number,
   offsets, message count and digest, its ``now``, its folded names, its tokens' epoch
   and first sequence number) replaces the committed one, by compare-and-set under the
   daemon's lease (:mod:`hailwhale.store.stream_log`);
2. **apply**: the batch is planned with the record's ``now`` and written part by part
   under the writer id ``amqp-<epoch>``, each part's sequence number following the
   record's, so each script call carries a token the store checks;
3. **commit**: the record says the batch is committed and where the next one starts;
4. **ack**: the broker gets the batch's acknowledgement (credit for more).

A daemon that dies between any two steps is followed by one (itself restarted, or
another waiting for the lease) that reads the record: a batch committed is done; a batch
recorded and not committed is read again from the stream (the same offsets), rebuilt
with the recorded ``now`` and folds into the same writes under the same tokens, and
written again: the store skips the calls it already took.  A batch not recorded was
never written: its messages are read again into a new batch.

One daemon at a time defines batches: the record only changes under the daemon's lease.
Writes cannot check the lease (a cluster keeps them in other slots), but a daemon paused
past its lease while another took over can only go on writing the batch it recorded,
which the other rebuilds identically: both send the same calls, in the same order, under
the same tokens, and the store skips a call once any call of the same token key at or
after it was taken, so each is still applied once.

Flow control: while a batch is being written, the next one fills up to the pending-keys
bound (or half the prefetch window); then reading stops (no credit goes back), and goes
on once the batch is committed.  Nothing is dropped.  A bad line or message is counted
by reason and acknowledged with its batch.
"""

import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import cast

import attrs
from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from hailwhale.aggregate import rollup, stream_batches
from hailwhale.aggregate.accumulator import Accumulator, Batch
from hailwhale.aggregate.cardinality import Cardinality
from hailwhale.aggregate.ingest import Ingest
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.aggregate.stream_batches import APPLYING, COMMITTED, MAX_SEQ, Digest, Record, RecordedFolds
from hailwhale.config import Config
from hailwhale.flush import PART_INCREMENTS
from hailwhale.formats import messages
from hailwhale.model import events
from hailwhale.model.fields import FieldError, Limits
from hailwhale.model.schema import Schema
from hailwhale.receivers.amqp import Delivery, StreamConsumer
from hailwhale.store import Store
from hailwhale.store import client as store_client
from hailwhale.store.stream_log import LeaseLost, StreamLog
from hailwhale.web import access

Runner = Callable[..., defer.Deferred]
CRASH_POINTS = ("cut", "recorded", "partial", "applied", "committed")
PARTIAL_CALLS = 2  # script calls the "partial" crash point lets through before the kill
LEASE_SECONDS = 10.0  # a daemon that stops renewing its lease for this long loses the stream to one waiting


@attrs.define
class _Filling:
    """The batch being read: its accumulator, and the messages it holds."""

    now: float
    accumulator: Accumulator
    generation: int
    digest: Digest = attrs.field(factory=Digest)
    first: int = -1
    last: int = -1
    messages: int = 0
    last_tag: int = 0


class _Stopped(Exception):
    """The daemon is stopping and the store did not answer before the stop timeout."""


class _FirstCalls:
    """A ``done`` set for :meth:`Store.apply` that lets only the first ``n`` calls through (the partial crash)."""

    def __init__(self, n: int):
        self._n = n

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and index >= self._n

    def add(self, index: int) -> None:
        pass


class StreamInput(Service):
    log = Logger()

    def __init__(
        self,
        *,
        clock: IReactorTime,
        stream_log: StreamLog,
        store: Store,
        schema: Schema,
        stats: SelfStats,
        make_ingest: Callable[[], Ingest],
        folds: RecordedFolds,
        limits: Limits,
        run: Runner,
        make_consumer: Callable[["StreamInput"], object],
        make_accumulator: Callable[[], Accumulator],
        note_written: Callable[[dict], None],
        interval: float,
        max_keys: int,
        prefetch: int,
        max_body_bytes: int,
        stop_timeout: float,
        part_increments: int = PART_INCREMENTS,
        crash_at: tuple[str, int] | None = None,
        now: list[float] | None = None,
    ):
        self._clock = clock
        self._log = stream_log
        self._store = store
        self._schema = schema
        self._stats = stats
        self._amqp = stats.amqp
        self._make_ingest = make_ingest
        self._ingest = make_ingest()
        self._folds = folds
        self._limits = limits
        self._run = run
        self._make_accumulator = make_accumulator
        self._note_written = note_written
        self._interval = interval
        self._max_keys = max_keys
        self._prefetch = prefetch
        self._max_body = max_body_bytes
        self._stop_timeout = stop_timeout
        self._part_increments = part_increments
        self._crash_at = crash_at
        self._now = now if now is not None else [0.0]  # the ingest's clock: the batch's now
        self.consumer = make_consumer(self)
        self._holding = False
        self._record: Record | None = None  # the record as the store holds it
        self._replay: Record | None = None  # a recorded batch to build again before anything else
        self._position: int | None = None  # the offset after the last batch cut (None: the stream's first)
        self._expected: int | None = None  # the offset the next delivery should have
        self._filling: _Filling | None = None
        self._writing: defer.Deferred | None = None
        self._last_cut = 0.0
        self._waiters: list[defer.Deferred] = []
        self._deadline: float | None = None  # when stopping: give up on the store after it
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = clock
        self._amqp.state = "standby"

    # -- the service -------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._loop.start(self._interval, now=True).addErrback(self._loop_failed)

    def _loop_failed(self, failure) -> None:
        self.log.failure("the RabbitMQ input's timer stopped on an unexpected error; starting it again", failure)
        if self.running:
            self._loop.start(self._interval, now=False).addErrback(self._loop_failed)

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        self._deadline = self._clock.seconds() + self._stop_timeout
        yield self.consumer.stop()
        if self._writing is not None:
            yield self._writing
        if self._holding:
            try:
                yield self._run(self._log.release)
            except Exception as error:
                self.log.warn("could not let the stream's lease go: {error}", error=error)
        self._holding = self._amqp.holding = False
        self._amqp.state = "stopped"
        self.log.info(
            "stopped reading the stream: {batches} batches ({events} events) committed since the start, "
            "reading goes on at offset {offset}",
            batches=self._amqp.batches_committed,
            events=self._amqp.events_committed,
            offset=self._amqp.offset_committed,
        )

    @defer.inlineCallbacks
    def _tick(self):
        """Take or renew the lease; cut the batch being read if it is due and none is being written."""
        try:
            record = yield self._run(self._log.claim)
        except LeaseLost as lost:
            if self._holding:
                self._lose(lost)
            elif self._amqp.state != "standby":
                self.log.info("the stream is read by {holder}: standing by", holder=lost.holder)
            self._amqp.state = "standby"
            return
        except Exception as error:
            self._stats.store_failed(self._clock.seconds(), error)
            return
        self._stats.store_answered()
        if not self._holding and self.running and self._writing is None:
            self._take(record)
        if self._writing is None and self._due():
            self._cut()

    def _take(self, record: Record | None) -> None:
        """This daemon now holds the stream: go on from ``record``."""
        self._holding = self._amqp.holding = True
        self._amqp.state = "reading"
        self._last_cut = self._clock.seconds()
        # afresh: what the ingest remembers of lines (taken whole, not folded) and of gauge
        # levels must not differ from what the daemon that recorded a batch knew
        self._ingest = self._make_ingest()
        self._record = record
        self._replay = record if record is not None and record.state == APPLYING else None
        self._position = record.next_offset if record is not None and record.last >= 0 else None
        if self._replay is not None:
            self._position = self._replay.first
        self._amqp.offset_committed = self._position
        self.log.info(
            "holding the stream: {what}",
            what=f"batch {record.batch} was being written: reading it again from offset {record.first}"
            if self._replay is not None and record is not None
            else f"reading from offset {self._position if self._position is not None else 'first'}",
        )
        self.consumer.start()  # type: ignore[attr-defined]

    def _lose(self, lost: LeaseLost) -> None:
        """Another daemon holds the stream now: stop reading it, forget what is not committed."""
        self.log.warn("{why}: standing by", why=lost)
        self._holding = self._amqp.holding = False
        self._amqp.state = "standby"
        self._record = self._replay = None
        self._drop_filling()
        self.consumer.stop()  # type: ignore[attr-defined]

    # -- the sink: what the consumer asks and hands over ---------------------------------

    def resume_offset(self) -> int | str:
        self._expected = self._replay.first if self._replay is not None else self._position
        return "first" if self._expected is None else self._expected

    def accepting(self) -> bool:
        if not self._holding:
            return False
        filling = self._filling
        return filling is None or filling.accumulator.pending_keys < self._max_keys

    def wait_accepting(self) -> defer.Deferred:
        waiter: defer.Deferred = defer.Deferred()
        self._waiters.append(waiter)
        return waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    def lost(self) -> None:
        """The channel is gone: what it delivered and was not cut into a batch is read again."""
        self._drop_filling()

    def _drop_filling(self) -> None:
        self._filling = None
        self._ingest.accumulator = self._make_accumulator()
        self._wake()

    def deliver(self, delivery: Delivery) -> None:
        if not self._holding or delivery.generation != self.consumer.generation:  # type: ignore[attr-defined]
            return
        if self._expected is not None and delivery.offset < self._expected:
            self.consumer.ack_one(delivery.generation, delivery.tag)  # type: ignore[attr-defined]
            self._amqp.deliveries_skipped += 1
            return
        if self._expected is not None and delivery.offset > self._expected:
            self._amqp.offsets_missing += delivery.offset - self._expected
        replay = self._replay
        if replay is not None and delivery.offset > replay.last:
            self._unrecoverable(replay, "the stream holds fewer of its messages than recorded")
            return
        filling = self._filling
        if filling is None:
            filling = self._filling = _Filling(
                now=replay.now if replay is not None else self._clock.seconds(),
                accumulator=self._make_accumulator(),
                generation=delivery.generation,
                first=delivery.offset,
            )
            self._ingest.accumulator = filling.accumulator
            self._folds.reset(replay.folds if replay is not None else ())
            self._now[0] = filling.now
        filling.digest.update(delivery.offset, delivery.body)
        filling.last, filling.last_tag = delivery.offset, delivery.tag
        filling.messages += 1
        self._expected = delivery.offset + 1
        self._amqp.offset_received = delivery.offset
        self._count(delivery.body, filling.now)
        if replay is not None:
            if delivery.offset == replay.last:
                self._cut()
        elif self._writing is None and self._due():
            self._cut()

    def _count(self, body: bytes, now: float) -> None:
        """Count one message's events into the batch being read."""
        self._amqp.messages += 1
        if len(body) > self._max_body:
            self._amqp.messages_bad["body_too_long"] += 1
            return
        if not messages.is_array(body):
            self._ingest.lines([body])
            return
        try:
            items = messages.array_items(body)
        except FieldError as error:
            self._amqp.messages_bad[error.reason] += 1
            return
        for item in items:
            try:
                if not isinstance(item, dict):
                    raise FieldError("body", "an array item is not an event object", "bad_json")
                event = events.from_fields(item, now, self._limits)
            except FieldError as error:
                self._amqp.lines_bad[error.reason] += 1
                continue
            reason = self._ingest.accept_all([event])
            if reason is None:
                self._amqp.lines_ok += 1
            else:
                self._amqp.lines_bad[reason] += 1

    # -- batches -------------------------------------------------------------------------

    def _due(self) -> bool:
        filling = self._filling
        if filling is None or self._replay is not None:
            return False
        return (
            self._clock.seconds() - self._last_cut >= self._interval
            or filling.messages * 2 >= self._prefetch
            or filling.accumulator.pending_keys >= self._max_keys
        )

    def _cut(self) -> None:
        filling, self._filling = self._filling, None
        if filling is None:
            return
        self._ingest.accumulator = self._make_accumulator()
        batch = filling.accumulator.swap()
        replay = self._replay
        if replay is not None:
            found = (filling.first, filling.last, filling.messages, filling.digest.hexdigest())
            if found != (replay.first, replay.last, replay.messages, replay.digest):
                self._unrecoverable(replay, f"read (first, last, messages, digest) {found}")
                return
            record = replay
            self._replay = None  # what comes next is a new batch
        else:
            base = self._record or stream_batches.start(secrets.token_hex(6))
            if base.state != COMMITTED:
                raise AssertionError(f"cutting a batch while batch {base.batch} is not committed")
            epoch, seq = (base.epoch, base.seq) if base.seq < MAX_SEQ else (secrets.token_hex(6), 1)
            record = Record(
                state=APPLYING,
                batch=base.batch + 1,
                epoch=epoch,
                seq=seq,
                first=filling.first,
                last=filling.last,
                messages=filling.messages,
                digest=filling.digest.hexdigest(),
                now=filling.now,
                folds=self._folds.recorded(),
            )
        self._position = filling.last + 1
        self._last_cut = self._clock.seconds()
        self._writing = self._write(record, batch, filling, replayed=replay is not None)
        self._writing.addErrback(lambda failure: self.log.failure("writing a batch of the stream failed", failure))
        self._writing.addBoth(self._written)
        self._wake()

    def _written(self, _) -> None:
        self._writing = None
        if self._holding and self.running and self._due():
            self._cut()
        self._wake()

    @defer.inlineCallbacks
    def _write(self, record: Record, batch: Batch | None, filling: _Filling, replayed: bool):
        """Record, apply, commit and acknowledge one batch (see the module docstring)."""
        started = time.perf_counter()
        try:
            self._crash("cut", record)
            if record != self._record:
                expected = self._record
                yield self._until_done(self._log.write, expected, record)
                self._record = record
            self._crash("recorded", record)
            seq = record.seq
            if batch is not None:
                seq = yield self._apply(record, batch)
            self._crash("applied", record)
            committed = record.committed(seq)
            yield self._until_done(self._log.write, record, committed)
            self._record = committed
        except LeaseLost as lost:
            if self._holding:
                self._lose(lost)
            return
        except _Stopped:
            self.log.warn(
                "stopping with batch {batch} not committed: the next start reads it again", batch=record.batch
            )
            return
        if replayed:
            self._amqp.batches_replayed += 1
            self.log.info("batch {batch}, read again, is committed", batch=record.batch)
        self._amqp.offset_committed = committed.next_offset
        self._amqp.batches_committed += 1
        self._amqp.events_committed += batch.events if batch is not None else 0
        self._crash("committed", record)
        if self.consumer.ack(filling.generation, filling.last_tag):  # type: ignore[attr-defined]
            self._amqp.messages_acked += filling.messages
        self._stats.last_flush_seconds = time.perf_counter() - started

    @defer.inlineCallbacks
    def _apply(self, record: Record, batch: Batch):
        """Plan and apply ``batch`` in parts under ``record``'s tokens; the sequence number after its last part."""
        self._store.writer_id = record.writer_id
        seq = record.seq
        rest: Iterator = iter(batch.entries.items())
        first = True
        while True:
            plan = yield self._run(
                rollup.plan_some,
                rest,
                self._schema,
                record.now,
                batch.levels if first else None,
                batch.members,
                self._part_increments,
                batch.samples,
            )
            if not plan.taken:
                return seq
            first = False
            self._stats.buckets_expired.update(plan.expired)
            done: set[int] = set()
            if self._crash_due("partial", record):
                yield self._until_done(self._store.apply, plan, seq, _FirstCalls(PARTIAL_CALLS))
                self._crash("partial", record)
            applied = yield self._until_done(self._store.apply, plan, seq, done)
            self._note_written(applied.tags)
            self._stats.writes_repeated += applied.repeats
            for pk, refusal in applied.refused:
                self._stats.writes_refused += 1
                self._stats.last_error, self._stats.last_error_at = f"refused for {pk}: {refusal}", record.now
            seq += 1

    @defer.inlineCallbacks
    def _until_done(self, function, *args):
        """``function(*args)`` in the store's thread, again every interval until the store takes it."""
        while True:
            if not self._holding:
                raise LeaseLost("", None)
            try:
                result = yield self._run(function, *args)
            except LeaseLost:
                raise
            except Exception as error:
                self._stats.store_failed(self._clock.seconds(), error)
                if self._deadline is not None and self._clock.seconds() >= self._deadline:
                    raise _Stopped() from error
                self.log.warn("the store did not take a batch of the stream ({error}); again", error=error)
                yield task.deferLater(self._clock, self._interval, lambda: None)
                continue
            self._stats.store_answered()
            return result

    def _unrecoverable(self, replay: Record, why: str) -> None:
        """
        The recorded batch ``replay`` cannot be built again from the stream (retention
        removed its messages, or the stream was deleted): log it, count it, and go on
        after it under a new epoch of tokens (what of it was written stays written).
        """
        self._amqp.batches_unrecoverable += 1
        self.log.error(
            "batch {batch} (offsets {first}..{last}) cannot be read again as recorded ({why}); "
            "what of it reached the store stays, the rest is lost; reading on after it",
            batch=replay.batch,
            first=replay.first,
            last=replay.last,
            why=why,
        )
        self._replay = None
        self._filling = None
        self._ingest.accumulator = self._make_accumulator()
        skipped = Record(
            state=COMMITTED, batch=replay.batch, epoch=secrets.token_hex(6), seq=1, first=replay.first, last=replay.last
        )
        self._position = skipped.next_offset
        self._writing = self._skip(replay, skipped)
        self._writing.addErrback(lambda failure: self.log.failure("recording an unrecoverable batch failed", failure))
        self._writing.addBoth(self._written)

    @defer.inlineCallbacks
    def _skip(self, replay: Record, skipped: Record):
        try:
            yield self._until_done(self._log.write, replay, skipped)
        except (LeaseLost, _Stopped):
            return
        self._record = skipped
        self._amqp.offset_committed = skipped.next_offset
        self.consumer.restart()  # type: ignore[attr-defined]

    # -- test-only crash points ------------------------------------------------------------

    def _crash_due(self, point: str, record: Record) -> bool:
        return self._crash_at is not None and self._crash_at[0] == point and record.batch >= self._crash_at[1]

    def _crash(self, point: str, record: Record) -> None:
        """Kill the process (SIGKILL, as ``kill -9``) here, when a test asked for it (HAILWHALE_TEST_AMQP_CRASH)."""
        if self._crash_due(point, record):
            self.log.warn("test crash point {point} at batch {batch}: SIGKILL", point=point, batch=record.batch)
            os.kill(os.getpid(), signal.SIGKILL)


def crash_point(text: str | None) -> tuple[str, int] | None:
    """The test-only crash point ``point:batch`` (HAILWHALE_TEST_AMQP_CRASH), or None."""
    if not text:
        return None
    point, _, batch = text.partition(":")
    if point not in CRASH_POINTS:
        raise ValueError(f"HAILWHALE_TEST_AMQP_CRASH: {point!r} is not one of {', '.join(CRASH_POINTS)}")
    return point, int(batch or 1)


def make_input(
    config: Config,
    reactor,
    stats: SelfStats,
    cardinality: Cardinality,
    store_url: str,
    run: Runner,
    note_written: Callable[[dict], None],
    report_bad_line: Callable[[bytes, str], None],
) -> StreamInput:
    """The RabbitMQ input as the settings say (``--amqp`` and the ``--amqp-*`` options)."""
    password = None
    if config.amqp_password_file is not None:
        with open(config.amqp_password_file, encoding="utf-8") as file:
            password = file.readline().strip()
    finest = config.schema.finest.interval
    folds = RecordedFolds(cardinality)
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    clock_now: list[float] = [0.0]

    def make_accumulator() -> Accumulator:
        return Accumulator(finest, sys.maxsize)  # bounded by the batch cuts, at message boundaries

    def make_ingest() -> Ingest:
        return Ingest(
            make_accumulator(),
            cast(SelfStats, stats.amqp),  # the input's ingest counts its lines in the amqp section
            cast(Cardinality, folds),
            config.event_limits,
            lambda: clock_now[0],
            report_bad_line,
        )

    def make_consumer(sink: StreamInput) -> StreamConsumer:
        return StreamConsumer(
            reactor,
            list(config.amqp_urls),
            config.amqp_queue,
            sink,
            stats.amqp,
            prefetch=config.amqp_prefetch,
            exchange=config.amqp_exchange,
            binding_key=config.amqp_binding_key,
            max_age_seconds=config.amqp_max_age,
            password=password,
            describe=access.redacted_url,
        )

    stream_input = StreamInput(
        clock=reactor,
        stream_log=StreamLog(
            store_client.connect(store_url, config.redis_cluster, config.store_timeout),
            config.amqp_queue,
            holder,
            max(LEASE_SECONDS, 3 * config.flush_interval),
        ),
        store=Store.connect(store_url, cluster=config.redis_cluster, timeout=config.store_timeout),
        schema=config.schema,
        stats=stats,
        make_ingest=make_ingest,
        folds=folds,
        limits=config.event_limits,
        run=run,
        make_consumer=make_consumer,
        make_accumulator=make_accumulator,
        note_written=note_written,
        interval=config.flush_interval,
        max_keys=config.max_pending_keys,
        prefetch=config.amqp_prefetch,
        max_body_bytes=config.max_body_bytes,
        stop_timeout=config.stop_timeout,
        crash_at=crash_point(os.environ.get("HAILWHALE_TEST_AMQP_CRASH")),
        now=clock_now,
    )
    return stream_input
