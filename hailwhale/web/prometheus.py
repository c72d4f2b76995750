"""
``/metrics``: the daemon's self-stats in the Prometheus text format (prometheus_client).

One collector reads the same snapshot ``/stats`` shows, at each scrape, and turns every
field into a metric, so a field added to the snapshot is exported without more code:

- a number is ``hailwhale_<field>``: a counter (``_total``) unless :data:`GAUGES` names it;
- a dict of counts (reason, interval or outcome -> count) is one metric labelled by its
  key (:data:`LABELS` names the label; ``key`` otherwise);
- a nested section (``collectd``) is prefixed with its name;
- a boolean is a gauge of 1 or 0; None (not known yet) leaves the metric out;
- text is left out, except ``version`` and ``schema`` in ``hailwhale_info``.

The registry is built per daemon (:func:`registry`), never the module-level default one.
"""

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

PREFIX = "hailwhale"
GAUGES = frozenset({
    "pending_keys", "pending_events", "backlog_events", "dimension_names_tracked", "collectd_series",
    "udp_receive_buffer", "uptime_seconds", "last_flush_at", "last_flush_seconds", "last_error_at",
    "store_reachable", "store_unreachable_since",
})
LABELS = {
    "lines_bad": "reason", "http_bad_requests": "reason", "events_dropped": "reason",
    "dimension_names_folded": "reason", "buckets_expired": "interval", "packets_bad": "reason",
    "values_skipped": "reason", "cumulative": "outcome",
}
SKIPPED = frozenset({"lines_bad_total"})  # the sum of lines_bad: Prometheus sums for itself
INFO = ("version", "schema")
HELP = {
    "datagrams": "UDP datagrams read.",
    "lines_ok": "UDP lines counted.",
    "lines_bad": "UDP lines rejected, by reason.",
    "http_events_ok": "Events taken in over HTTP.",
    "http_bad_requests": "HTTP requests rejected, by reason.",
    "events_accepted": "Events taken in (every input) since the start.",
    "events_dropped": "Parsed events not taken in, by reason (limits, stopping).",
    "events_flushed": "Events written to the store.",
    "dimension_names_folded": "Dimension names counted as _other, by reason (cardinality limits).",
    "unique_members_dropped": "Members of unique counts past the bound per key between flushes.",
    "buckets_expired": "Aggregation keys skipped at flush as past retention, by interval (seconds).",
    "flushes_ok": "Flushes (batches or parts of batches) written.",
    "flushes_failed": "Flush attempts that failed (the batch is kept for retry).",
    "flush_seconds": "Seconds spent in flushes that succeeded (divide by flushes_ok for the mean).",
    "writes_refused": "Tag writes the store refused for good (dropped).",
    "writes_repeated": "Writes a retry found already applied (not counted twice).",
    "pending_keys": "Aggregation keys waiting for the next flush.",
    "pending_events": "Events waiting for the next flush.",
    "backlog_events": "Events in a batch a failed flush left for retry.",
    "store_reachable": "1 if the store answered the last flush or check, 0 if not.",
    "store_unreachable_since": "Unix time the store stopped answering.",
    "udp_kernel_drops": "Datagrams the kernel dropped for a full receive buffer.",
    "uptime_seconds": "Seconds since the daemon started.",
    "last_flush_at": "Unix time of the last flush that succeeded.",
    "last_flush_seconds": "Seconds the last flush that succeeded took.",
    "last_error_at": "Unix time of the last store error.",
    "dimension_names_tracked": "Dimension names remembered to enforce --max-children.",
    "udp_receive_buffer": "Bytes of UDP receive buffer the kernel granted.",
    "collectd_series": "collectd COUNTER/DERIVE series remembered.",
}


class SnapshotCollector(Collector):
    """Collects a metric per field of ``snapshot()`` at each scrape."""

    def __init__(self, snapshot: Callable[[], Mapping[str, object]]):
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        info = {name: str(snapshot[name]) for name in INFO if snapshot.get(name) is not None}
        if info:
            yield InfoMetricFamily(PREFIX, "The daemon's version and schema.", value=info)
        yield from families(snapshot, PREFIX)


def families(snapshot: Mapping[str, object], prefix: str, section: str = "") -> Iterator[Metric]:
    """The metric families of a snapshot's fields (see the module docstring)."""
    for field, value in snapshot.items():
        name = f"{prefix}_{field}"
        if field in SKIPPED or value is None or isinstance(value, str):
            continue
        help_text = HELP.get(section + field.removesuffix("_total"), f"The /stats field {section}{field}.")
        if isinstance(value, Mapping):
            if field in LABELS or all(isinstance(v, (int, float)) for v in value.values()):
                family = _family(field, name, help_text, [LABELS.get(field, "key")])
                for key, count in sorted(value.items(), key=lambda item: str(item[0])):
                    family.add_metric([str(key)], count)
                yield family
            else:
                yield from families(value, name, f"{section}{field}.")
        elif isinstance(value, (bool, int, float)):
            family = _family(field, name, help_text)
            family.add_metric([], float(value))
            yield family


def _family(field: str, name: str, help_text: str, labels: list[str] | None = None) -> Metric:
    if field in GAUGES:
        return GaugeMetricFamily(name, help_text, labels=labels)
    return CounterMetricFamily(name, help_text, labels=labels)


def registry(snapshot: Callable[[], Mapping[str, object]], process: bool = True) -> CollectorRegistry:
    """A registry of its own with the snapshot's metrics (and the process's memory, CPU and files)."""
    built = CollectorRegistry()
    built.register(SnapshotCollector(snapshot))
    if process:
        ProcessCollector(registry=built)
    return built


def exposition(built: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """(body, Content-Type) for a scrape: the Prometheus text format, or OpenMetrics if ``accept`` asks for it."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(built), content_type
