"""
Planning ``decide``, without IO.

:func:`decide_from_params` reads, for each option (one store call each), its counters
over the last 7, 14, 21 and 28 days overall and in the visitor's known dimensions, and
over the 28 days for every value of those dimensions (as :mod:`hailwhale.decide.counting`
counted them); then :func:`hailwhale.decide.thompson.pick_window` picks the window and
:func:`hailwhale.decide.thompson.choose` the option.
"""

import datetime
import hashlib
import random
from collections.abc import Mapping

import attrs

from hailwhale.decide import thompson
from hailwhale.decide.counting import UNITS, decision_name, decision_path, product_name, square_name
from hailwhale.decide.thompson import Known, OptionData, Sums
from hailwhale.model import fields, kinds
from hailwhale.model.fields import FieldError, Limits, decoded, first
from hailwhale.model.paths import ROOT, Path, decode, encode, parent_encoding
from hailwhale.model.schema import Schema
from hailwhale.query import formula, periods
from hailwhale.query.requests import Children, SumPart, SumsRequest

DEFAULT_FORMULA = "value/hits"  # the original's default objective
WINDOWS_DAYS = (7, 14, 21, 28)  # the windows estimates may be read from, in daily buckets (today's included)
LONG_WINDOW_DAYS = WINDOWS_DAYS[-1]  # the window that says how much each dimension matters
MAX_OPTIONS = 100
MAX_VALUES = 200  # values of one known dimension read to estimate how much it matters
DAY = 86400


@attrs.frozen
class Objective:
    text: str
    numerator: str
    denominator: str

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([UNITS, *self._names.values()]))

    @property
    def _names(self) -> dict[str, str]:
        """Where each of the sums lives (``hits`` stands for its own square, and for its product with a metric)."""
        num, den = self.numerator, self.denominator
        moment = {
            "y": num,
            "y2": UNITS if num == UNITS else square_name(num),
            "x": den,
            "x2": UNITS if den == UNITS else square_name(den),
            "xy": den if num == UNITS else num if den == UNITS else product_name(num, den),
        }
        return moment

    def sums(self, values: Mapping[str, float] | None) -> Sums:
        if not values:
            return thompson.ZERO
        return Sums(n=values[UNITS], **{field: values[name] for field, name in self._names.items()})


@attrs.frozen
class DecideRequest:
    decision: Path
    names: tuple[str, ...]  # the options, as stored
    values: tuple[object, ...]  # the options, as the caller gave them
    objective: Objective
    goal: str
    known: tuple[Path, ...]  # leaf paths of the visitor's known dimensions
    explain: bool
    explore: bool
    unit: str | None
    now: float
    windows: tuple[tuple[int, tuple[periods.Piece, ...]], ...]  # (days, pieces), shortest first


def objective(value: object) -> Objective:
    """``metric`` or ``num/den`` over sums; a single metric is its mean per report (``metric/hits``)."""
    text = DEFAULT_FORMULA if value in (None, "") else value
    if not isinstance(text, str):
        raise FieldError("by_metric", f"the objective is a metric or a ratio a/b, not {text!r}", "bad_formula")
    parsed = formula.parse(text.strip(), field="by_metric")
    terms = [parsed.numerator] + ([parsed.denominator] if parsed.denominator else [])
    if parsed.suffix is not None or not all(term.stored for term in terms):
        raise FieldError("by_metric", f"{text!r}: the objective is a stored metric or a ratio of two", "bad_formula")
    for term in terms:
        if kinds.metric_kind(term.name) != kinds.SUM:
            raise FieldError(
                "by_metric",
                f"{term.name!r} is a {kinds.metric_kind(term.name)}, not a sum; decisions need metrics that add up",
                "bad_formula",
            )
    den = parsed.denominator.name if parsed.denominator else UNITS
    return Objective(parsed.text.strip(), parsed.numerator.name, den)


def _options(raw: Mapping[str, object], limits: Limits) -> tuple[Path, tuple[str, ...], tuple[object, ...]]:
    value = decoded(raw.get("options", raw.get("option")), "options")
    name: Path = ()
    if isinstance(value, dict):
        if len(value) != 1:
            raise FieldError(
                "options", "options is a list, or a one-item dict {decision name: [options]}", "no_options"
            )
        ((key, value),) = value.items()
        name = (fields.name(key, "options", limits),)
        value = decoded(value, "options")
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if value is None:
        value = []
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise FieldError("options", "no options to choose from: give options=['a', 'b']", "no_options")
    if len(value) > MAX_OPTIONS:
        raise FieldError("options", f"more than {MAX_OPTIONS} options", "too_many_options")
    names: dict[str, object] = {}
    for item in value:
        stored = fields.name(item, "options", limits)
        if stored not in names:
            names[stored] = item
    return name, tuple(names), tuple(names.values())


def _flag(value: object, field: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise FieldError(field, f"{value!r} is not true or false", f"bad_{field}")


def _goal(value: object) -> str:
    text = "max" if value in (None, "") else str(value).strip().lower()
    goals = {"max": "max", "maximize": "max", "maximise": "max", "min": "min", "minimize": "min", "minimise": "min"}
    if text not in goals:
        raise FieldError("goal", f"{value!r}: goal is max or min", "bad_goal")
    return goals[text]


def window(now: float, days: int) -> tuple[int, int]:
    """The last ``days`` whole UTC days, today's included: [start, end)."""
    today = int(now // DAY) * DAY
    return today - (days - 1) * DAY, today + DAY


def request_from_params(params: Mapping[str, object], now: float, schema: Schema, limits: Limits) -> DecideRequest:
    """A decide request from its parameters (HTTP and Python spell them alike)."""
    pk = fields.pk(params.get("pk"), limits)
    name, names, values = _options(params, limits)
    decision = decision_path(pk, decision_name(params, limits) + name, limits)
    leaves = fields.leaves(first(params, "dimensions", "dimension", "known_dimensions", "known"), limits)
    unit = first(params, "unit")
    return DecideRequest(
        decision=decision,
        names=names,
        values=values,
        objective=objective(first(params, "by_metric", "formula", "metric")),
        goal=_goal(first(params, "goal")),
        known=tuple(sorted(leaves)),
        explain=_flag(first(params, "explain"), "explain", False),
        explore=_flag(first(params, "explore"), "explore", True),
        unit=None if unit is None else str(unit),
        now=now,
        windows=tuple(
            (days, tuple(periods.pieces(*window(now, days), schema, now, f"{days} days"))) for days in WINDOWS_DAYS
        ),
    )


def known_of(leaf: Path) -> Known:
    """``("country", "US")`` is country=US; a lone name ``("us",)`` is a value of the root."""
    return Known(encode(leaf[:-1]), leaf[-1])


def sticky_rng(request: DecideRequest, rng: random.Random) -> random.Random:
    """With a ``unit``, a generator seeded by (decision, unit, day): the same visitor draws alike all day."""
    if request.unit is None:
        return rng
    day = int(request.now // DAY)
    digest = hashlib.sha256("\0".join([encode(request.decision), request.unit, str(day)]).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _parts(nodes: list[Path], metrics: tuple[str, ...], pieces: tuple[periods.Piece, ...]) -> list[SumPart]:
    by_parent: dict[str, list[str]] = {}
    for node in nodes:
        by_parent.setdefault(parent_encoding(node), []).append(encode(node))
    return [
        SumPart(parent, tuple(members), metric, pieces) for metric in metrics for parent, members in by_parent.items()
    ]


def _read(parts: list[tuple[int, SumPart]], replies) -> dict[tuple[str, int], dict[str, float]]:
    """{(node encoding, window days): {metric: sum}}."""
    found: dict[tuple[str, int], dict[str, float]] = {}
    for (label, part), values in zip(parts, replies):
        for member, value in zip(part.members, values):
            found.setdefault((member, label), {})[part.metric] = value
    return found


def plan(request: DecideRequest, rng: random.Random, settings: thompson.Settings = thompson.Settings()):
    """Read the counters, choose, and return the answer: ``{"option": value}`` or the explanation."""
    groups = tuple(dict.fromkeys(leaf[:-1] for leaf in request.known))
    siblings: dict[Path, list[Path]] = {}
    if groups:
        replies = yield Children(request.decision, tuple(encode(group) for group in groups))
        for group, children in zip(groups, replies):
            from_store = [decode(child) for child in children][:MAX_VALUES]
            own = [leaf for leaf in request.known if leaf[:-1] == group]
            siblings[group] = list(dict.fromkeys(own + [c for c in from_store if len(c) == len(group) + 1]))
    recent_nodes = [ROOT, *request.known]
    longer_nodes = [ROOT, *(node for group in groups for node in siblings[group])]
    metrics = request.objective.metrics
    *shorter, (longest, longest_pieces) = request.windows
    parts = [(days, part) for days, pieces in shorter for part in _parts(recent_nodes, metrics, pieces)]
    parts += [(longest, part) for part in _parts(longer_nodes, metrics, longest_pieces)]
    known = [known_of(leaf) for leaf in request.known]
    candidates: list[list[OptionData]] = [[] for _ in request.windows]
    for name in request.names:
        replies = yield SumsRequest(request.decision + (name,), tuple(part for _, part in parts))
        found = _read(parts, replies)
        values: dict[str, dict[str, Sums]] = {}
        for group in groups:
            values[encode(group)] = {
                node[-1]: request.objective.sums(found.get((encode(node), longest))) for node in siblings[group]
            }
        overall_long = request.objective.sums(found.get((encode(ROOT), longest)))
        for index, (days, _) in enumerate(request.windows):
            cells = {
                item: request.objective.sums(found.get((encode(leaf), days)))
                for item, leaf in zip(known, request.known)
            }
            candidates[index].append(
                OptionData(name, request.objective.sums(found.get((encode(ROOT), days))), cells, values, overall_long)
            )
    picked = thompson.pick_window(candidates, known, settings)
    options = candidates[picked]
    choice = thompson.choose(
        options, known, sticky_rng(request, rng), request.goal, request.explain, request.explore, settings
    )
    value = request.values[choice.index]
    if not request.explain:
        return {"option": value}
    explanation = dict(choice.explanation or {})
    explanation["option"] = value
    for row, original in zip(explanation["options"], request.values):
        row["option"] = original
    days = request.windows[picked][0]
    start, end = window(request.now, days)
    explanation.update(
        decision=encode(request.decision),
        formula=request.objective.text,
        unit=request.unit,
        window={"from": _date(start), "to": _date(end - DAY), "days": days},
    )
    return explanation


def _date(moment: int) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).date().isoformat()


def decide_from_params(params: Mapping[str, object], now: float, schema: Schema, limits: Limits, rng: random.Random):
    return plan(request_from_params(params, now, schema, limits), rng)
