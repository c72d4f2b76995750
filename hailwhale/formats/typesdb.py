"""
collectd's types.db: the names of each type's data sources, in order.

A value list carries its values' data-source types but not their names; the names come
from the type.  :data:`BUILTIN` holds the common multi-value types, so the common plugins
are named right without a types.db file; :func:`parse` reads a file in types.db syntax
(``name  ds:TYPE:min:max, ds:TYPE:min:max``) to add or override types.  Data-source
names are letters, digits and ``_`` (as collectd writes them), so they are valid metric
names.
"""

import re
from collections.abc import Mapping

Types = Mapping[str, tuple[str, ...]]

_RX_TX = ("rx", "tx")
_READ_WRITE = ("read", "write")
BUILTIN: Types = {
    "load": ("shortterm", "midterm", "longterm"),
    **dict.fromkeys(
        (
            "if_octets",
            "if_packets",
            "if_errors",
            "if_dropped",
            "io_octets",
            "io_packets",
            "node_octets",
            "memcached_octets",
            "mysql_octets",
        ),
        _RX_TX,
    ),
    **dict.fromkeys(
        (
            "disk_octets",
            "disk_ops",
            "disk_time",
            "disk_merged",
            "disk_latency",
            "io_ops",
            "ps_disk_octets",
            "ps_disk_ops",
        ),
        _READ_WRITE,
    ),
    "disk_io_time": ("io_time", "weighted_io_time"),
    "ps_cputime": ("user", "syst"),
    "ps_pagefaults": ("minflt", "majflt"),
    "vmpage_faults": ("minflt", "majflt"),
    "vmpage_io": ("in", "out"),
    "ps_count": ("processes", "threads"),
    "df": ("used", "free"),
    "compression": ("uncompressed", "compressed"),
    "dns_octets": ("queries", "responses"),
    "smart_attribute": ("current", "worst", "threshold", "pretty"),
    "arc_size": ("current", "target", "minlimit", "maxlimit"),
}

_DATA_SOURCE = re.compile(r"^(\w{1,63}):(GAUGE|DERIVE|COUNTER|ABSOLUTE):[^:\s]+:[^:\s]+$", re.IGNORECASE | re.ASCII)


def parse(text: str) -> tuple[dict[str, tuple[str, ...]], list[int]]:
    """The types of a types.db text, and the numbers of the lines that could not be read."""
    types: dict[str, tuple[str, ...]] = {}
    bad: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, *specs = [word for word in re.split(r"[\s,]+", line) if word]
        matches = [found for spec in specs if (found := _DATA_SOURCE.match(spec))]
        if not specs or len(matches) != len(specs):
            bad.append(number)
            continue
        types[name] = tuple(m.group(1) for m in matches)
    return types, bad


def data_source_names(types: Types, type_name: str, count: int) -> tuple[str, ...]:
    """
    The names of ``count`` values of ``type_name``: the type's own, else ``value`` for a
    single value and ``value0``, ``value1``... for several (an unknown type, or a count
    that does not match the known type).
    """
    names = types.get(type_name)
    if names is not None and len(names) == count:
        return names
    return ("value",) if count == 1 else tuple(f"value{i}" for i in range(count))
