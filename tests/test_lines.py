"""The fast line parser: the same events and the same reasons as the defining parse_line."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hailwhale.formats import lines
from hailwhale.formats.fast_lines import LineParser
from hailwhale.model.events import Event
from hailwhale.model.fields import FieldError, Limits

NOW = 1_795_830_000.0
LIMITS = Limits(max_past_seconds=86400 * 400)


def fast_parse(parser: LineParser, line: bytes, now: float):
    """
    The event of ``line`` by the ways the ingest tries in turn, and whether it is a statsd line of sums
    without a time.
    """
    usual = parser.usual(line, now)
    if usual is not None:
        return Event(*usual), False
    counter = parser.counter(line)
    if counter is not None:
        return Event(*counter, now), True
    return parser.unusual(line, now)


def both(line: bytes):
    """What parse_line and the fast paths make of ``line``: an event or a reason, each."""
    outcomes = []
    for parse in (lambda: lines.parse_line(line, NOW, LIMITS), lambda: fast_parse(LineParser(LIMITS), line, NOW)[0]):
        try:
            outcomes.append(parse())
        except FieldError as error:
            outcomes.append(error.reason)
    return outcomes


USUAL_AND_UNUSUAL = [
    b'{"pk":["bench","x"],"dimensions":{"country":"US","device":"mac"},"metrics":{"revenue":1.5,"visitors":1}}',
    b'{"pk":"a","dimension":["b","c"],"metrics":{"hits":3}}',
    b'{"pk":"a","dimensions":null,"dimension":"b"}',
    b'{"pk":"a","metrics":{"q.gauge":3,"x":1}}',
    b'{"pk":"a","metrics":{"v.unique":"u1"}}',
    b'{"pk":"a","metrics":{"x":"2.5"}}',
    b'{"pk":"a","metrics":{"x":true}}',
    b'{"pk":"a","metrics":{"x":1e30}}',
    b'{"pk":"a","metrics":{"x":NaN}}',
    b'{"pk":"a","metrics":{"":1}}',
    b'{"pk":"a","metrics":{"a/b":1}}',
    b'{"pk":"a","metrics":["x","y"]}',
    b'{"pk":"a","metric":{"x":2}}',
    b'{"pk":"a","metrics":{"x":1,"x":2}}',
    b'{"pk":"[\\"a\\",\\"b\\"]","metrics":{}}',
    b'{"pk":["a",1,true],"metrics":{}}',
    b'{"pk":"","metrics":{}}',
    b'{"pk":["a","b","c","d","e","f","g","h","i"],"metrics":{}}',
    b'{"pk":"a","dimensions":{"x":[1]},"metrics":{}}',
    b'{"pk":"a","at":1000,"metrics":{}}',
    b'{"pk":"a","at":"2026-11-28T10:00:00","metrics":{}}',
    b'{"pk":"a","at":true,"metrics":{}}',
    b'{"pk":"a","at":1795830000123,"metrics":{}}',
    b'{"pk":"\xff","metrics":{}}',
    b'{"pk":"a","z":"\xff","metrics":{}}',
    b'{"pk":"a","metrics":{"x":1}} ',
    b'{"pk":"a","metrics":{"x":1}}\r',
    b'{"pk":"a","metrics":{"x":1}} x',
    b'{"metrics":{"x":1}}',
    b'{"pk":"a","metrics":{' + b",".join(b'"m%d":1' % i for i in range(40)) + b"}}",
    b'{"pk":"a","metrics":{' + b",".join(b'"m%d":1' % i for i in range(31)) + b"}}",
    b'{"pk":"a","metrics":{' + b",".join(b'"m%d":1' % i for i in range(31)) + b',"hits":2}}',
    b"[1]",
    b'{"pk":"a","long":"' + b"x" * 9000 + b'"}',
]


@pytest.mark.parametrize("line", USUAL_AND_UNUSUAL)
def test_fast_json_path_agrees(line):
    """For usual and unusual JSON lines alike, the fast parser gives parse_line's event or reason."""
    defined, fast = both(line)

    assert defined == fast


@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
        max_leaves=8,
    ),
    st.sampled_from(["pk", "dimensions", "dimension", "metrics", "metric", "at", "other"]),
)
def test_any_json_field_agrees(value, field):
    """Whatever value any field holds, the fast parser agrees with parse_line."""
    line = json.dumps({"pk": ["p", "q"], "dimensions": {"c": "US"}, "metrics": {"x": 1}, field: value}).encode()

    defined, fast = both(line)

    assert defined == fast


@pytest.mark.parametrize(
    "line, plain_sums",
    [
        (b"a.b:1|c", True),
        (b"a.b:2|c|@0.5|#x:y", True),
        (b"t:5|ms", False),  # a timing feeds a distribution too, which the sums-only shortcut leaves out
        (b"a:1|c|T1795830000", False),
        (b"g:3|g", False),
        (b"s:v|s", False),
        (b'{"pk":"a"}', False),
        (b"pk=a&metrics=x", False),
    ],
)
def test_repeatable_lines_are_told(line, plain_sums):
    """A statsd line of sums without a time is told apart: its event depends on the line and the arrival time only."""
    assert plain_sums == fast_parse(LineParser(LIMITS), line, NOW)[1]


@pytest.mark.parametrize(
    "line",
    [
        b"a.b:1|c",
        b"a.b:-2.5|c|@0.5",
        b"a:1e3|c|@1e-1",
        b"a:1e400|c",
        b"a:1|c|@0",
        b"a:1|c|@2",
        b"a:1_0|c",
        b"a:.|c",
        b"a:1.2.3|c",
        b"a:+1|c",
        b"a:-0|c",
        b".a:1|c",
        b"a..b:1|c",
        b"a.b.c.d.e.f.g.h.i:1|c",
        b"a:1|c|",
        b"a:1|c|#x:y",
        b"a:1|c\r",
        b" a:1|c",
        b"a-b_c:1|c",
        b"a:1|ms",
        b"a:1|cc",
        b"a:1:2|c",
    ],
)
def test_plain_counter_path_agrees(line):
    """
    For plain statsd counters and lines that only look like them, the fast parser gives parse_line's event or
    reason.
    """
    defined, fast = both(line)

    assert defined == fast


@given(st.from_regex(rb"\A[a-z.]{1,6}:[-+0-9.eE]{1,6}\|c(\|@[-+0-9.eE]{1,5})?\Z"))
def test_any_counter_like_line_agrees(line):
    """Any line shaped like a plain counter, valid or not, reads the same both ways."""
    defined, fast = both(line)

    assert defined == fast


def test_json_and_statsd_names_are_told_apart():
    """
    A pk read from JSON text is never taken for a statsd name of the same bytes: 1.5 is one name in JSON, two
    in statsd.
    """
    parser = LineParser(LIMITS)

    first = fast_parse(parser, b'{"pk":1.5,"metrics":{"x":1}}', NOW)[0].pk
    second = fast_parse(parser, b"1.5:1|c", NOW)[0].pk

    assert (("1.5",), ("1", "5")) == (first, second)
