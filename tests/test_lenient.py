import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hailwhale.model import lenient


@pytest.mark.parametrize(
    "text, expected",
    [
        ('["a","b"]', ["a", "b"]),
        ("['a', 'b']", ["a", "b"]),
        ('{"spent": .50}', {"spent": 0.5}),
        ("{'a': 1, 'b': {'c': true, 'd': null}}", {"a": 1, "b": {"c": True, "d": None}}),
        ('{"x": -3}', {"x": -3}),
        ('"quoted"', "quoted"),
        ("services", "services"),
        ("5", "5"),
        ("'s-Hertogenbosch", "'s-Hertogenbosch"),
        ("", ""),
    ],
)
def test_decode(text, expected):
    """JSON, Python-style literals and bare strings decode as the original accepted them."""
    assert expected == lenient.decode(text)


@pytest.mark.parametrize("text", ["[a, b", "{'a': }", "{1: [}", "[__import__('os')]", "{**x}"])
def test_broken_lists_and_dicts_are_errors(text):
    """Text that starts like a list or a dict but is not one is an error, not a silent string."""
    with pytest.raises(lenient.LenientError):
        lenient.decode(text)


@given(st.text(max_size=60))
def test_any_text_decodes_or_is_a_lenient_error(text):
    """No text makes the lenient decoder fail with anything but LenientError."""
    try:
        lenient.decode(text)
    except lenient.LenientError:
        pass


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=10,
    ).filter(lambda v: isinstance(v, (list, dict)))
)
def test_json_round_trips(value):
    """Any JSON list or dict decodes to itself."""
    assert value == lenient.decode(json.dumps(value))
