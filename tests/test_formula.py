import pytest

from hailwhale import formula
from hailwhale.formula import Formula, FormulaError


def test_parse_list_forms():
    """Metrics are a name, a list, or the original's dict of numerator to denominator (1 meaning none)."""
    assert [("dollars", "hits"), ("hits",)] == [f.inputs for f in formula.parse_list('{"dollars": "hits", "hits": 1}')]
    assert [("a",), ("b",)] == [f.inputs for f in formula.parse_list("['a', 'b']")]
    assert [("a", "b")] == [f.inputs for f in formula.parse_list("a/b")]


def test_default_is_hits():
    """With no metrics asked for, hits is."""
    assert (Formula("hits", "hits"),) == formula.parse_list(None)


def test_division_by_zero_is_zero():
    """A ratio with nothing below the line is 0, not an error."""
    assert [2.5, 0.0] == [formula.divide(5, 2), formula.divide(5, 0)]


@pytest.mark.parametrize("text", ["a/b/c", "/b", "a/", "-a"])
def test_unparseable_formulas(text):
    """A formula that cannot be parsed is an error naming it."""
    with pytest.raises(FormulaError) as caught:
        formula.parse(text)

    assert repr(text) in str(caught.value)
