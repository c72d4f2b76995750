"""
Queries, planned without IO: totals, plotpoints and the dimension tree (ranking is
:mod:`hailwhale.query.rank`).

Each is a generator of store requests (:mod:`hailwhale.query.requests`); the same
planner serves HTTP and Python.
"""

import typing
from collections.abc import Generator, Mapping, Sequence

import attrs

from hailwhale.model import fields, kinds, paths
from hailwhale.model.fields import FieldError, Limits, first
from hailwhale.model.paths import Path, encode
from hailwhale.model.schema import Schema
from hailwhale.query import formula, periods
from hailwhale.query.formula import Formula
from hailwhale.query.periods import Piece, Window
from hailwhale.query.requests import Children, Group, Plan, Request, SumPart, SumsRequest

DEFAULT_TOTALS_PERIODS = ("1m:1h", "1h:1d", "1d:1w", "1d:1mo", "1d:1y")
DEFAULT_PLOTPOINTS_PERIOD = "thirty"
MAX_DEPTH = 64
MAX_NODES = 10_000
MEMBERS_PER_PART = 4000
MAX_GROUP_PIECES = 1000  # the server-side group-by unpacks one argument per piece
MAX_VALUES = 2_000_000  # points x dimensions x metrics one series request may read
PRESENCE_METRIC = "hits"


# -- parameters -------------------------------------------------------------------------


@attrs.frozen
class Sort:
    formula: Formula
    descending: bool


@attrs.frozen
class Query:
    pk: Path
    node: Path
    formulas: tuple[Formula, ...]
    windows: tuple[Window, ...]
    schema: Schema
    now: float
    depth: int = 0
    sort: Sort | None = None
    limit: int = 0

    @property
    def order(self) -> Sort:
        return self.sort or Sort(self.formulas[0], descending=True)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _whole(value: object, field: str, default: int, most: int) -> int:
    if value is None:
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise FieldError(field, f"{value!r} is not a whole number", f"bad_{field}") from None
    if not 0 <= number <= most:
        raise FieldError(field, f"must be from 0 to {most}", f"bad_{field}")
    return number


NO_PERIOD = ("None", "none", "null")  # the original's period=None, as its callers wrote it in URLs


def _period_texts(value: object, default: tuple[str, ...]) -> tuple[str, ...]:
    value = fields.decoded(value, "periods")
    if value is None or value == [] or value == "" or value in NO_PERIOD:
        return default
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise FieldError("periods", "periods are names like today, 1h:1d or 2026-11-01..2026-11-30")
    return tuple(dict.fromkeys(items))


def _sort(value: object) -> Sort | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise FieldError("sort", "sort is a metric or formula, with a leading - for descending", "bad_sort")
    text = value.strip()
    order = formula.parse(text.lstrip("-"), field="sort")
    if order.needs_series:
        raise FieldError("sort", f"cannot sort by a level ({text!r}); sort by the metric itself", "bad_sort")
    return Sort(order, descending=text.startswith("-"))


def from_params(
    params: Mapping[str, object], now: float, schema: Schema, limits: Limits, default_periods: tuple[str, ...]
) -> Query:
    """A query from request parameters (HTTP and Python spell them alike)."""
    tz = periods.zone(_text(first(params, "tz")), _text(first(params, "tzoffset")))
    texts = _period_texts(first(params, "periods", "period"), default_periods)
    return Query(
        pk=fields.pk(params.get("pk"), limits),
        node=fields.node(first(params, "dimensions", "dimension"), limits),
        formulas=formula.parse_list(first(params, "metrics", "metric")),
        windows=tuple(periods.resolve(text, now, tz) for text in texts),
        schema=schema,
        now=now,
        depth=_whole(first(params, "depth"), "depth", 0, MAX_DEPTH),
        sort=_sort(first(params, "sort")),
        limit=_whole(first(params, "limit"), "limit", 0, MAX_NODES),
    )


def totals_from_params(params, now, schema, limits) -> Plan:
    return totals(from_params(params, now, schema, limits, DEFAULT_TOTALS_PERIODS))


def plotpoints_from_params(params, now, schema, limits) -> Plan:
    query = from_params(params, now, schema, limits, (DEFAULT_PLOTPOINTS_PERIOD,))
    if len(query.windows) != 1:
        raise FieldError("period", "plotpoints takes one period")
    return plotpoints(query)


def dimensions_from_params(params, limits) -> Plan:
    pk = fields.pk(params.get("pk"), limits)
    node = fields.node(first(params, "dimension", "dimensions"), limits)
    return tree(pk, node, _whole(first(params, "depth"), "depth", 1, MAX_DEPTH))


# -- reading ----------------------------------------------------------------------------


def _inputs(*formula_lists: Sequence[Formula]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for formulas in formula_lists for f in formulas for name in f.inputs))


def _by_parent(nodes: Sequence[Path]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for node in nodes:
        groups.setdefault(paths.parent_encoding(node), []).append(encode(node))
    return groups


def _window_pieces(query: Query, start: int, end: int, label: str) -> tuple[Piece, ...]:
    return tuple(periods.pieces(start, end, query.schema, query.now, label))


def _sums(query: Query, nodes: Sequence[Path], metrics: Sequence[str], spans: Sequence[tuple[Piece, ...]]):
    """{node encoding: {metric: [sum over each span]}}."""
    parts = []
    groups = _by_parent(nodes).items()
    for pieces in spans:
        for metric in metrics:
            for parent, members in groups:
                for offset in range(0, len(members), MEMBERS_PER_PART):
                    parts.append(SumPart(parent, tuple(members[offset : offset + MEMBERS_PER_PART]), metric, pieces))
    result: dict[str, dict[str, list[float]]] = {encode(node): {metric: [] for metric in metrics} for node in nodes}
    if not parts:
        return result
    replies = yield SumsRequest(query.pk, tuple(parts))
    for part, values in zip(parts, replies):
        for member, value in zip(part.members, values):
            result[member][part.metric].append(value)
    return result


def window_totals(query: Query, window: Window, nodes: Sequence[Path], metrics: Sequence[str]):
    """{node encoding: {metric: total over the window}}."""
    pieces = _window_pieces(query, window.start, window.end, window.label)
    sums = yield from _sums(query, nodes, metrics, [pieces])
    return {node: {metric: values[0] for metric, values in by_metric.items()} for node, by_metric in sums.items()}


def _series(query: Query, window: Window, nodes: Sequence[Path], metrics: Sequence[str]):
    """{node encoding: {metric: [value per point]}}."""
    if len(window.points) * len(nodes) * len(metrics) > MAX_VALUES:
        raise FieldError(
            "period",
            f"{len(window.points)} points x {len(nodes)} dimensions x {len(metrics)} metrics "
            f"is more than {MAX_VALUES} values; use a coarser period or a limit",
            "too_many_values",
        )
    spans = [_window_pieces(query, start, end, window.label) for start, end in window.points]
    return (yield from _sums(query, nodes, metrics, spans))


def _values(query: Query, window: Window, nodes: Sequence[Path], totals=None):
    """{node encoding: {formula text: window value}}, reading what is not in ``totals`` yet."""
    metrics = _inputs(query.formulas)
    if totals is None:
        totals = yield from window_totals(query, window, nodes, metrics)
    series = {}
    if any(f.needs_series for f in query.formulas):
        series = yield from _series(query, window, nodes, metrics)
    return {
        encode(node): {
            f.text: f.total(totals[encode(node)], window.points, series.get(encode(node))) for f in query.formulas
        }
        for node in nodes
    }


def descendants(query_pk: Path, node: Path, depth: int) -> Generator[Request, object, list[Path]]:
    """The nodes below ``node`` down to ``depth`` levels, depth first."""
    below: dict[Path, list[Path]] = {}
    level = [node]
    for _ in range(depth):
        if not level:
            break
        replies = yield Children(query_pk, tuple(encode(n) for n in level))
        next_level = []
        for parent, children in zip(level, typing.cast(list[list[str]], replies)):
            below[parent] = [paths.decode(child) for child in children]
            next_level.extend(below[parent])
        level = next_level
        if sum(map(len, below.values())) > MAX_NODES:
            raise FieldError(
                "depth",
                f"more than {MAX_NODES} dimensions below {encode(node)}; lower the depth",
                "too_many_dimensions",
            )
    ordered: list[Path] = []
    stack = list(reversed(below.get(node, [])))
    while stack:
        current = stack.pop()
        ordered.append(current)
        stack.extend(reversed(below.get(current, [])))
    return ordered


def _select(query: Query, window: Window):
    """
    (children in order, how many other dimensions within the depth there are, with or
    without data in the window, {encoding: {metric: total}} for the chosen).
    """
    order = query.order
    metrics = _inputs(query.formulas, [order.formula], [formula.parse(PRESENCE_METRIC)])
    simple = order.formula.suffix is None and all(
        t is None or t.stored for t in (order.formula.numerator, order.formula.denominator)
    )
    simple = simple and all(kinds.metric_kind(metric) == kinds.SUM for metric in metrics)
    pieces = _window_pieces(query, window.start, window.end, window.label)
    if query.depth == 1 and simple and len(pieces) <= MAX_GROUP_PIECES:
        den = order.formula.denominator
        found, members, sums = yield Group(
            query.pk,
            encode(query.node),
            metrics,
            pieces,
            order.formula.numerator.name,
            den.name if den else None,
            order.descending,
            query.limit or MAX_NODES,
            PRESENCE_METRIC,
        )
        totals = {member: {m: sums[m][i] for m in metrics} for i, member in enumerate(members)}
        return [paths.decode(member) for member in members], found - len(members), totals
    nodes = yield from descendants(query.pk, query.node, query.depth)
    totals = yield from window_totals(query, window, nodes, metrics)
    present = [n for n in nodes if any(totals[encode(n)].values())]
    sign = -1 if order.descending else 1
    present.sort(key=lambda n: (sign * order.formula.total(totals[encode(n)], window.points), encode(n)))
    chosen = present[: query.limit] if query.limit else present
    return chosen, len(nodes) - len(chosen), totals


def _row(node: Path, metrics: dict) -> dict:
    return {"dimension": encode(node), "path": list(node), "metrics": metrics}


def totals(query: Query) -> Plan:
    """
    ``{period: {dimension: {metric: total}}}``; with ``depth``, each period is
    ``{"rows": [parent, children in sort order...], "more": children left out by limit}``.
    """
    answer = {}
    for window in query.windows:
        if query.depth == 0:
            answer[window.label] = yield from _values(query, window, [query.node])
            continue
        children, more, child_totals = yield from _select(query, window)
        parent = yield from _values(query, window, [query.node])
        values = {}
        if children:
            values = yield from _values(query, window, children, child_totals)
        rows = [_row(query.node, parent[encode(query.node)])] + [_row(c, values[encode(c)]) for c in children]
        answer[window.label] = {"rows": rows, "more": more}
    return answer


def plotpoints(query: Query) -> Plan:
    """
    ``{dimension: {metric: [[epoch_ms, value], ...]}}``; with ``depth``,
    ``{"rows": [{dimension, path, metrics: {metric: series}}, ...], "more": n}``.
    """
    (window,) = query.windows
    nodes, more = [query.node], 0
    if query.depth:
        children, more, _ = yield from _select(query, window)
        nodes += children
    series = yield from _series(query, window, nodes, _inputs(query.formulas))
    times = [start * 1000 for start, _ in window.points]
    by_node = {
        encode(node): {
            f.text: [[t, v] for t, v in zip(times, f.series(series[encode(node)], window.points))]
            for f in query.formulas
        }
        for node in nodes
    }
    if not query.depth:
        return by_node
    return {"rows": [_row(node, by_node[encode(node)]) for node in nodes], "more": more}


def tree(pk: Path, node: Path, depth: int) -> Plan:
    """The dimensions below ``node``, depth first: ``[{dimension, path, depth}, ...]``."""
    below = yield from descendants(pk, node, depth)
    return [{"dimension": encode(n), "path": list(n), "depth": len(n) - len(node)} for n in [node] + below]
