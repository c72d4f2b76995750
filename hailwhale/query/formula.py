"""
Metric formulas for queries.

A formula is a term, or a ratio of two terms, with an optional suffix:

- a term is a stored metric (``revenue``), a number (``5``), a time unit (``seconds``,
  ``minutes``, ``hours``, ``days``, ``weeks``: the point's length in that unit), ``_count``
  (the number of points in the window) or ``_days_in_month`` (days in the point's month);
- ``a/b`` is a/b per point in a series and sum(a)/sum(b) over the window in a total,
  never a sum of ratios; dividing by 0 gives 0;
- ``:cumulative`` makes a series a running total (its total is unchanged), ``:last`` a
  forward-filled level: a point with no data takes the last value before it (its total
  is the level at the end of the window);
- a term may be a quantile of a distribution: ``latency.dist:p99`` (``:p50``, ``:p999``,
  ``:min``, ``:max``, see :mod:`hailwhale.model.kinds`), over each point or the whole
  window (the quantile of every value in it, never an average of quantiles); ``ms:p99``
  reads ``ms.dist:p99``, statsd's timers.

In totals, a number, ``_count`` and ``_days_in_month`` are levels (``revenue/5`` is the
revenue over 5, ``revenue/_count`` the mean per point), while a time unit adds up over
the window (``revenue/days`` over ``thirty`` is revenue per day).
"""

import calendar
import datetime
import itertools
import re
from collections.abc import Mapping, Sequence

import attrs

from hailwhale.model import fields, kinds, lenient
from hailwhale.model.fields import FieldError

TIME_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
SUFFIXES = {
    "cumulative": "cumulative",
    "sum": "cumulative",
    "add": "cumulative",
    "+": "cumulative",
    "last": "last",
    "level": "last",
    "set": "last",
    "_": "last",
}

Points = Sequence[tuple[int, int]]
_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")


class FormulaError(FieldError):
    def __init__(self, message: str, field: str = "metrics"):
        super().__init__(field, message, "bad_formula")


@attrs.frozen
class Term:
    name: str
    stored: bool

    def series(self, values: Mapping[str, Sequence[float]], points: Points) -> list[float]:
        if self.stored:
            return list(values[self.name])
        if self.name == "_count":
            return [float(len(points))] * len(points)
        if self.name == "_days_in_month":
            return [float(_days_in_month(start, end)) for start, end in points]
        if self.name in TIME_UNITS:
            return [(end - start) / TIME_UNITS[self.name] for start, end in points]
        return [float(self.name)] * len(points)

    def total(self, totals: Mapping[str, float], points: Points) -> float:
        if self.stored:
            return totals[self.name]
        if self.name in TIME_UNITS:
            return (points[-1][1] - points[0][0]) / TIME_UNITS[self.name]
        return self.series({}, points[-1:] if self.name == "_days_in_month" else points)[0]


@attrs.frozen
class Formula:
    text: str
    numerator: Term
    denominator: Term | None = None
    suffix: str | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        terms = (self.numerator,) if self.denominator is None else (self.numerator, self.denominator)
        return tuple(term.name for term in terms if term.stored)

    @property
    def needs_series(self) -> bool:
        """Whether the total needs the per-point values (a ``:last`` level does)."""
        return self.suffix == "last"

    def series(self, values: Mapping[str, Sequence[float]], points: Points) -> list[float]:
        """One value per point, from each stored metric's per-point values."""
        top = self.numerator.series(values, points)
        if self.suffix == "cumulative":
            top = list(itertools.accumulate(top))
        if self.denominator is not None:
            bottom = self.denominator.series(values, points)
            if self.suffix == "cumulative":
                bottom = list(itertools.accumulate(bottom))
            top = [divide(a, b) for a, b in zip(top, bottom)]
        if self.suffix == "last":
            top = list(_forward_fill(top))
        return top

    def total(
        self, totals: Mapping[str, float], points: Points, values: Mapping[str, Sequence[float]] | None = None
    ) -> float:
        """The value over the whole window, from each stored metric's window total."""
        if self.needs_series:
            assert values is not None, "a series formula needs its series"
            return self.series(values, points)[-1]
        top = self.numerator.total(totals, points)
        if self.denominator is None:
            return top
        return divide(top, self.denominator.total(totals, points))


def divide(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _forward_fill(values: Sequence[float]):
    level = 0.0
    for value in values:
        if value:
            level = value
        yield level


def _days_in_month(start: int, end: int) -> int:
    middle = datetime.datetime.fromtimestamp((start + end) / 2, datetime.UTC)
    return calendar.monthrange(middle.year, middle.month)[1]


def _term(text: str, formula_text: str, field: str) -> Term:
    name = text.strip()
    if name in TIME_UNITS or name in ("_count", "_days_in_month") or _NUMBER.match(name):
        return Term(name, stored=False)
    base, colon, qualifier = name.rpartition(":")
    try:
        if colon:
            metric = fields.metric_name(base)
            distribution = metric if kinds.metric_kind(metric) == kinds.DISTRIBUTION else f"{metric}.dist"
            if kinds.quantile_of(f"{distribution}:{qualifier}") is None:
                raise FormulaError(
                    f"cannot parse {formula_text!r}: {qualifier!r} is neither a quantile (:p50, :p99, :p999, :min, "
                    ":max) nor a suffix (:cumulative, :last)",
                    field,
                )
            return Term(f"{distribution}:{qualifier}", stored=True)
        metric = fields.metric_name(name)
    except FormulaError:
        raise
    except FieldError as error:
        raise FormulaError(f"cannot parse {formula_text!r}: {error.message}", field) from None
    if kinds.metric_kind(metric) == kinds.DISTRIBUTION:
        raise FormulaError(f"cannot parse {formula_text!r}: read a distribution by a quantile, as {metric}:p99", field)
    return Term(metric, stored=True)


def parse(text: object, field: str = "metrics") -> Formula:
    if not isinstance(text, str):
        raise FormulaError(f"a metric must be a name or a formula like a/b, not {text!r}", field)
    body, colon, written = text.rpartition(":")
    suffix: str | None = None
    if colon and written.strip() in SUFFIXES:
        suffix = SUFFIXES[written.strip()]
    else:
        body = text
    parts = body.split("/")
    if len(parts) > 2:
        raise FormulaError(f"cannot parse {text!r}: one '/' at most", field)
    terms = [_term(part, text, field) for part in parts]
    if not any(term.stored for term in terms):
        raise FormulaError(f"cannot parse {text!r}: a formula needs a stored metric", field)
    return Formula(text, terms[0], terms[1] if len(terms) > 1 else None, suffix)


def parse_list(value: object, default: tuple[str, ...] = ("hits",), field: str = "metrics") -> tuple[Formula, ...]:
    """
    Formulas from a parameter: a name, a list of names, or the original's dict form
    (``{"dollars": "hits", "hits": 1}`` means ``dollars/hits`` and ``hits``).
    """
    if isinstance(value, str):
        try:
            value = lenient.decode(value)
        except lenient.LenientError as error:
            raise FormulaError(str(error), field) from None
    if value is None or value == "" or value == [] or value == {}:
        value = list(default)
    if isinstance(value, dict):
        value = [key if denominator == 1 else f"{key}/{denominator}" for key, denominator in value.items()]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise FormulaError(f"metrics must be a name, a list or a dict, not {value!r}", field)
    formulas = tuple(parse(item, field) for item in value)
    return tuple({formula.text: formula for formula in formulas}.values())
