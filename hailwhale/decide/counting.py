"""
Counting decisions, without IO.

A decision is counted like any event, under its own pk path: the decision's path
followed by the option chosen.  The decision's path is the pk, then the decision name
if there is one::

    pk=PageVariation, option=b                      -> ["PageVariation", "b"]
    pk=["Product", "123"], decided={"language": "EN"} -> ["Product", "123", "language", "EN"]
    pk=Product, decision=language, option=EN        -> ["Product", "language", "EN"]

so the numbers roll up to the decision (``["Product", "123", "language"]``: every option
together) and to every pk prefix, and ``/totals`` and ``/rank`` read them.  Every sum
metric of a decision event but ``hits`` also counts its square (``spent.sq``) and, for
events of up to :data:`MAX_PRODUCT_METRICS` such metrics, the product of each pair
(``earned*spent``): the sums of squares and cross products the variances of
:mod:`hailwhale.decide.thompson` need.
"""

import itertools
from collections.abc import Mapping

import attrs

from hailwhale.model import events, fields
from hailwhale.model.events import Event
from hailwhale.model.fields import FieldError, Limits, decoded
from hailwhale.model.paths import Path

MAX_PRODUCT_METRICS = 6
UNITS = "hits"


def square_name(metric: str) -> str:
    return f"{metric}.sq"


def product_name(a: str, b: str) -> str:
    first, second = sorted((a, b))
    return f"{first}*{second}"


def with_moments(sums: Mapping[str, float]) -> dict[str, float]:
    """
    ``sums`` with each one's square and (for a few metrics) each pair's product; not for
    ``hits``, which is taken to be 1 (a decision) or 0 (a later report joining its
    decision), so that its square is itself and its product with a metric the metric.
    """
    found = dict(sums)
    moments = {name: value for name, value in sums.items() if name != UNITS}
    for name, value in moments.items():
        found[square_name(name)] = value * value
    if len(moments) <= MAX_PRODUCT_METRICS:
        for a, b in itertools.combinations(sorted(moments), 2):
            found[product_name(a, b)] = moments[a] * moments[b]
    return found


def decision_name(raw: Mapping[str, object], limits: Limits) -> Path:
    value = raw.get("decision")
    if value is None or value == "":
        return ()
    value = decoded(value, "decision")
    parts = value if isinstance(value, list) else [value]
    return tuple(fields.name(part, "decision", limits) for part in parts)


def decision_path(pk: Path, name: Path, limits: Limits) -> Path:
    path = pk + name
    if len(path) + 1 > limits.max_pk_depth:
        raise FieldError("pk", f"the decision and its option are deeper than {limits.max_pk_depth} levels", "too_deep")
    return path


def event_from_fields(raw: Mapping[str, object], now: float, limits: Limits) -> Event:
    """
    A decision event from its named fields: ``pk``, then either ``decided`` (a one-item
    dict, decision name to option) or ``option`` (with an optional ``decision`` name),
    and an event's ``dimensions``, ``metrics`` and ``at``.
    """
    base = events.from_fields(raw, now, limits)
    name = decision_name(raw, limits)
    decided = decoded(raw.get("decided"), "decided")
    option = raw.get("option")
    if decided not in (None, "", {}):
        if not isinstance(decided, dict) or len(decided) != 1:
            raise FieldError("decided", "decided is a one-item dict: {decision name: option}", "bad_option")
        ((key, option),) = decided.items()
        name += (fields.name(key, "decided", limits),)
    if option is None or option == "":
        raise FieldError("option", "missing: give option= (and decision=) or decided={name: option}", "bad_option")
    path = decision_path(base.pk, name, limits) + (fields.name(option, "option", limits),)
    return attrs.evolve(base, pk=path, metrics=with_moments(base.metrics))
