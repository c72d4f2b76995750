import pytest

from hailwhale import lenient


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
