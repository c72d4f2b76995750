"""The flush, driven by a fake clock, writing to a real Valkey server."""

import pytest
import redis
from twisted.internet import defer, task

from hailwhale.aggregate import rollup
from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.flush import FlushService
from hailwhale.model import keys
from hailwhale.model.events import Event
from hailwhale.model.schema import parse_schema
from hailwhale.store import Store
from hailwhale.store.client import INDEX_MARGIN
from hailwhale.testing import succeeded, synchronous, upcoming
from hailwhale.whale import Whale

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
NOW = upcoming(1, 40)  # ahead of the clock the store expires keys by


class FlakyStore:
    """The real store, made to fail some calls: before writing, or after writing (an ambiguous failure)."""

    def __init__(self, store: Store):
        self._store = store
        self.fail_before = 0
        self.fail_after = 0

    def ping(self):
        if self.fail_before:
            raise redis.ConnectionError("store went away")
        return self._store.ping()

    def dirty_tags(self):
        if self.fail_before:
            raise redis.ConnectionError("store went away")
        return self._store.dirty_tags()

    def fold(self, tags, target, now, schema):
        if self.fail_before:
            raise redis.ConnectionError("store went away")
        return self._store.fold(tags, target, now, schema)

    def apply(self, plan, seq, done):
        if self.fail_before:
            self.fail_before -= 1
            raise redis.ConnectionError("store went away")
        if self.fail_after:
            self.fail_after -= 1
            self._store.apply(plan, seq, set(done))  # written, but the caller never learns which parts
            raise redis.TimeoutError("reply lost")
        return self._store.apply(plan, seq, done)


@pytest.fixture
def clock():
    clock = task.Clock()
    clock.advance(NOW)
    return clock


@pytest.fixture
def parts(store, clock):
    accumulator = Accumulator(60, 1000)
    stats = SelfStats()
    flaky = FlakyStore(store)
    flusher = FlushService(accumulator, flaky, SCHEMA, stats, clock, synchronous, interval=1.0, stop_timeout=5.0)
    return accumulator, flaky, stats, flusher


def hits(store_url, pk="p"):
    Whale.configure(store_url, schema=str(SCHEMA))
    return Whale.total(pk, "hits", period="today", now=NOW)


def event(pk="p"):
    return Event((pk,), frozenset(), {"hits": 1}, NOW)


def test_each_tick_flushes(parts, clock, store_url):
    """What was added before a tick is in the store after it."""
    accumulator, _, stats, flusher = parts
    flusher.startService()
    accumulator.add(event())

    clock.advance(1)

    assert (1.0, 1, 0) == (hits(store_url), stats.flushes_ok, flusher.backlog_events)
    flusher.stopService()


def test_failed_flush_is_kept_and_retried(parts, clock, store_url):
    """A flush that fails keeps its batch; the next tick writes it and the newer events, once each."""
    accumulator, flaky, stats, flusher = parts
    flusher.startService()
    flaky.fail_before = 1
    accumulator.add(event())
    clock.advance(1)
    failed = (hits(store_url), stats.flushes_failed, flusher.backlog_events, "ConnectionError" in stats.last_error)
    accumulator.add(event())

    clock.advance(1)

    assert ((0.0, 1, 1, True), 2.0, 0) == (failed, hits(store_url), flusher.backlog_events)
    flusher.stopService()


def test_ambiguous_failure_does_not_double_count(parts, clock, store_url):
    """A batch written but reported as failed is retried, and the store's token check keeps it counted once."""
    accumulator, flaky, stats, flusher = parts
    flusher.startService()
    flaky.fail_after = 1
    accumulator.add(event("a"))
    accumulator.add(event("b"))
    clock.advance(1)

    clock.advance(1)

    assert (1.0, 1.0, 1, 1) == (hits(store_url, "a"), hits(store_url, "b"), stats.flushes_failed, stats.flushes_ok)
    flusher.stopService()


def test_the_timer_survives_failures(parts, clock, store_url):
    """Ticks keep coming after several failures in a row."""
    accumulator, flaky, stats, flusher = parts
    flusher.startService()
    flaky.fail_before = 3
    accumulator.add(event())

    clock.advance(1)
    clock.advance(1)
    clock.advance(1)
    clock.advance(1)

    assert (3, 1, 1.0) == (stats.flushes_failed, stats.flushes_ok, hits(store_url))
    flusher.stopService()


def test_the_timer_restarts_after_an_unexpected_error(parts, clock, store_url):
    """A tick that raises what a flush does not expect is logged and counted, and the timer goes on."""
    accumulator, _, stats, flusher = parts
    flusher.startService()
    swap = accumulator.swap
    failures = [RuntimeError("a bug in the accumulator")]

    def swap_failing_once():
        if failures:
            raise failures.pop()
        return swap()

    accumulator.swap = swap_failing_once
    accumulator.add(event())

    clock.advance(1)
    clock.advance(1)
    clock.advance(1)

    assert (1, "flush timer: a bug in the accumulator", 1.0) == (
        stats.flush_loop_restarts,
        stats.last_error,
        hits(store_url),
    )
    flusher.stopService()


def test_stop_flushes(parts, store_url):
    """stopService writes what is pending and its Deferred fires after."""
    accumulator, _, _, flusher = parts
    flusher.startService()
    accumulator.add(event())

    succeeded(flusher.stopService())

    assert 1.0 == hits(store_url)


def test_stop_waits_for_the_store_within_its_timeout(parts, clock, store_url):
    """A stopping daemon retries its last flush while the store is away, up to the stop timeout."""
    accumulator, flaky, _, flusher = parts
    flusher.startService()
    flaky.fail_before = 2
    accumulator.add(event())
    stopping = flusher.stopService()
    clock.advance(1)
    waiting = not stopping.called

    clock.advance(1)

    assert (True, True, 1.0) == (waiting, stopping.called, hits(store_url))


def test_when_durable_fires_after_the_batch_is_written(parts, clock):
    """A waiter on the next batch fires once that batch is in the store, not before."""
    accumulator, flaky, _, flusher = parts
    flusher.startService()
    durable = flusher.when_durable(accumulator.next_seq)
    accumulator.add(event())
    flaky.fail_before = 1
    clock.advance(1)
    before = durable.called

    clock.advance(1)

    assert (False, True) == (before, durable.called)
    flusher.stopService()


def test_an_absent_store_costs_bounded_memory(parts, clock, store_url):
    """While the store is away one batch waits; newer events add up in the (bounded) accumulator, then all land."""
    accumulator, flaky, _, flusher = parts
    flusher.startService()
    flaky.fail_before = 1_000_000
    for tick in range(5):
        accumulator.add(event(f"k{tick}"))
        clock.advance(1)
    waiting = (flusher.backlog_events, accumulator.pending_events)
    flaky.fail_before = 0

    clock.advance(1)

    assert ((1, 4), [1.0] * 5) == (waiting, [hits(store_url, f"k{tick}") for tick in range(5)])
    flusher.stopService()


def test_stats_tell_whether_the_store_is_reachable(parts, clock):
    """A failed flush marks the store unreachable (since when); an idle tick's ping or a good flush clears it."""
    accumulator, flaky, stats, flusher = parts
    flusher.startService()
    flaky.fail_before = 1
    accumulator.add(event())
    clock.advance(1)
    down = (stats.store_reachable, stats.store_unreachable_since)
    clock.advance(1)
    clock.advance(1)  # nothing to write: a ping

    assert ((False, NOW + 1), (True, None)) == (down, (stats.store_reachable, stats.store_unreachable_since))
    flusher.stopService()


def test_an_idle_tick_notices_the_store_is_gone(parts, clock):
    """With nothing to write, the tick pings the store, so /stats shows an outage even without traffic."""
    _, flaky, stats, flusher = parts
    flusher.startService()
    flaky.fail_before = 1

    clock.advance(1)

    assert (False, 0) == (stats.store_reachable, stats.flushes_failed)
    flusher.stopService()


def test_writes_found_already_applied_are_counted(parts, clock):
    """The retry of a batch whose reply was lost finds it applied: counted in writes_repeated, not added again."""
    accumulator, flaky, stats, flusher = parts
    flusher.startService()
    flaky.fail_after = 1
    accumulator.add(event())
    clock.advance(1)

    clock.advance(1)

    assert 1 == stats.writes_repeated
    flusher.stopService()


def test_a_large_batch_is_written_in_parts_each_once(store, clock, store_url):
    """
    A batch whose plan would pass the bound is planned and written part by part, each under
    its own token; a part that fails midway is retried alone, and every event counts once.
    """
    accumulator, stats = Accumulator(60, 1000), SelfStats()
    flaky = PartCounting(store)
    flusher = FlushService(accumulator, flaky, SCHEMA, stats, clock, synchronous, interval=1.0, part_increments=1)
    flusher.startService()
    for pk in ("a", "b", "c", "d"):
        accumulator.add(event(pk))
    flaky.fail_after_part = 2
    clock.advance(1)
    failed = (stats.flushes_failed, flusher.backlog_events)

    clock.advance(1)

    assert ((1, 4), [1.0] * 4, 1) == (failed, [hits(store_url, pk) for pk in "abcd"], stats.flushes_ok)
    assert (4, [1, 2, 3, 3, 4]) == (len(set(flaky.tokens)), flaky.tokens)
    flusher.stopService()


class PartCounting:
    """The real store, recording each part's token; it fails (after writing) once, at a chosen part."""

    def __init__(self, store):
        self._store = store
        self.tokens = []
        self.fail_after_part = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def apply(self, plan, seq, done):
        self.tokens.append(seq)
        applied = self._store.apply(plan, seq, done)
        if len(self.tokens) == self.fail_after_part + 1:
            raise redis.TimeoutError("reply lost")
        return applied


def test_levels_are_planned_whole_when_a_batch_is_written_in_parts(store, clock, store_url):
    """
    A gauge's last level wins over the whole batch, even when the keys meeting in one node
    land in different parts: a part written later must not put back an older level.
    """
    accumulator, stats = Accumulator(60, 1000), SelfStats()
    flusher = FlushService(accumulator, store, SCHEMA, stats, clock, synchronous, interval=1.0, part_increments=1)
    flusher.startService()
    for dimension, level in (("a", 1), ("b", 2), ("a", 3)):
        accumulator.add(Event(("g",), frozenset({(dimension,)}), {"hits": 1}, NOW, levels={"x.gauge": level}))

    clock.advance(1)

    Whale.configure(store_url, schema=str(SCHEMA))
    assert 3.0 == Whale.total("g", "x.gauge", period="1m:1m", now=NOW)
    flusher.stopService()


def test_closed_minutes_are_folded_on_the_ticks_after(parts, clock, raw):
    """A minute's buckets are folded into the hour and day once it has closed (plus a grace), then counted."""
    accumulator, _, stats, flusher = parts
    flusher.startService()
    accumulator.add(event())
    clock.advance(1)
    before = stats.buckets_folded

    clock.advance(NOW // 60 * 60 + 60 + 3 - clock.seconds())  # the minute closed 3 s ago: grace is 2 intervals + 1 s
    clock.advance(1)

    assert (0, 1, str(int(NOW // 60 * 60))) == (
        before,
        stats.buckets_folded,
        raw.get(keys.folded_key(keys.tag(("p",)))),
    )
    flusher.stopService()


def test_a_new_flusher_folds_what_another_left_unfolded(store, clock, raw):
    """Buckets noted and never folded (a process stopped) are found by the next flusher's scan and folded."""
    accumulator = Accumulator(60, 1000)
    accumulator.add(event())
    batch = accumulator.swap()
    store.apply(rollup.plan(batch.entries, SCHEMA, NOW), 1, set())
    flusher = FlushService(Accumulator(60, 1000), store, SCHEMA, SelfStats(), clock, synchronous, interval=1.0)
    flusher.startService()

    clock.advance(NOW // 60 * 60 + 120 - clock.seconds())

    assert (0, str(int(NOW // 60 * 60))) == (
        raw.zcard(keys.dirty_key(keys.tag(("p",)))),
        raw.get(keys.folded_key(keys.tag(("p",)))),
    )
    flusher.stopService()


def test_index_members_are_written_once_per_refresh_time(parts, clock, raw):
    """A pk flushed again within the index margin adds nothing to the index sets; after it, they are written again."""
    accumulator, _, _, flusher = parts
    flusher.startService()

    def set_additions():
        return int(raw.info("commandstats").get("cmdstat_sadd", {}).get("calls", 0))

    counts = []
    for step in (1, 1, INDEX_MARGIN):
        before = set_additions()
        accumulator.add(Event(("p", "q"), frozenset(), {"hits": 1}, clock.seconds()))
        clock.advance(step)
        counts.append(set_additions() > before)

    assert ([True, False, True], ["q"]) == (counts, sorted(raw.smembers(keys.pks_key(keys.tag(("p",))))))
    flusher.stopService()


def test_flushes_go_on_while_a_fold_runs(store, clock, store_url):
    """A fold still running (its thread has not answered) holds no flush back, and no second fold starts meanwhile."""
    waiting = []

    def slow(function, *args):
        answer = defer.Deferred()
        waiting.append((answer, function, args))
        return answer

    accumulator = Accumulator(60, 1000)
    flusher = FlushService(accumulator, store, SCHEMA, SelfStats(), clock, synchronous, interval=1.0, run_fold=slow)
    flusher.startService()
    for _ in range(3):
        accumulator.add(event())
        clock.advance(1)

    assert (3.0, 1) == (hits(store_url), len(waiting))
    while waiting:
        answer, function, args = waiting.pop(0)
        answer.callback(function(*args))
    flusher.stopService()
