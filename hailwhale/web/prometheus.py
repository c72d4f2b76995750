"""
``/metrics``: the daemon's self-stats in the Prometheus text format (prometheus_client).

One collector reads the same snapshot ``/stats`` shows, at each scrape, and turns every
field into a metric, as :mod:`hailwhale.aggregate.selfstats` describes it (its kind, help
and label), so a field added there is exported without more code:

- a number is ``hailwhale_<field>``: a counter (``_total``) or a gauge, by its kind;
- a dict of counts (reason, interval or outcome -> count) is one metric labelled by its
  key (the label its field names; ``key`` otherwise);
- a nested section (``collectd``) is prefixed with its name;
- a boolean is a gauge of 1 or 0; None (not known yet) leaves the metric out;
- text (and what is described as text, such as each worker's own stats) is left out,
  except the ``info`` fields (version, schema) in ``hailwhale_info``;
- a field the self-stats do not describe is exported as a counter.

The registry is built per daemon (:func:`registry`), never the module-level default one.
"""

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from hailwhale.aggregate import selfstats

PREFIX = "hailwhale"


class SnapshotCollector(Collector):
    """Collects a metric per field of ``snapshot()`` at each scrape."""

    def __init__(self, snapshot: Callable[[], Mapping[str, object]]):
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        info = {
            name: str(value)
            for name, value in snapshot.items()
            if _described(name, "").kind == selfstats.INFO and value is not None
        }
        if info:
            yield InfoMetricFamily(PREFIX, "The daemon's version and schema.", value=info)
        yield from families(snapshot, PREFIX)


def _described(field: str, section: str) -> selfstats.Stat:
    return selfstats.describe(field, section) or selfstats.Stat(f"The /stats field {section}{field}.")


def families(snapshot: Mapping[str, object], prefix: str, section: str = "") -> Iterator[Metric]:
    """The metric families of a snapshot's fields (see the module docstring)."""
    for field, value in snapshot.items():
        name = f"{prefix}_{field}"
        described = _described(field, section)
        if (
            field in selfstats.SUMMED.values()
            or value is None
            or isinstance(value, str)
            or described.kind == selfstats.TEXT
        ):
            continue
        if isinstance(value, Mapping):
            if described.kind != selfstats.SECTION and all(isinstance(v, (int, float)) for v in value.values()):
                family = _family(described, name, [described.label or "key"])
                for key, count in sorted(value.items(), key=lambda item: str(item[0])):
                    family.add_metric([str(key)], count)
                yield family
            else:
                yield from families(value, name, f"{section}{field}.")
        elif isinstance(value, (bool, int, float)):
            family = _family(described, name)
            family.add_metric([], float(value))
            yield family


def _family(
    described: selfstats.Stat, name: str, labels: list[str] | None = None
) -> GaugeMetricFamily | CounterMetricFamily:
    if described.kind == selfstats.GAUGE:
        return GaugeMetricFamily(name, described.help, labels=labels)
    return CounterMetricFamily(name, described.help, labels=labels)


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
