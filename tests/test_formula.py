import datetime

import pytest

from hailwhale.query import formula
from hailwhale.query.formula import FormulaError

DAY = 86400
NOV_28 = int(datetime.datetime(2026, 11, 28, tzinfo=datetime.UTC).timestamp())
THREE_DAYS = [(NOV_28 + i * DAY, NOV_28 + (i + 1) * DAY) for i in range(3)]  # Nov 28, 29, 30


def series(text, **values):
    return formula.parse(text).series(values, THREE_DAYS)


def total(text, **values):
    return formula.parse(text).total({k: sum(v) for k, v in values.items()}, THREE_DAYS, values)


def test_parse_list_forms():
    """Metrics are a name, a list, or the original's dict of numerator to denominator (1 meaning none)."""
    assert [("dollars", "hits"), ("hits",)] == [f.inputs for f in formula.parse_list('{"dollars": "hits", "hits": 1}')]
    assert [("a",), ("b",)] == [f.inputs for f in formula.parse_list("['a', 'b']")]
    assert [("a", "b")] == [f.inputs for f in formula.parse_list("a/b")]


def test_default_is_hits():
    """With no metrics asked for, hits is."""
    assert ["hits"] == [f.text for f in formula.parse_list(None)]


def test_ratio_per_point_and_sum_over_sum():
    """A ratio is a/b per point, and sum(a)/sum(b) in a total (never a sum of ratios); /0 gives 0."""
    assert [2.0, 0.0, 1.0] == series("a/b", a=[4, 5, 1], b=[2, 0, 1])
    assert 10 / 3 == total("a/b", a=[4, 5, 1], b=[2, 0, 1])


def test_cumulative():
    """:cumulative is a running total; its total is the plain total."""
    assert ([1.0, 1.0, 4.0], 4.0) == (series("a:cumulative", a=[1, 0, 3]), total("a:cumulative", a=[1, 0, 3]))


def test_last():
    """:last forward-fills a level (zeros before the first value stay 0); its total is the final level."""
    assert ([0.0, 5.0, 5.0], 5.0) == (series("a:last", a=[0, 5, 0]), total("a:last", a=[0, 5, 0]))


def test_constants_in_series():
    """Constants per point: numbers, time units of the point's length, _count, _days_in_month."""
    assert [2.0, 2.0, 2.0] == series("a/5", a=[10, 10, 10])
    assert [1.0, 1.0, 1.0] == series("a/hours", a=[24, 24, 24])
    assert [1440.0] * 3 == series("a/minutes", a=[1440 * 1440] * 3)
    assert [7.0] * 3 == series("a/weeks", a=[1, 1, 1])
    assert [3.0] * 3 == series("a/_count", a=[9, 9, 9])
    assert [1.0] * 3 == series("a/_days_in_month", a=[30, 30, 30])


def test_constants_in_totals():
    """In totals, numbers, _count and _days_in_month are levels, and time units add up over the window."""
    assert 6.0 == total("a/5", a=[10, 10, 10])
    assert 10.0 == total("a/days", a=[10, 10, 10])
    assert 10.0 == total("a/_count", a=[10, 10, 10])
    assert 1.0 == total("a/_days_in_month", a=[10, 10, 10])


@pytest.mark.parametrize("text", ["a/b/c", "/b", "a/", "-a", "a:mean", "a:p", "a.dist", "5", "5/hours"])
def test_unparseable_formulas(text):
    """A formula that cannot be parsed is an error naming it."""
    with pytest.raises(FormulaError) as caught:
        formula.parse(text)

    assert repr(text) in str(caught.value)
