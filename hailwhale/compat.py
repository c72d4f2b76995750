"""
The original's Python names, as thin aliases over the API that :class:`hailwhale.whale.Whale`
and :class:`hailwhale.client.Client` share: ``api`` is either of them (the class or an
instance), and each function calls its ``count_decision``, ``plotpoints``, ``rank`` or
``decide``.  Standard library only.

What the original's flags asked for and hailwhale does not do is refused with a
:class:`ValueError` saying so, never ignored silently; flags that only chose the shape of a
series (``flot_time``, ``points_type``) are accepted: a series is always ``[[ms, value]]``.
"""

import datetime
from collections.abc import Mapping

ORIGINAL_DEFAULT_FORMULA = "value/hits"


def _refuse(name: str, value: object, default: object, why: str) -> None:
    if value != default:
        raise ValueError(f"{name}={value!r} is not supported: {why}")


def moment(at: object, now: float) -> float:
    """The moment a read is as of: ``at`` (a datetime, naive is UTC; epoch seconds; ISO 8601), else ``now``."""
    if at is None or at == "":
        return now
    if isinstance(at, datetime.datetime):
        return (at if at.tzinfo is not None else at.replace(tzinfo=datetime.UTC)).timestamp()
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return float(at)
    text = str(at).strip()
    try:
        return float(text)
    except ValueError:
        return moment(datetime.datetime.fromisoformat(text), now)


def series_flags(flags: Mapping[str, object]) -> None:
    """
    The original's plotpoints flags: ``flot_time`` and ``points_type`` chose a series' shape
    (always ``[[ms, value]]`` here); ``descending`` and ``with_totals`` are refused; any
    other keyword is the TypeError Python gives.
    """
    for name, value in flags.items():
        if name in ("flot_time", "points_type"):
            continue
        if name == "descending":
            _refuse(name, value, False, "sort the rows with sort=")
        elif name == "with_totals":
            _refuse(name, value, False, "ask totals() for the totals")
        else:
            raise TypeError(f"plotpoints() got an unexpected keyword argument {name!r}")


def original_rows(answer: dict) -> dict:
    """A grouped answer (``{"rows": [...], "more": n}``) in the original's shape ``{dimension: {metric: series}}``."""
    if isinstance(answer, Mapping) and "rows" in answer:
        return {row["dimension"]: row["metrics"] for row in answer["rows"]}
    return answer


def count_decided_now(api, pk_base, decision, option, dimensions=None, metrics=None, at=None, **kw):
    """The original's ``count_decided_now(pk_base, decision, option, dimensions, metrics, at)``."""
    return api.count_decision(
        pk_base, dimensions=dimensions, option=option, decision=decision, metrics=metrics, at=at, **kw
    )


def scalar_plotpoints(
    api,
    pk,
    dimensions=None,
    metrics=None,
    depth=0,
    period=None,
    tzoffset=None,
    flot_time=False,
    points_type=None,
    descending=False,
    with_totals=False,
    **kw,
):
    """The original's ``scalar_plotpoints``: ``plotpoints`` answered in the original's shape, at any ``depth``."""
    series_flags({"descending": descending, "with_totals": with_totals})
    return original_rows(api.plotpoints(pk, dimensions, metrics, period, depth=depth, tzoffset=tzoffset, **kw))


def ratio_plotpoints(
    api,
    pk,
    numerator_metric,
    denomenator_metric="hits",
    dimensions=None,
    depth=0,
    period=None,
    flot_time=False,
    tzoffset=None,
    points_type=None,
    descending=False,
    with_totals=False,
    **kw,
):
    """The original's ``ratio_plotpoints``: ``{dimension: {"num/den": series}}``."""
    formula = f"{numerator_metric}/{denomenator_metric}"
    return scalar_plotpoints(
        api, pk, dimensions, [formula], depth, period, tzoffset, descending=descending, with_totals=with_totals, **kw
    )


def rank_subdimensions_scalar(
    api, pk, dimension="_", metric="hits", period=None, recursive=True, prune_parents=True, points=False, **kw
):
    """The original's ``rank_subdimensions_scalar``: ``rank`` of a metric."""
    _refuse("prune_parents", prune_parents, True, "a parent is important only if its children leave 10% unexplained")
    _refuse("points", points, False, "ask plotpoints() for the series")
    return api.rank(pk, metric, dimension, period, recursive=recursive, **kw)


def rank_subdimensions_ratio(
    api, pk, numerator, denominator="hits", dimension="_", period=None, recursive=True, points=False, **kw
):
    """The original's ``rank_subdimensions_ratio``: ``rank`` of ``numerator/denominator``."""
    _refuse("points", points, False, "ask plotpoints() for the series")
    return api.rank(pk, f"{numerator}/{denominator}", dimension, period, recursive=recursive, **kw)


def _is_name(value: object) -> bool:
    """One option or decision name (not a list of options, nor its JSON text)."""
    if isinstance(value, str):
        return not value.strip().startswith(("[", "{"))
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def decide_params(
    pk,
    options=None,
    known_dimensions=None,
    by_metric=None,
    known_data=None,
    period=None,
    bad_idea_threshold=None,
    test_idea_threshold=None,
    **rest,
) -> dict:
    """
    ``decide``'s parameters, from either order: hailwhale's ``decide(pk, options,
    known_dimensions, by_metric)`` or the original's ``decide(pk_base, decision_name,
    options, formula='value/hits', known_data=None, period=None, bad_idea_threshold=.05,
    test_idea_threshold=.05)``, told apart by the second argument being one name and the
    third a list.  One name as the options otherwise is an error (one option is no choice).
    The original's thresholds both 0 meant "the best, never explore" (``explore=False``);
    other thresholds are the original's exploration rule, which Thompson sampling replaces.
    ``period``: the decision reads its own windows (7 to 28 days).
    """
    original = _is_name(options) and isinstance(known_dimensions, (list, tuple)) and rest.get("decision") in (None, "")
    if original:
        rest["decision"] = options
        options, known_dimensions = list(known_dimensions), known_data
        if by_metric is None and rest.get("formula") is None:
            by_metric = ORIGINAL_DEFAULT_FORMULA
    elif known_data is not None:
        if known_dimensions is not None:
            raise ValueError("give known_dimensions or known_data (its original name), not both")
        known_dimensions = known_data
    if _is_name(options):
        raise ValueError(
            f"options={options!r} is one name, and one option is no choice: give a list, options=['a', 'b'] "
            "(or the original's order, decide(pk, decision_name, ['a', 'b'], formula, known_data))"
        )
    if bad_idea_threshold == 0 and test_idea_threshold == 0:
        rest.setdefault("explore", False)
    return {
        "pk": pk,
        "options": options,
        "known_dimensions": known_dimensions,
        "by_metric": by_metric,
        **rest,
    }
