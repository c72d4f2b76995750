"""
Browsing what exists: a pk's child pks and the metric names counted under it, read from
the small indexes the flush writes with the data (see :mod:`hailwhale.model.keys`).
"""

import typing
from collections.abc import Mapping

from hailwhale.model import fields
from hailwhale.model.fields import FieldError, Limits, first
from hailwhale.model.paths import ROOT, Path
from hailwhale.query.requests import Names, Plan

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


def pks_from_params(params: Mapping[str, object], limits: Limits) -> Plan:
    """``/pks``: the pk named by ``pk`` (none: the root of the pk tree), up to ``limit`` names of each index."""
    value = params.get("pk")
    pk = ROOT if value is None or value == "" else fields.pk(value, limits)
    raw_limit = first(params, "limit")
    try:
        limit = DEFAULT_LIMIT if raw_limit in (None, "") else int(str(raw_limit).strip())
    except ValueError:
        raise FieldError("limit", f"{raw_limit!r} is not a whole number", "bad_limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise FieldError("limit", f"must be from 1 to {MAX_LIMIT}", "bad_limit")
    return pks(pk, limit)


def pks(pk: Path, limit: int = DEFAULT_LIMIT) -> Plan:
    """
    ``{"pk": [names] or None, "children": [{"name", "pk"}, ...], "more": n, "metrics": [...],
    "more_metrics": n}``: the child pks of ``pk`` (the top-level pks for the root), sorted, and
    the metric names counted under it (none for the root); ``more`` and ``more_metrics`` say
    how many names the answer leaves out (past ``limit``).
    """
    size, names = typing.cast(tuple[int, list[str]], (yield Names(pk, "pks", limit)))
    metric_count, metrics = 0, list[str]()
    if pk != ROOT:
        metric_count, metrics = typing.cast(tuple[int, list[str]], (yield Names(pk, "metrics", limit)))
    return {
        "pk": list(pk) if pk else None,
        "children": [{"name": name, "pk": [*pk, name]} for name in names],
        "more": size - len(names),
        "metrics": metrics,
        "more_metrics": metric_count - len(metrics),
    }
