"""
Shortcuts that read the lines dominating traffic faster, with the answers of
:func:`hailwhale.formats.lines.parse_line`.

A JSON object of the usual shape is decoded by msgspec in one typed pass, with its pk and
dimensions taken as raw JSON text and interpreted once per distinct text
(:class:`FieldCache`); anything unusual (a bad or lenient value, a gauge, an alias) goes
the way of :func:`~hailwhale.formats.lines.parse_line`, so errors and their reasons are
the same.  Likewise a plain statsd counter (``name:value|c``, perhaps with a sample rate)
is matched by one regular expression, its name read once per distinct name.
"""

import json
import math
import re
from collections import Counter
from typing import Annotated

import msgspec

from hailwhale.formats.lines import form_of, line_text, parse_text
from hailwhale.model import fields, kinds
from hailwhale.model.events import Event
from hailwhale.model.fields import MAX_METRIC, NO_LEAVES, FieldError, Leaves, Limits
from hailwhale.model.paths import Path

CACHED_FIELDS = 1 << 17  # distinct pk and dimension texts remembered (then forgotten all at once)

_NULL = msgspec.Raw(b"null")
_Amount = (
    Annotated[int, msgspec.Meta(ge=-int(MAX_METRIC), le=int(MAX_METRIC))]
    | Annotated[float, msgspec.Meta(ge=-MAX_METRIC, le=MAX_METRIC)]
)


_NUMBER = rb"[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?"
_PLAIN_COUNTER = re.compile(rb"([\w.\-]+):(" + _NUMBER + rb")\|c(?:\|@(" + _NUMBER + rb"))?")
_WHOLE_COUNTERS = re.compile(rb"^([\w.\-]+):([-+]?[0-9]{1,6})\|c$", re.MULTILINE)


class _UsualLine(msgspec.Struct):
    """The usual shape of a JSON line; a line of any other shape fails to decode as one."""

    pk: msgspec.Raw = _NULL
    dimensions: msgspec.Raw = _NULL
    dimension: msgspec.Raw = _NULL
    metrics: dict[str, _Amount] | None = None
    at: int | float | str | None = None


class FieldCache:
    """Pk paths and dimension leaves by the JSON text (or statsd name) they were read from; bounded."""

    def __init__(self, limits: Limits, size: int = CACHED_FIELDS):
        self._limits = limits
        self._size = size
        self._pks: dict[bytes, Path] = {}  # by JSON text
        self._statsd_pks: dict[bytes, Path] = {}  # by statsd name (1.5 is one name in JSON, two in statsd)
        self._leaves: dict[bytes, Leaves] = {}
        self._sums: dict[tuple[str, ...], bool] = {}  # metric names -> whether all are valid names of sums

    def pk(self, text: bytes) -> Path:
        found = self._pks.get(text)
        if found is None:
            found = fields.pk(json.loads(text), self._limits)
            self._remember(self._pks, text, found)
        return found

    def statsd_pk(self, name: bytes) -> Path:
        found = self._statsd_pks.get(name)
        if found is None:
            found = fields.pk(name.decode().split("."), self._limits)
            self._remember(self._statsd_pks, name, found)
        return found

    def leaves(self, text: bytes) -> Leaves:
        found = self._leaves.get(text)
        if found is None:
            found = fields.leaves(json.loads(text), self._limits)
            self._remember(self._leaves, text, found)
        return found

    def all_sums(self, metrics: tuple[str, ...]) -> bool:
        """Whether every one of ``metrics`` is a valid metric name of a sum (not a gauge or a unique count)."""
        found = self._sums.get(metrics)
        if found is None:
            try:
                found = all(kinds.metric_kind(fields.metric_name(metric)) == kinds.SUM for metric in metrics)
            except FieldError:
                found = False
            self._remember(self._sums, metrics, found)
        return found

    def _remember(self, cache: dict, text, value) -> None:
        if len(cache) >= self._size:
            cache.clear()
        cache[text] = value


class LineParser:
    """:func:`parse_line` for one set of limits, with fast paths for the usual lines."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._fields = FieldCache(limits)
        self._decode_usual = msgspec.json.Decoder(_UsualLine).decode

    def usual(self, line: bytes, now: float) -> tuple[Path, Leaves, dict[str, int | float], float] | None:
        """
        (pk, dimension leaves, sums, time) of a JSON line of the usual shape, all of whose
        metrics are sums, as :func:`parse_line` reads it; None for any other line.
        """
        if line[:1] != b"{" or len(line) > self.limits.max_line_bytes or not line.isascii():
            return None
        try:
            usual = self._decode_usual(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        metrics = usual.metrics
        if (
            metrics is None
            or len(metrics) + ("hits" not in metrics) > self.limits.max_metrics
            or not self._fields.all_sums(tuple(metrics))
        ):
            return None
        dimensions = usual.dimensions if usual.dimensions != _NULL else usual.dimension
        try:
            pk = self._fields.pk(bytes(usual.pk))
            leaves = self._fields.leaves(bytes(dimensions))
            at = now if usual.at is None else fields.timestamp(usual.at, now, self.limits)
        except (ValueError, RecursionError):  # a FieldError or worse: the general way tells which
            return None
        if "hits" not in metrics:
            metrics["hits"] = 1
        return pk, leaves, metrics, at

    def counter(self, line: bytes) -> tuple[Path, Leaves, dict[str, float]] | None:
        """
        (pk, dimension leaves, sums) of a plain statsd counter line, as :func:`parse_line` reads it; None for
        any other.
        """
        match = _PLAIN_COUNTER.fullmatch(line)
        if match is None:
            return None
        name, value, rate = match.groups()
        try:
            pk = self._fields.statsd_pk(name)
            amount, rate = float(value), 1.0 if rate is None else float(rate)
        except ValueError:  # a FieldError, or not a number: the general way tells which
            return None
        if not (abs(amount) <= MAX_METRIC and 0 < rate <= 1):
            return None
        return pk, NO_LEAVES, {"hits": 1, "count": math.fsum((amount,)) / rate}

    def whole_counters(self, lines: list[bytes]) -> list[tuple[bytes, Path, float, int]] | None:
        """
        If every one of ``lines`` is a plain statsd counter of a whole number under a million
        (``name:3|c``, no rate, no tags): each distinct line, in order of appearance, with its
        pk, its count (as :func:`parse_line` reads them) and how many times it came; None
        otherwise.  Equal lines are counted together, in C, and one regular expression reads
        the distinct ones.
        """
        if not lines or not lines[0].endswith(b"|c"):
            return None  # the usual case when they are not: no need to read them all
        counts = Counter(lines)
        found = _WHOLE_COUNTERS.findall(b"\n".join(counts))
        if len(found) != len(counts):
            return None
        pk = self._fields.statsd_pk
        try:
            return [
                (line, pk(name), float(value), times) for (line, times), (name, value) in zip(counts.items(), found)
            ]
        except ValueError:  # a bad name: the general way tells which
            return None

    def unusual(self, line: bytes, now: float) -> tuple[Event, bool]:
        """
        The event of a line :meth:`usual` and :meth:`counter` do not take, as :func:`parse_line`
        reads it, and whether it is a statsd line of sums only without a time (a counter,
        timing, histogram or distribution): such a line always makes the same event but for
        its arrival time.
        """
        text = line_text(line, self.limits)
        event = parse_text(text, now, self.limits)
        plain_sums = (
            not event.levels
            and not event.members
            and not event.samples
            and "|T" not in text
            and form_of(text) == "statsd"
        )
        return event, plain_sums
