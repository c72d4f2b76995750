"""
The flush: on a timer, hand what the accumulator holds to the store.

A batch is planned in parts (each bounded by the increments it holds, so a batch of many
keys never needs its whole plan in memory at once), and each part is applied tag by tag
under its own token; a part that fails is kept, as it was, with its token, and is retried
first on the next tick, so nothing accepted is lost and the store's token check keeps a
retry from counting twice.  The timer never dies: :meth:`FlushService.flush` never fails.
A tick with nothing to write pings the store, so ``/stats`` tells whether it is reachable
even when idle.  :meth:`stopService` flushes (retrying for a while if the store is away),
logs what it accepted and wrote, and returns its Deferred.

A flush writes finest buckets only; after it, the tags whose finest buckets have closed
are folded into the coarser sizes (:class:`~hailwhale.aggregate.folding.FoldSchedule`
says which), with the fold's own runner: the flushes go on while a long fold runs (each
fold call and each flush call is atomic in the store, and a write into a bucket already
folded goes into the coarser sizes too), and one fold runs at a time.  At the start, and
every :data:`RESCAN_SECONDS`, the store is scanned for buckets left unfolded (by a process
that stopped, or by the Python API's writers).
"""

import itertools
import time
from collections.abc import Callable, Iterator

import attrs
from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from hailwhale.aggregate import gauges, rollup
from hailwhale.aggregate.accumulator import Accumulator, Batch
from hailwhale.aggregate.folding import FoldSchedule
from hailwhale.aggregate.index_memory import IndexMemory
from hailwhale.aggregate.rollup import WritePlan
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.model.schema import Schema
from hailwhale.store import Store
from hailwhale.store.client import INDEX_MARGIN

Runner = Callable[..., defer.Deferred]
PART_INCREMENTS = 250_000  # sorted-set increments planned at once: about 100 MB of plan
RESCAN_SECONDS = 3600.0
INDEX_MEMORY = 1 << 18  # aggregation keys whose index members are remembered as written (then forgotten all at once)


@attrs.define
class _Queued:
    batch: Batch
    rest: Iterator  # the batch's entries not planned yet
    settled: bool = False  # its gauges applied to the store's levels (or none to apply)
    plan: WritePlan | None = None  # the part being written
    token: int = 0  # the part's sequence number, for the store's tokens
    done: set[int] = attrs.field(factory=set)  # the part's script calls the store has taken


class FlushService(Service):
    log = Logger()

    def __init__(
        self,
        accumulator: Accumulator,
        store: Store,
        schema: Schema,
        stats: SelfStats,
        clock: IReactorTime,
        run: Runner,
        interval: float,
        stop_timeout: float = 10.0,
        part_increments: int = PART_INCREMENTS,
        levels_in_store: bool = False,
        run_fold: Runner | None = None,
    ):
        """
        ``run_fold``: the runner of the folds (another thread than the flushes'), ``run`` if None.
        ``levels_in_store``: the accumulator's batches hold statsd's relative gauges as
        changes (see :class:`hailwhale.aggregate.ingest.Ingest`); each batch's gauges set or
        change the levels the store holds before the batch is written.
        """
        self._levels_in_store = levels_in_store
        self._accumulator = accumulator
        self._store = store
        self._schema = schema
        self._stats = stats
        self._clock = clock
        self._run = run
        self._run_fold = run_fold or run
        self._folding: defer.Deferred | None = None
        self._interval = interval
        self._stop_timeout = stop_timeout
        self._part_increments = part_increments
        self._pending: _Queued | None = None
        self._tokens = itertools.count(1)
        self._lock = defer.DeferredLock()
        self._waiters: list[tuple[int, defer.Deferred]] = []
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = clock
        self._folds = FoldSchedule(schema.finest.interval, grace=2 * interval + 1)
        self._scanned_at: float | None = None
        self._indexes = IndexMemory(INDEX_MARGIN, INDEX_MEMORY)

    @property
    def backlog_events(self) -> int:
        """Events in a batch that a failed flush left behind (not counting the accumulator's)."""
        return self._pending.batch.events if self._pending else 0

    @property
    def unwritten(self) -> bool:
        return self._pending is not None or self._accumulator.pending_keys > 0

    def startService(self) -> None:
        super().startService()
        self._start_loop()

    def _start_loop(self) -> None:
        self._loop.start(self._interval, now=False).addErrback(self._loop_failed)

    def _loop_failed(self, failure) -> None:
        """
        A tick raised what :meth:`flush` does not expect (a bug): the timer stopped.  Log
        it, count it, and start the timer again, so that flushing never stops silently.
        """
        self._stats.flush_loop_restarts += 1
        self._stats.last_error = f"flush timer: {failure.getErrorMessage()}"
        self._stats.last_error_at = self._clock.seconds()
        self.log.failure("the flush timer stopped on an unexpected error; starting it again", failure)
        if self.running:
            self._start_loop()

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        deadline = self._clock.seconds() + self._stop_timeout
        yield self.flush()
        while self.unwritten and self._clock.seconds() < deadline:
            yield task.deferLater(self._clock, min(1.0, self._interval))
            yield self.flush()
        unwritten = self.backlog_events + self._accumulator.pending_events
        if unwritten:
            self.log.error("stopping with {events} events not written: the store did not accept them", events=unwritten)
        self.log.info(
            "stopped: {accepted} events accepted since the start, {written} written, {unwritten} not written",
            accepted=self._accumulator.events_added,
            written=self._stats.events_flushed,
            unwritten=unwritten,
        )

    def flush(self) -> defer.Deferred:
        """Flush now (after any flush already running); fires with True if every write it tried succeeded."""
        return self._lock.run(self._flush_once)

    @defer.inlineCallbacks
    def _tick(self):
        if self.unwritten:
            yield self.flush()
        else:
            yield self._check_store()
        if self._folding is None:
            self._folding = self._fold()
            self._folding.addBoth(self._fold_ended)

    def _fold_ended(self, _) -> None:
        self._folding = None

    @defer.inlineCallbacks
    def _fold(self):
        """
        Fold the closed finest buckets of the tags due (and, at the start and every
        :data:`RESCAN_SECONDS`, look for tags left unfolded).  Never fails: a fold that
        did not go through is counted and tried again on the next tick.
        """
        now = self._clock.seconds()
        try:
            if self._scanned_at is None or now - self._scanned_at >= RESCAN_SECONDS:
                found = yield self._run_fold(self._store.dirty_tags)
                self._folds.recovered(found)
                self._scanned_at = now
            target = self._folds.target(now)
            due = self._folds.due(target)
            if due:
                folded = yield self._run_fold(self._store.fold, due, target, now, self._schema)
                self._folds.folded(due, target)
                self._stats.buckets_folded += folded.notes
                for tag, refusal in folded.refused:
                    self._stats.writes_refused += 1
                    self._stats.last_error, self._stats.last_error_at = f"fold refused for {tag}: {refusal}", now
        except Exception as error:
            self._stats.folds_failed += 1
            self._stats.last_error, self._stats.last_error_at = f"fold: {type(error).__name__}: {error}", now
            self.log.failure("folding closed buckets failed; tried again on the next tick")

    @defer.inlineCallbacks
    def _check_store(self):
        try:
            yield self._run(self._store.ping)
        except Exception as error:
            self._stats.store_failed(self._clock.seconds(), error)
        else:
            self._stats.store_answered()

    def note_written(self, tags: dict[str, tuple[int, int]]) -> None:
        """Tags another writer of this daemon (the RabbitMQ input) wrote finest buckets under: fold them too."""
        self._folds.written(tags)

    def when_durable(self, seq: int) -> defer.Deferred:
        """Fires once the batch numbered ``seq`` (and every one before it) is in the store."""
        waiter: defer.Deferred = defer.Deferred()
        self._waiters.append((seq, waiter))
        return waiter

    @defer.inlineCallbacks
    def _flush_once(self):
        """
        Write the batch a failed flush left behind, if any, then what accumulated since.
        While a batch is left behind nothing new is swapped out: new events keep adding up
        in the accumulator, under its bound, so an absent store costs bounded memory.
        """
        for _ in range(2):
            if self._pending is None:
                batch = self._accumulator.swap()
                if batch is None:
                    return True
                self._pending = _Queued(batch, iter(batch.entries.items()))
            written = yield self._write(self._pending)
            if not written:
                return False
            self._pending = None
        return True

    def _settle(self, batch: Batch) -> Batch:
        """``batch`` with its gauges applied to the levels the store holds, as levels (in a thread)."""
        series = gauges.level_series(batch.levels, batch.relative)
        if not series:
            return batch
        results = self._store.settle_levels(series, batch.seq, self._schema.longest_retention())
        return attrs.evolve(batch, levels=gauges.settled(batch.levels, series, results), relative={})

    @defer.inlineCallbacks
    def _write(self, queued: _Queued):
        started = time.perf_counter()
        if not queued.settled:
            if self._levels_in_store and queued.batch.levels:
                try:
                    queued.batch = yield self._run(self._settle, queued.batch)
                except Exception as error:
                    self._stats.flushes_failed += 1
                    self._stats.store_failed(self._clock.seconds(), error)
                    self.log.failure("gauges of batch {seq} not applied; kept for retry", seq=queued.batch.seq)
                    return False
            queued.settled = True
        while True:
            now = self._clock.seconds()
            try:
                if queued.plan is None:
                    batch, first = queued.batch, queued.token == 0
                    plan = yield self._run(
                        self._plan_part, queued.rest, now, batch.levels if first else None, batch.members, batch.samples
                    )
                    if not plan.taken:
                        break
                    queued.plan, queued.token, queued.done = plan, next(self._tokens), set()
                    self._stats.buckets_expired.update(plan.expired)
                applied = yield self._run(self._store.apply, queued.plan, queued.token, queued.done)
            except Exception as error:
                self._stats.flushes_failed += 1
                self._stats.store_failed(now, error)
                self.log.failure(
                    "flush of batch {seq} failed; kept for retry ({events} events)",
                    seq=queued.batch.seq,
                    events=queued.batch.events,
                )
                return False
            queued.plan = None
            self._folds.written(applied.tags)
            self._stats.store_answered()
            self._stats.writes_repeated += applied.repeats
            if applied.repeats:
                self.log.info(
                    "batch {seq}: {repeats} chunks were already applied", seq=queued.batch.seq, repeats=applied.repeats
                )
            for pk, refusal in applied.refused:
                self._stats.writes_refused += 1
                self._stats.last_error, self._stats.last_error_at = f"refused for {pk}: {refusal}", now
                self.log.error(
                    "the store refused batch {seq}'s writes for {pk}, dropped: {error}",
                    seq=queued.batch.seq,
                    pk=pk,
                    error=refusal,
                )
        self._stats.flushes_ok += 1
        self._stats.events_flushed += queued.batch.events
        self._stats.last_flush_at = now
        self._stats.last_flush_seconds = time.perf_counter() - started
        self._stats.flush_seconds_total += self._stats.last_flush_seconds
        self._release(queued.batch.seq)
        return True

    def _plan_part(self, rest: Iterator, now: float, levels, members, samples) -> WritePlan:
        """The next part of a batch, without the index members written lately (in a thread: one flush at a time)."""
        return rollup.plan_some(rest, self._schema, now, levels, members, self._part_increments, samples, self._indexes)

    def _release(self, seq: int) -> None:
        ready = [waiter for wanted, waiter in self._waiters if wanted <= seq]
        self._waiters = [(wanted, waiter) for wanted, waiter in self._waiters if wanted > seq]
        for waiter in ready:
            if not waiter.called:
                waiter.callback(None)
