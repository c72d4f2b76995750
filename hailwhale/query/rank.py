"""
Which sub-dimensions matter: the original's rank, planned without IO.
"""

from hailwhale.model.fields import FieldError, first
from hailwhale.model.paths import Path, encode
from hailwhale.query.formula import Formula
from hailwhale.query.periods import Window
from hailwhale.query.planner import DEFAULT_PLOTPOINTS_PERIOD, MAX_DEPTH, Query, descendants, from_params, window_totals
from hailwhale.query.requests import Plan


def rank_from_params(params, now, schema, limits) -> Plan:
    query = from_params(params, now, schema, limits, (DEFAULT_PLOTPOINTS_PERIOD,))
    if len(query.formulas) != 1 or len(query.windows) != 1:
        raise FieldError("metric", "rank takes one metric (or ratio) and one period")
    if query.formulas[0].needs_series:
        raise FieldError("metric", "rank takes a total, not a level (:last)", "bad_formula")
    recursive = str(first(params, "recursive")).strip().lower() not in ("false", "0", "no")
    return rank(query, recursive=recursive)


def rank(query: Query, recursive: bool = True, prune_parents: bool = True) -> Plan:
    """
    Which sub-dimensions matter, as the original's rank: for a scalar, each one's total
    and whether it is important (above 10 and above 10% of the parent's total; with
    pruning, a parent stays important only if its children leave 10% of the total
    unexplained); for a ratio, each one's ratio, its relative difference from the
    parent's, its effect (the difference weighted by volume) and whether it is important
    (more than 5 below the line and more than 10% away).
    """
    (window,) = query.windows
    (metric,) = query.formulas
    below = yield from descendants(query.pk, query.node, MAX_DEPTH if recursive else 1)
    candidates = ([query.node] if recursive else []) + below
    totals = yield from window_totals(query, window, [query.node] + below, metric.inputs)
    own = totals[encode(query.node)]
    if metric.denominator is None:
        return _rank_scalar(query.node, candidates, totals, metric, window, recursive and prune_parents)
    parent_ratio = metric.total(own, window.points)
    result = {}
    for node in candidates:
        values = totals[encode(node)]
        ratio = metric.total(values, window.points)
        count = metric.denominator.total(values, window.points)
        difference = (ratio - parent_ratio) / parent_ratio if parent_ratio else 0.0
        result[encode(node)] = {
            "dimension": encode(node),
            "score": ratio,
            "value": metric.numerator.total(values, window.points),
            "count": count,
            "difference": difference,
            "effect": difference * count * parent_ratio,
            "important": count > 5 and abs(difference) > 0.1,
        }
    return _by_score(result)


def _rank_scalar(node: Path, candidates: list[Path], totals, metric: Formula, window: Window, prune: bool) -> dict:
    total = metric.total(totals[encode(node)], window.points)
    scores = {encode(c): metric.total(totals[encode(c)], window.points) for c in candidates}
    result = {}
    for candidate in candidates:
        score = scores[encode(candidate)]
        important = score > 10 and score > total / 10
        if prune and important:
            children = [c for c in candidates if c[:-1] == candidate and len(c) == len(candidate) + 1]
            important = score - sum(scores[encode(c)] for c in children) >= total / 10
        result[encode(candidate)] = {
            "dimension": encode(candidate),
            "score": score,
            "value": score,
            "count": score,
            "difference": total - score,
            "effect": total - score,
            "important": important,
        }
    return _by_score(result)


def _by_score(result: dict) -> dict:
    return dict(sorted(result.items(), key=lambda item: (-item[1]["score"], item[0])))
