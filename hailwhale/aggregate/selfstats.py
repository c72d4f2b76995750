"""The daemon's counters about itself, shown at ``/stats``: what came in, what was dropped and why, how flushes went."""

from collections import Counter

import attrs


@attrs.define
class CollectdStats:
    packets_ok: int = 0
    packets_bad: Counter = attrs.field(factory=Counter)  # reason -> packets rejected whole
    value_lists: int = 0  # accepted for aggregation (one event each)
    notifications: int = 0  # read and ignored
    values_skipped: Counter = attrs.field(factory=Counter)  # reason -> values not counted
    cumulative: Counter = attrs.field(factory=Counter)  # outcome -> COUNTER/DERIVE samples (see cumulative.py)

    def snapshot(self) -> dict:
        return {
            "packets_ok": self.packets_ok,
            "packets_bad": dict(self.packets_bad),
            "value_lists": self.value_lists,
            "notifications": self.notifications,
            "values_skipped": dict(self.values_skipped),
            "cumulative": dict(self.cumulative),
        }


@attrs.define
class SelfStats:
    datagrams: int = 0
    lines_ok: int = 0
    lines_bad: Counter = attrs.field(factory=Counter)  # reason -> lines
    http_events_ok: int = 0
    http_bad_requests: Counter = attrs.field(factory=Counter)  # reason -> requests
    events_dropped: Counter = attrs.field(factory=Counter)  # reason -> parsed events not accepted
    unique_members_dropped: int = 0  # members of unique counts past the bound per key between flushes
    buckets_expired: Counter = attrs.field(factory=Counter)  # interval -> aggregation keys past retention at flush
    flushes_ok: int = 0
    flushes_failed: int = 0
    writes_refused: int = 0  # tag writes the store refused for good (dropped, see last_error)
    writes_repeated: int = 0  # script calls the store had already applied: retries after a lost reply, not counted again
    events_flushed: int = 0
    last_flush_at: float | None = None
    last_flush_seconds: float | None = None
    flush_seconds_total: float = 0.0  # over every flush that succeeded
    last_error: str | None = None
    last_error_at: float | None = None
    store_reachable: bool | None = None  # how the last flush or check went; None before the first
    store_unreachable_since: float | None = None
    collectd: CollectdStats = attrs.field(factory=CollectdStats)

    def store_answered(self) -> None:
        self.store_reachable, self.store_unreachable_since = True, None

    def store_failed(self, now: float, error: Exception) -> None:
        self.last_error, self.last_error_at = f"{type(error).__name__}: {error}", now
        if self.store_reachable is not False:
            self.store_unreachable_since = now
        self.store_reachable = False

    def health(self, stopping: bool = False) -> tuple[bool, dict]:
        """(healthy, answer) for ``/health``: healthy once the store answered the last flush or check."""
        if stopping:
            return False, {"status": "unavailable", "reason": "stopping"}
        if self.store_reachable is None:
            return False, {"status": "unavailable", "reason": "starting"}
        if not self.store_reachable:
            return False, {"status": "unavailable", "reason": "store_unreachable",
                           "since": self.store_unreachable_since}
        return True, {"status": "ok"}

    def snapshot(self) -> dict:
        return {
            "datagrams": self.datagrams,
            "lines_ok": self.lines_ok,
            "lines_bad": dict(self.lines_bad),
            "lines_bad_total": sum(self.lines_bad.values()),
            "http_events_ok": self.http_events_ok,
            "http_bad_requests": dict(self.http_bad_requests),
            "events_dropped": dict(self.events_dropped),
            "unique_members_dropped": self.unique_members_dropped,
            "buckets_expired": {str(k): v for k, v in self.buckets_expired.items()},
            "flushes_ok": self.flushes_ok,
            "flushes_failed": self.flushes_failed,
            "writes_refused": self.writes_refused,
            "writes_repeated": self.writes_repeated,
            "events_flushed": self.events_flushed,
            "last_flush_at": self.last_flush_at,
            "last_flush_seconds": self.last_flush_seconds,
            "flush_seconds_total": self.flush_seconds_total,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "store_reachable": self.store_reachable,
            "store_unreachable_since": self.store_unreachable_since,
            "collectd": self.collectd.snapshot(),
        }
