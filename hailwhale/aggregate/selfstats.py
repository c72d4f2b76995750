"""
The daemon's counters about itself: what came in, what was dropped and why, how flushes
went, and the state of the moment.

This module is the one list of self-stats fields: each field of :class:`SelfStats`,
:class:`CollectdStats` and :class:`DaemonStatus` says what it is (:func:`stat`), and
``/stats`` (:func:`snapshot`), ``/metrics`` (:mod:`hailwhale.web.prometheus`, through
:func:`describe`) and the snapshot all follow from those fields.
"""

from collections import Counter
from collections.abc import Mapping, Sequence

import attrs

COUNTER = "counter"  # only grows; a dict of them is a count by its key (reason, interval, outcome)
GAUGE = "gauge"  # a level that goes up and down, or a moment
TEXT = "text"  # shown in /stats, not exported
INFO = "info"  # text exported as a label of hailwhale_info
SECTION = "section"  # a group of stats of its own, prefixed with its name


SUM = "sum"  # across workers: the sum (every count, and the levels marked so)
ALL = "all"  # across workers: true if true in every worker
ANY = "any"  # across workers: true if true in one
OWN = "own"  # across workers: the answering worker's own value


@attrs.frozen
class Stat:
    help: str
    kind: str = COUNTER
    label: str | None = None  # the label naming a count's key
    across: str = OWN  # how the total of several workers is made from theirs (a count is always summed)


def stat(
    help: str,
    kind: str = COUNTER,
    *,
    label: str | None = None,
    default: object = 0,
    factory: type | None = None,
    across: str | None = None,
):
    """
    A self-stats field: what it means, its kind, for a count by key the label that names
    the key, and how several workers' values make a total (counts are summed).
    """
    metadata = {"stat": Stat(help, kind, label, across or (SUM if kind == COUNTER else OWN))}
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata)
    return attrs.field(default=default, metadata=metadata)


@attrs.define
class CollectdStats:
    packets_ok: int = stat("collectd packets taken in.")
    packets_bad: Counter = stat("collectd packets rejected whole, by reason.", label="reason", factory=Counter)
    value_lists: int = stat("collectd value lists taken in (one event each).")
    notifications: int = stat("collectd notifications read and ignored.")
    values_skipped: Counter = stat("collectd values not counted, by reason.", label="reason", factory=Counter)
    cumulative: Counter = stat("collectd COUNTER/DERIVE samples, by outcome.", label="outcome", factory=Counter)

    def snapshot(self) -> dict:
        return snapshot(self)


@attrs.define
class AmqpStats:
    """The RabbitMQ input (see :mod:`hailwhale.amqp_input`); its ingest counts lines here."""

    state: str = stat(
        "off, standby (another daemon holds the stream), connecting, reading or stopped.", TEXT, default="off"
    )
    connected: bool = stat("1 while connected to the broker and reading the stream.", GAUGE, default=False, across=ANY)
    holding: bool = stat(
        "1 while this daemon holds the stream (its lease in the store).", GAUGE, default=False, across=ANY
    )
    reconnects: int = stat("Times the connection to the broker was lost or could not be made, and tried again.")
    last_error: str | None = stat("The last broker error.", TEXT, default=None)
    messages: int = stat("Messages taken in from the stream.")
    messages_bad: Counter = stat(
        "Messages counted as nothing, by reason (too long, a bad JSON array); acknowledged all the same.",
        label="reason",
        factory=Counter,
    )
    lines_ok: int = stat("Lines (and JSON array items) of messages counted.")
    lines_bad: Counter = stat("Lines of messages rejected, by reason.", label="reason", factory=Counter)
    events_dropped: Counter = stat(
        "Parsed events of messages not taken in, by reason.", label="reason", factory=Counter
    )
    unique_members_dropped: int = stat("Members of unique counts past the bound per key in a batch.")
    messages_acked: int = stat("Messages acknowledged (their batch committed in the store).")
    batches_committed: int = stat("Batches of messages written to the store and committed.")
    events_committed: int = stat("Events of committed batches.")
    batches_replayed: int = stat("Batches found recorded but not committed at a start, read again and completed.")
    batches_unrecoverable: int = stat(
        "Recorded batches the stream no longer holds as recorded (retention, a deleted stream): skipped, logged."
    )
    deliveries_skipped: int = stat("Deliveries before the offset asked for (already counted), credited back.")
    offsets_missing: int = stat("Offsets the stream skipped between what was asked for and what came (retention).")
    offset_received: int | None = stat("Offset of the newest message taken in.", GAUGE, default=None)
    offset_committed: int | None = stat(
        "Offset the next batch starts at (everything before is committed).", GAUGE, default=None
    )
    consumer_lag: int | None = stat(
        "Messages in the stream past offset_committed, where the broker tells it (RabbitMQ 3.10 does not).",
        GAUGE,
        default=None,
    )

    def snapshot(self) -> dict:
        return snapshot(self)


@attrs.define
class SelfStats:
    datagrams: int = stat("UDP datagrams read.")
    lines_ok: int = stat("UDP lines counted.")
    lines_bad: Counter = stat("UDP lines rejected, by reason.", label="reason", factory=Counter)
    http_events_ok: int = stat("Events taken in over HTTP.")
    http_bad_requests: Counter = stat("HTTP requests rejected, by reason.", label="reason", factory=Counter)
    http_connections_refused: Counter = stat(
        "HTTP connections answered 503 and closed at once for a connection cap, by reason.",
        label="reason",
        factory=Counter,
    )
    http_timeouts: Counter = stat(
        "HTTP connections closed for a timeout: a request that did not arrive whole in time, or an idle connection.",
        label="timeout",
        factory=Counter,
    )
    http_accept_failures: Counter = stat(
        "Times accepting HTTP connections failed (out of open files, ...) and paused a moment, by reason.",
        label="reason",
        factory=Counter,
    )
    events_dropped: Counter = stat(
        "Parsed events not taken in, by reason (limits, stopping).", label="reason", factory=Counter
    )
    unique_members_dropped: int = stat("Members of unique counts past the bound per key between flushes.")
    buckets_expired: Counter = stat(
        "Aggregation keys skipped at flush as past retention, by interval (seconds).", label="interval", factory=Counter
    )
    flushes_ok: int = stat("Flushes (batches or parts of batches) written.")
    flushes_failed: int = stat("Flush attempts that failed (the batch is kept for retry).")
    flush_loop_restarts: int = stat("Times the flush timer stopped on an unexpected error and was started again.")
    writes_refused: int = stat("Tag writes (or folds) the store refused for good (dropped).")
    buckets_folded: int = stat("Finest buckets (per pk, metric and parent) folded into the coarser sizes.")
    folds_failed: int = stat("Fold attempts that failed (tried again on the next tick).")
    writes_repeated: int = stat("Writes a retry found already applied (not counted twice).")
    events_flushed: int = stat("Events written to the store.")
    last_flush_at: float | None = stat("Unix time of the last flush that succeeded.", GAUGE, default=None)
    last_flush_seconds: float | None = stat("Seconds the last flush that succeeded took.", GAUGE, default=None)
    flush_seconds_total: float = stat(
        "Seconds spent in flushes that succeeded (divide by flushes_ok for the mean).", default=0.0
    )
    last_error: str | None = stat("The last store or flush error.", TEXT, default=None)
    last_error_at: float | None = stat("Unix time of the last store error.", GAUGE, default=None)
    store_reachable: bool | None = stat(
        "1 if the store answered the last flush or check, 0 if not.", GAUGE, default=None, across=ALL
    )
    store_unreachable_since: float | None = stat("Unix time the store stopped answering.", GAUGE, default=None)
    collectd: CollectdStats = stat("The collectd receiver.", SECTION, factory=CollectdStats)
    amqp: AmqpStats = stat("The RabbitMQ input.", SECTION, factory=AmqpStats)

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
            return False, {
                "status": "unavailable",
                "reason": "store_unreachable",
                "since": self.store_unreachable_since,
            }
        if self.amqp.state not in ("off", "standby") and not self.amqp.connected:
            return False, {"status": "unavailable", "reason": "broker_unreachable", "error": self.amqp.last_error}
        return True, {"status": "ok"}

    def snapshot(self) -> dict:
        return snapshot(self)


@attrs.frozen
class DaemonStatus:
    """The state of the daemon at one moment, gathered from its parts when ``/stats`` or ``/metrics`` asks."""

    events_accepted: int = stat("Events taken in (every input) since the start.")
    dimension_names_folded: Mapping[str, int] = stat(
        "Dimension names counted as _other, by reason (cardinality limits).", label="reason", factory=dict
    )
    dimension_names_tracked: int = stat("Dimension names remembered to enforce --max-children.", GAUGE, across=SUM)
    pending_keys: int = stat("Aggregation keys waiting for the next flush.", GAUGE, across=SUM)
    pending_events: int = stat("Events waiting for the next flush.", GAUGE, across=SUM)
    backlog_events: int = stat("Events in a batch a failed flush left for retry.", GAUGE, across=SUM)
    store_url: str = stat("The store's URL, its password masked.", TEXT, default="")
    schema: str = stat("The schema the daemon writes with.", INFO, default="")
    http_connections: int | None = stat("HTTP connections open now.", GAUGE, default=None, across=SUM)
    http_connections_limit: int | None = stat(
        "Most HTTP connections open at once (--http-max-connections).", GAUGE, default=None
    )
    open_files_limit: int | None = stat("The process's open-files limit (soft).", GAUGE, default=None)
    udp_receive_buffer: int | None = stat("Bytes of UDP receive buffer the kernel granted.", GAUGE, default=None)
    collectd_series: int = stat("collectd COUNTER/DERIVE series remembered.", GAUGE, across=SUM)
    udp_kernel_drops: int | None = stat("Datagrams the kernel dropped for a full receive buffer.", default=None)
    uptime_seconds: float = stat("Seconds since the daemon started.", GAUGE, default=0.0)
    version: str = stat("The daemon's version.", INFO, default="")


@attrs.frozen
class WorkersStatus:
    """With ``--workers``: the workers as their snapshots in the store show them, added to ``/stats``."""

    worker: int = stat("Index of the worker that answered.", GAUGE)
    workers: int = stat("Workers whose self-stats are in the store (published within three flush intervals).", GAUGE)
    workers_expected: int = stat("Workers the daemon runs (--workers).", GAUGE)
    workers_restarted: int = stat("Times a worker process ended and was started again (since the daemon started).")
    per_worker: Mapping[str, dict] = stat("Each worker's own self-stats, by index.", TEXT, factory=dict)


SUMMED = {"lines_bad": "lines_bad_total"}  # counts by key also shown as their sum in /stats


def snapshot(record) -> dict:
    """A self-stats record (or several, merged in order) as ``/stats`` shows it: counts by key as dicts."""
    found: dict = {}
    for field in attrs.fields(type(record)):
        value = getattr(record, field.name)
        if attrs.has(type(value)):
            value = snapshot(value)
        elif isinstance(value, Mapping):
            value = {str(key): count for key, count in value.items()}
        found[field.name] = value
        if field.name in SUMMED:
            found[SUMMED[field.name]] = sum(value.values())
    return found


def _descriptions(record: type, section: str = "") -> dict[tuple[str, str], Stat]:
    found = {}
    for field in attrs.fields(record):
        found[section, field.name] = field.metadata["stat"]
        if field.metadata["stat"].kind == SECTION:
            found.update(_descriptions(field.default.factory, f"{section}{field.name}."))
    return found


_DESCRIBED = {**_descriptions(SelfStats), **_descriptions(DaemonStatus), **_descriptions(WorkersStatus)}


def describe(name: str, section: str = "") -> Stat | None:
    """What the field ``name`` of a snapshot (inside ``section``, as ``collectd.``) is; None if not a stats field."""
    return _DESCRIBED.get((section, name))


def total(snapshots: Sequence[Mapping], own: Mapping, section: str = "") -> dict:
    """
    The total of several workers' snapshots, field by field as each field says
    (:class:`Stat`'s ``across``): counts summed (by key, for counts by key), the levels
    marked so summed, flags true in all or in any, the rest ``own``'s (the answering worker's).
    """
    found: dict = {}
    for name, value in own.items():
        described = describe(name, section) or Stat("")  # a field not described (lines_bad_total) is a count
        values = [snapshot.get(name) for snapshot in snapshots]
        if described.kind == SECTION and isinstance(value, Mapping):
            found[name] = total([v for v in values if isinstance(v, Mapping)], value, f"{section}{name}.")
        elif described.across == SUM and isinstance(value, Mapping):
            summed: Counter = Counter()
            for counts in values:
                if isinstance(counts, Mapping):
                    summed.update({key: count for key, count in counts.items() if isinstance(count, (int, float))})
            found[name] = dict(summed)
        elif described.across == SUM and isinstance(value, (int, float)) and not isinstance(value, bool):
            found[name] = sum(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
        elif described.across == ALL and value is not None:
            found[name] = all(v is True for v in values)
        elif described.across == ANY and value is not None:
            found[name] = any(v is True for v in values)
        else:
            found[name] = value
    return found
