import datetime
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hailwhale.formats import lines
from hailwhale.model import events
from hailwhale.model.events import Event
from hailwhale.model.fields import FieldError, Limits
from hailwhale.testing.strategies import dimension_values, metric_dicts

NOW = 1_795_830_000.0
LIMITS = Limits()


def parse(**raw) -> Event:
    return events.from_fields(raw, NOW, LIMITS)


def test_minimal_event():
    """A pk alone is an event of one hit at the receive time, counted at the root."""
    assert Event(pk=("test",), dimensions=frozenset(), metrics={"hits": 1}, at=NOW) == parse(pk="test")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("test", ("test",)),
        ('["Product","123"]', ("Product", "123")),
        (["Product", 123], ("Product", "123")),
        ("['Product', '123']", ("Product", "123")),
        ('"quoted"', ("quoted",)),
    ],
)
def test_pk_forms(value, expected):
    """A pk is a string or a path, numbers becoming their text."""
    assert expected == parse(pk=value).pk


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, set()),
        ("_", set()),
        ("services", {("services",)}),
        (["a", "b", "c"], {("a", "b", "c")}),
        ('{"country":"US","device":{"os":"Mac"}}', {("country", "US"), ("device", "os", "Mac")}),
        ({"a": 5, "b": {"x": 1, "y": 2}}, {("a", "5"), ("b", "x", "1"), ("b", "y", "2")}),
        ({"flag": True, "none": None, "empty": {}}, {("flag", "true"), ("none", "null"), ("empty",)}),
        (["_", "country"], {("country",)}),
    ],
)
def test_dimension_forms(value, expected):
    """Dimensions become the set of leaf paths the event counts under."""
    assert frozenset(expected) == parse(pk="p", dimensions=value).dimensions


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"metrics": {"dollars": 200}}, {"dollars": 200, "hits": 1}),
        ({"metrics": '{"spent": .50}'}, {"spent": 0.5, "hits": 1}),
        ({"metric": '{"spent": .50}'}, {"spent": 0.5, "hits": 1}),
        ({"metrics": ["sales", "views"]}, {"sales": 1, "views": 1, "hits": 1}),
        ({"metrics": '["hits"]'}, {"hits": 1}),
        ({"metrics": "hits"}, {"hits": 1}),
        ({"metrics": {"hits": 5, "x": -2.25}}, {"hits": 5, "x": -2.25}),
        ({"metrics": {"x": "1e3"}}, {"x": 1000.0, "hits": 1}),
    ],
)
def test_metric_forms(raw, expected):
    """Metrics are kept exactly (floats, negatives); hits is 1 unless the event sets it."""
    assert expected == parse(pk="p", **raw).metrics


@pytest.mark.parametrize(
    "at, expected",
    [
        (1_700_000_000, 1_700_000_000.0),
        ("1700000000.5", 1_700_000_000.5),
        (1_700_000_000_250, 1_700_000_000.25),
        (1_700_000_000_250_000, 1_700_000_000.25),
        (
            "2026-11-27T10:30:00-07:00",
            datetime.datetime(2026, 11, 27, 17, 30, tzinfo=datetime.UTC).timestamp(),
        ),
        ("2026-11-27T17:30:00Z", datetime.datetime(2026, 11, 27, 17, 30, tzinfo=datetime.UTC).timestamp()),
        ("2026-11-27T17:30:00", datetime.datetime(2026, 11, 27, 17, 30, tzinfo=datetime.UTC).timestamp()),
    ],
)
def test_times(at, expected):
    """at is epoch seconds (or ms), or ISO 8601 converted by its offset (naive means UTC)."""
    assert expected == parse(pk="p", at=at).at


@pytest.mark.parametrize(
    "raw, field",
    [
        ({}, "pk"),
        ({"pk": {"a": 1}}, "pk"),
        ({"pk": "p", "dimensions": "{broken"}, "dimensions"),
        ({"pk": "p", "dimensions": {"tags": ["a", "b"]}}, "dimensions"),
        ({"pk": "p", "metrics": {"x": "lots"}}, "metrics.x"),
        ({"pk": "p", "metrics": {"x": float("nan")}}, "metrics.x"),
        ({"pk": "p", "metrics": {"a/b": 1}}, "metrics"),
        ({"pk": "p", "metrics": {"x": True}}, "metrics.x"),
        ({"pk": "p", "at": "yesterday-ish"}, "at"),
        ({"pk": ["x"] * 9}, "pk"),
        ({"pk": "p", "at": NOW + 2 * 86400}, "at"),
        ({"pk": "p", "metrics": {"x": 1e300}}, "metrics.x"),
        ({"pk": "p", "dimensions": '{"a":' * 2000 + "1" + "}" * 2000}, "dimensions"),
    ],
)
def test_errors_name_the_field(raw, field):
    """What cannot be understood is an error naming the field."""
    with pytest.raises(FieldError) as caught:
        events.from_fields(raw, NOW, LIMITS)

    assert field == caught.value.field


def test_json_line():
    """A UDP line may be a JSON object."""
    line = b'{"pk":["Product","123"],"dimensions":{"country":"US"},"metrics":{"revenue":10}}'

    expected = Event(("Product", "123"), frozenset([("country", "US")]), {"revenue": 10, "hits": 1}, NOW)
    assert expected == lines.parse_line(line, NOW, LIMITS)


@pytest.mark.parametrize(
    "line",
    [
        b'pk=test&dimensions=services&metrics={"dollars": 200}',
        b'/count?pk=test&dimensions=services&metrics={"dollars": 200}',
        b"?pk=test&dimensions=services&metrics=%7B%22dollars%22%3A%20200%7D",
    ],
)
def test_query_string_line(line):
    """A UDP line may be a /count query string, with or without its path."""
    expected = Event(("test",), frozenset([("services",)]), {"dollars": 200, "hits": 1}, NOW)
    assert expected == lines.parse_line(line, NOW, LIMITS)


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"gorets", "unrecognised"),
        (b"gorets:1|zz", "bad_statsd_type"),
        (b"{not json", "bad_json"),
        (b"[1, 2]", "unrecognised"),
        (b'{"pk": "\xff"}', "not_utf8"),
        (b'{"pk": "p", "metrics": "x" }' + b" " * 9000, "line_too_long"),
        (b'{"pk": ' + b"[" * 4000 + b"]" * 4000 + b"}", "bad_json"),
    ],
)
def test_bad_lines_have_reasons(line, reason):
    """A line that is not an event is rejected with a reason for the self-stats."""
    with pytest.raises(FieldError) as caught:
        lines.parse_line(line, NOW, LIMITS)

    assert reason == caught.value.reason


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_fail_cleanly(line):
    """No input makes the line parser raise anything but a FieldError."""
    try:
        event = lines.parse_line(line, NOW, LIMITS)
    except FieldError:
        return
    assert event.pk and "hits" in event.metrics


@given(dimension_values, metric_dicts)
def test_json_events_round_trip(dimensions, metrics):
    """Any event written as a JSON line parses with its metrics kept exactly and hits added."""
    line = json.dumps({"pk": "p", "dimensions": dimensions, "metrics": metrics}).encode()

    event = lines.parse_line(line, NOW, LIMITS)

    assert {"hits": 1, **metrics} == event.metrics


@pytest.mark.parametrize(
    "at, reason",
    [
        (NOW - 3601, "too_old"),
        (NOW - 3600, None),
        (NOW + 600, None),
        (NOW + 601, "too_new"),
        ("2026-11-28T00:39:59Z", "too_old"),  # NOW is 01:40:00 UTC
    ],
)
def test_time_window(at, reason):
    """An event more than max_past_seconds ago or max_future_seconds ahead is rejected with its reason."""
    limits = Limits(max_past_seconds=3600, max_future_seconds=600)
    try:
        events.from_fields({"pk": "p", "at": at}, NOW, limits)
        found = None
    except FieldError as error:
        found = error.reason

    assert reason == found


def test_past_bound_defaults_to_the_given_one():
    """Limits without a past bound take the one given (the schema's longest retention); one set is kept."""
    assert (100, 5) == (
        Limits().bounded_in_past(100).max_past_seconds,
        Limits(max_past_seconds=5).bounded_in_past(100).max_past_seconds,
    )
