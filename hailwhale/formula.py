"""
Metric formulas for queries: a stored metric (``dollars``) or a ratio (``dollars/hits``).

A ratio is computed per bucket for series and as sum(numerator)/sum(denominator) for
totals (never a sum of ratios).  Division by zero gives 0.
"""

import attrs

from hailwhale import fields, lenient
from hailwhale.fields import FieldError


class FormulaError(FieldError):
    def __init__(self, message: str):
        super().__init__("metrics", message, "bad_formula")


@attrs.frozen
class Formula:
    text: str
    numerator: str
    denominator: str | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.numerator,) if self.denominator is None else (self.numerator, self.denominator)

    def evaluate(self, values: dict[str, float]) -> float:
        if self.denominator is None:
            return values[self.numerator]
        return divide(values[self.numerator], values[self.denominator])


def divide(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def parse(text: object) -> Formula:
    if not isinstance(text, str):
        raise FormulaError(f"a metric must be a name or a formula like a/b, not {text!r}")
    parts = text.split("/")
    if len(parts) > 2:
        raise FormulaError(f"cannot parse {text!r}: one '/' at most")
    try:
        names = [fields.metric_name(part.strip()) for part in parts]
    except FieldError as error:
        raise FormulaError(f"cannot parse {text!r}: {error.message}") from None
    return Formula(text, *names)


def parse_list(value: object, default: tuple[str, ...] = ("hits",)) -> tuple[Formula, ...]:
    """
    Formulas from a parameter: a name, a list of names, or the original's dict form
    (``{"dollars": "hits", "hits": 1}`` means ``dollars/hits`` and ``hits``).
    """
    if isinstance(value, str):
        try:
            value = lenient.decode(value)
        except lenient.LenientError as error:
            raise FormulaError(str(error)) from None
    if value is None or value == "" or value == [] or value == {}:
        value = list(default)
    if isinstance(value, dict):
        value = [key if denominator == 1 else f"{key}/{denominator}" for key, denominator in value.items()]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise FormulaError(f"metrics must be a name, a list or a dict, not {value!r}")
    formulas = tuple(parse(item) for item in value)
    return tuple({formula.text: formula for formula in formulas}.values())
