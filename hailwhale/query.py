"""
Query planning and evaluation, shared by HTTP and Python.

A query object says which hash fields to read (:meth:`reads`) and turns the replies
into the answer (:meth:`answer`); the caller does the IO in between, blocking or in a
thread.  Reads of one query touch one pk, so one hash tag.
"""

from collections.abc import Mapping, Sequence

import attrs

from hailwhale import fields, formula, keys, lenient, periods
from hailwhale.encoding import Path, encode
from hailwhale.fields import FieldError, Limits
from hailwhale.formula import Formula
from hailwhale.periods import Window
from hailwhale.schema import Schema


@attrs.frozen
class Read:
    """One HMGET: these fields of this hash."""

    key: str
    fields: tuple[str, ...]


Reply = Sequence[bytes | str | None]


@attrs.frozen
class SeriesQuery:
    """The per-bucket values of some metrics for some dimension nodes of one pk."""

    pk: Path
    nodes: tuple[Path, ...]
    metrics: tuple[str, ...]
    window: Window

    def _groups(self) -> list[tuple[str, list[tuple[str, str]]]]:
        by_parent: dict[str, list[tuple[str, str]]] = {}
        for node in self.nodes:
            encoding = encode(node)
            group = by_parent.setdefault(keys.parent_encoding(node), [])
            group.extend((encoding, metric) for metric in self.metrics)
        return list(by_parent.items())

    def reads(self) -> list[Read]:
        tag = keys.tag(self.pk)
        groups = self._groups()
        return [
            Read(
                keys.data_key(tag, self.window.interval, bucket, parent),
                tuple(keys.field(metric, encoding) for encoding, metric in pairs),
            )
            for bucket in self.window.buckets
            for parent, pairs in groups
        ]

    def series(self, replies: Sequence[Reply]) -> dict[str, dict[str, list[float]]]:
        """node encoding -> metric -> one value per bucket of the window."""
        result = {encode(node): {metric: [] for metric in self.metrics} for node in self.nodes}
        groups = self._groups()
        replies_iter = iter(replies)
        for _bucket in self.window.buckets:
            for _parent, pairs in groups:
                for (encoding, metric), value in zip(pairs, next(replies_iter)):
                    result[encoding][metric].append(float(value) if value is not None else 0.0)
        return result


def _inputs(formulas: Sequence[Formula]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for formula in formulas for name in formula.inputs))


@attrs.frozen
class TotalsQuery:
    """``{period: {dimension: {metric: total}}}``; ratios are sum/sum."""

    parts: tuple[tuple[str, SeriesQuery], ...]
    formulas: tuple[Formula, ...]

    def reads(self) -> list[Read]:
        return [read for _, part in self.parts for read in part.reads()]

    def answer(self, replies: Sequence[Reply]) -> dict[str, dict[str, dict[str, float]]]:
        result = {}
        offset = 0
        for label, part in self.parts:
            count = len(part.reads())
            series = part.series(replies[offset : offset + count])
            offset += count
            result[label] = {
                node: {f.text: f.evaluate({m: sum(values) for m, values in metrics.items()}) for f in self.formulas}
                for node, metrics in series.items()
            }
        return result


@attrs.frozen
class PlotpointsQuery:
    """``{dimension: {metric: [[epoch_ms, value], ...]}}``, dense and zero-filled."""

    part: SeriesQuery
    formulas: tuple[Formula, ...]

    def reads(self) -> list[Read]:
        return self.part.reads()

    def answer(self, replies: Sequence[Reply]) -> dict[str, dict[str, list[list[float]]]]:
        series = self.part.series(replies)
        times = [bucket * 1000 for bucket in self.part.window.buckets]
        result = {}
        for node, metrics in series.items():
            result[node] = {}
            for formula in self.formulas:
                columns = [metrics[name] for name in formula.inputs]
                values = [formula.evaluate(dict(zip(formula.inputs, row))) for row in zip(*columns)]
                result[node][formula.text] = [[t, v] for t, v in zip(times, values)]
        return result


def totals(pk: Path, node: Path, formulas: tuple[Formula, ...], period_texts: Sequence[str], now: float, schema: Schema) -> TotalsQuery:
    parts = tuple(
        (text, SeriesQuery(pk, (node,), _inputs(formulas), periods.resolve(text, now, schema))) for text in period_texts
    )
    return TotalsQuery(parts, formulas)


def plotpoints(pk: Path, node: Path, formulas: tuple[Formula, ...], period_text: str, now: float, schema: Schema) -> PlotpointsQuery:
    window = periods.resolve(period_text, now, schema)
    return PlotpointsQuery(SeriesQuery(pk, (node,), _inputs(formulas), window), formulas)


DEFAULT_TOTALS_PERIODS = ("1m:1h", "1h:1d", "1d:1w", "1d:1mo", "1d:1y")
DEFAULT_PLOTPOINTS_PERIOD = "thirty"


def _first(params: Mapping[str, object], *names: str) -> object:
    for name in names:
        if params.get(name) not in (None, ""):
            return params[name]
    return None


def _period_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = lenient.decode(value)
        except lenient.LenientError as error:
            raise FieldError("periods", str(error)) from None
    if value is None or value == [] or value == "":
        return DEFAULT_TOTALS_PERIODS
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise FieldError("periods", "periods must be names like today or 1h:1d")
    return tuple(dict.fromkeys(items))


def totals_from_params(params: Mapping[str, object], now: float, schema: Schema, limits: Limits) -> TotalsQuery:
    """The ``/totals`` query: pk, dimensions (or dimension), metrics (or metric), periods (or period)."""
    return totals(
        fields.pk(params.get("pk"), limits),
        fields.node(_first(params, "dimensions", "dimension"), limits),
        formula.parse_list(_first(params, "metrics", "metric")),
        _period_list(_first(params, "periods", "period")),
        now,
        schema,
    )


def plotpoints_from_params(params: Mapping[str, object], now: float, schema: Schema, limits: Limits) -> PlotpointsQuery:
    """The ``/plotpoints`` query: pk, dimensions (or dimension), metrics (or metric), period."""
    period = _first(params, "period", "periods")
    if period is not None and not isinstance(period, str):
        raise FieldError("period", "one period, like thirty or 1h:1d")
    return plotpoints(
        fields.pk(params.get("pk"), limits),
        fields.node(_first(params, "dimensions", "dimension"), limits),
        formula.parse_list(_first(params, "metrics", "metric")),
        period or DEFAULT_PLOTPOINTS_PERIOD,
        now,
        schema,
    )
