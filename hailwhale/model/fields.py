"""
Interpreting event and query fields: pk, dimensions, metrics and times.

Every function takes the raw value of one field (already JSON-decoded or a string from
a query string) and returns a plain value, or raises :class:`FieldError` naming the
field.  They are shared by every input (UDP, HTTP, Python) and by the queries.
"""

import datetime
import functools
import json
import math
import re
from collections.abc import Mapping

import attrs

from hailwhale.model import kinds, lenient, sketch
from hailwhale.model.paths import ROOT, Path

Leaves = frozenset[Path]
NO_LEAVES: Leaves = frozenset()  # shared: an empty frozenset is 216 bytes, and most events have no dimensions

_FORBIDDEN_IN_METRIC = re.compile(r"^-|[/:|\x00-\x1f\x7f]")
_MILLISECONDS_FROM = 1e11  # epoch seconds this large are in the year 5138: read them as ms
_MICROSECONDS_FROM = 1e14  # and milliseconds this large too: read them as µs
MAX_METRIC = 1e18  # per event, so that sums stay finite


@attrs.frozen
class Limits:
    """Bounds on what one event may carry (everything here is keyed by user input)."""

    max_line_bytes: int = 8192
    max_pk_depth: int = 8
    max_dimension_nodes: int = 64
    max_metrics: int = 32
    max_name_length: int = 256
    max_future_seconds: int = 86400
    max_members: int = 1000  # members of a unique count one event may name
    max_past_seconds: int | None = None  # None: no bound here (the daemon and Whale bound it by the schema)

    def bounded_in_past(self, seconds: int) -> "Limits":
        """These limits, with the past bounded by ``seconds`` unless it already is."""
        return self if self.max_past_seconds is not None else attrs.evolve(self, max_past_seconds=seconds)


class FieldError(ValueError):
    """A field that cannot be understood; ``reason`` is a short code for self-stats."""

    def __init__(self, field: str, message: str, reason: str | None = None):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.reason = reason or f"bad_{field.split('.')[0]}"


def decoded(value: object, field: str) -> object:
    """A field given as text decoded leniently (JSON or a Python literal); anything else as it is."""
    if isinstance(value, str):
        try:
            return lenient.decode(value)
        except lenient.LenientError as error:
            raise FieldError(field, str(error)) from None
    return value


def first(params: Mapping[str, object], *names: str) -> object:
    """The value of the first of ``names`` given in ``params`` (None and "" are not given): aliases of one field."""
    for name in names:
        if params.get(name) not in (None, ""):
            return params[name]
    return None


def name(value: object, field: str, limits: Limits) -> str:
    """One name inside a pk or dimension path; numbers and booleans become their JSON text."""
    if type(value) is str and len(value) <= limits.max_name_length:
        return value
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, (int, float)) and math.isfinite(value):
        text = json.dumps(value)
    else:
        raise FieldError(field, f"a name must be a string or a number, not {_describe(value)}")
    if len(text) > limits.max_name_length:
        raise FieldError(field, f"a name is longer than {limits.max_name_length} characters", "too_long")
    return text


def pk(value: object, limits: Limits) -> Path:
    """The pk: a string or a path list of names."""
    value = decoded(value, "pk")
    if value is None or value == "" or value == []:
        raise FieldError("pk", "missing")
    if isinstance(value, dict):
        raise FieldError("pk", "must be a string or a list of names, not a dict")
    parts = value if isinstance(value, list) else [value]
    if len(parts) > limits.max_pk_depth:
        raise FieldError("pk", f"deeper than {limits.max_pk_depth} levels", "too_deep")
    path = tuple(name(part, "pk", limits) for part in parts)
    if path[0] == "":
        raise FieldError("pk", "the first name is empty")
    return path


def leaves(value: object, limits: Limits) -> Leaves:
    """
    The dimensions of an event, as the set of leaf paths whose prefixes it counts under.

    ``"country"`` is one leaf ``("country",)``; a list is one path; a dict gives one leaf
    per key with its value appended, nested dicts continuing the path.  A leading ``_``
    names the root, so ``_`` alone (or nothing) is the root only.
    """
    value = decoded(value, "dimensions")
    if value is None or value == "" or value == [] or value == {}:
        return NO_LEAVES
    found: set[Path] = set()
    if isinstance(value, dict):
        _dict_leaves(value, (), found, limits)
    elif isinstance(value, list):
        found.add(tuple([name(part, "dimensions", limits) for part in value]))
    else:
        found.add((name(value, "dimensions", limits),))
    return leaf_set(found, limits)


def leaf_set(found: set[Path], limits: Limits) -> Leaves:
    """Leaf paths made of checked names, as an event's dimensions: rooted, and bounded in nodes."""
    if any(leaf[0] in ("_", "") for leaf in found):
        found = {_rooted(leaf) for leaf in found}
        found.discard(())
    if sum(map(len, found)) > limits.max_dimension_nodes and _distinct_nodes(found) > limits.max_dimension_nodes:
        raise FieldError("dimensions", f"more than {limits.max_dimension_nodes} dimension nodes", "too_many_dimensions")
    return frozenset(found) if found else NO_LEAVES


def _distinct_nodes(found: set[Path]) -> int:
    return len({leaf[:length] for leaf in found for length in range(1, len(leaf) + 1)})


def _dict_leaves(value: dict, prefix: Path, found: set[Path], limits: Limits) -> None:
    if len(prefix) >= limits.max_dimension_nodes:
        raise FieldError("dimensions", "nested too deeply", "too_many_dimensions")
    for key, sub in value.items():
        path = prefix + (name(key, "dimensions", limits),)
        if isinstance(sub, dict):
            if sub:
                _dict_leaves(sub, path, found, limits)
            else:
                found.add(path)
        elif isinstance(sub, list):
            raise FieldError("dimensions", f"{key!r} holds a list; use a nested dict or a path")
        else:
            found.add(path + (name(sub, "dimensions", limits),))


def _rooted(path: Path) -> Path:
    if path and path[0] == "_":
        path = path[1:]
    if path and path[0] == "":
        raise FieldError("dimensions", "the first name of a dimension is empty")
    return path


def node(value: object, limits: Limits) -> Path:
    """One dimension to read: the root, a name, a path list, or a single-chain dict."""
    found = leaves(value, limits)
    if not found:
        return ROOT
    if len(found) > 1:
        raise FieldError("dimensions", "name one dimension to read (a name, a path list or a one-key dict)")
    return next(iter(found))


def metric_name(value: object, field: str = "metrics") -> str:
    if not isinstance(value, str) or not value:
        raise FieldError(field, f"a metric name must be a non-empty string, not {_describe(value)}")
    return _checked_metric_name(value, field)


@functools.lru_cache(maxsize=4096)
def _checked_metric_name(value: str, field: str) -> str:
    if _FORBIDDEN_IN_METRIC.search(value):
        raise FieldError(
            field, f"metric name {value!r} may not start with '-' or contain '/', ':', '|' or control characters"
        )
    if len(value) > 128:
        raise FieldError(field, "a metric name is longer than 128 characters", "too_long")
    return value


@attrs.frozen
class Metrics:
    """
    An event's numbers by kind (see :mod:`hailwhale.model.kinds`): sums, levels, members of
    unique counts, and the values of distributions, already counted in sketch buckets.
    """

    sums: dict[str, int | float]
    levels: dict[str, int | float]
    members: dict[str, frozenset[str]]
    samples: dict[str, dict[str, float]] = attrs.field(factory=dict)


def metric_values(value: object, limits: Limits) -> Metrics:
    """
    The metrics of an event: a dict of name to number, or a list of names (each 1).

    ``hits`` is 1 unless the event sets it.  A gauge (``*.gauge``) is a level; a unique
    count (``*.unique``) takes a member name or a list of them instead of a number; a
    distribution (``*.dist``) takes a value or a list of them.
    """
    value = decoded(value, "metrics")
    if value is None or value == "":
        value = {}
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if isinstance(value, list):
        value = {metric_name(item): 1 for item in value}
    if not isinstance(value, dict):
        raise FieldError("metrics", f"must be a dict of numbers or a list of names, not {_describe(value)}")
    if len(value) + ("hits" not in value) > limits.max_metrics:
        raise FieldError("metrics", f"more than {limits.max_metrics} metrics", "too_many_metrics")
    result = Metrics({}, {}, {})
    for key, amount in value.items():
        kind = kinds.metric_kind(metric_name(key))
        if kind == kinds.UNIQUE:
            result.members[key] = _members(key, amount, limits)
        elif kind == kinds.GAUGE:
            result.levels[key] = _metric_amount(key, amount)
        elif kind == kinds.DISTRIBUTION:
            result.samples[key] = _samples(key, amount, limits)
        elif kind == kinds.QUANTILE:
            raise FieldError(f"metrics.{key}", "a quantile is read, not counted: count the distribution itself")
        else:
            result.sums[key] = _metric_amount(key, amount)
    result.sums.setdefault("hits", 1)
    return result


def _members(key: str, value: object, limits: Limits) -> frozenset[str]:
    items = value if isinstance(value, list) else [value]
    if len(items) > limits.max_members:
        raise FieldError(f"metrics.{key}", f"more than {limits.max_members} members", "too_many_members")
    return frozenset(name(item, f"metrics.{key}", limits) for item in items)


def _samples(key: str, value: object, limits: Limits) -> dict[str, float]:
    items = value if isinstance(value, list) else [value]
    if len(items) > limits.max_members:
        raise FieldError(f"metrics.{key}", f"more than {limits.max_members} values", "too_many_values")
    counts: dict[str, float] = {}
    for item in items:
        name = sketch.bucket(_metric_amount(key, item))
        counts[name] = counts.get(name, 0) + 1
    return counts


def _metric_amount(key: str, amount: object) -> int | float:
    if (type(amount) is int or type(amount) is float) and -MAX_METRIC <= amount <= MAX_METRIC:
        return amount  # the common case, checked cheaply (NaN fails the comparison)
    return number(amount, f"metrics.{key}")


def number(value: object, field: str) -> int | float:
    """A finite number, from a number or from its text (``.50`` included)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise FieldError(field, f"{text[:40]!r} is not a number", "bad_metrics") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(field, f"must be a number, not {_describe(value)}", "bad_metrics")
    if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_METRIC:
        raise FieldError(field, f"must be a finite number within ±{MAX_METRIC:g}", "bad_metrics")
    return value


def timestamp(value: object, now: float, limits: Limits = Limits()) -> float:
    """
    An event time in epoch seconds: from epoch seconds (milliseconds or microseconds when
    the number is too large for seconds or milliseconds of a year before 5000), or ISO 8601
    text or a ``datetime`` (a naive one is UTC).  More than ``limits.max_future_seconds`` ahead, or more than
    ``limits.max_past_seconds`` ago, is an error.
    """
    if value is None or value == "":
        return now
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
        return _within_window(moment.timestamp(), now, limits)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                moment = datetime.datetime.fromisoformat(text)
            except ValueError:
                raise FieldError("at", f"{text[:40]!r} is neither epoch seconds nor ISO 8601") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.UTC)
            return _within_window(moment.timestamp(), now, limits)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FieldError("at", f"must be epoch seconds or ISO 8601 text, not {_describe(value)}")
    if abs(value) >= _MICROSECONDS_FROM:
        value = value / 1e6
    elif abs(value) >= _MILLISECONDS_FROM:
        value = value / 1000.0
    return _within_window(float(value), now, limits)


def _within_window(moment: float, now: float, limits: Limits) -> float:
    if moment > now + limits.max_future_seconds:
        raise FieldError("at", f"more than {limits.max_future_seconds} s in the future", "too_new")
    if limits.max_past_seconds is not None and moment < now - limits.max_past_seconds:
        raise FieldError("at", f"more than {limits.max_past_seconds} s in the past", "too_old")
    return moment


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:40] + '...'}"
