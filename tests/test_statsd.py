"""statsd and DogStatsD lines: how each type, rate, tag and field maps onto an event."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hailwhale.aggregate import gauges
from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.aggregate.gauges import GaugeMemory
from hailwhale.formats import lines
from hailwhale.model.events import Event
from hailwhale.model.fields import FieldError, Limits

NOW = 1_795_830_000.0
LIMITS = Limits()


def parse(line: str) -> Event:
    return lines.parse_line(line.encode(), NOW, LIMITS)


def test_counter_with_rate_and_tags():
    """A counter's value is divided by its sample rate; dots make the pk path and tags the dimensions."""
    expected = Event(
        ("shop", "checkout"),
        frozenset([("country", "US"), ("device", "mac"), ("canary",)]),
        {"hits": 1, "count": 30.0},
        NOW,
    )

    assert expected == parse("shop.checkout:3|c|@0.1|#country:US,device:mac,canary")


def test_gauge_is_a_level():
    """A gauge is a level, not a sum; a signed value is a change to the last level."""
    absolute, relative = parse("queue.depth:42|g"), parse("queue.depth:-2|g")

    assert ({"gauge": 42.0}, False) == (absolute.levels, absolute.relative_levels)
    assert ({"gauge": -2.0}, True, {"hits": 1}) == (relative.levels, relative.relative_levels, relative.metrics)


def test_gauge_memory_applies_changes_in_order():
    """Changes add to the series' last level; a series never seen starts from 0; other series are apart."""
    memory = GaugeMemory(max_series=10)
    settled = [
        memory.settle(parse(line)).levels["gauge"]
        for line in ["q:+5|g", "q:10|g", "q:-3|g", "q:+1|g|#host:a", "q:1:+2:+3|g"]
    ]

    assert [5.0, 10.0, 7.0, 1.0, 6.0] == settled


def test_changes_to_gauges_are_held_as_changes_for_the_store():
    """
    Held for the store, a change after a value in one minute adds to it; a change with no
    value before it in the batch stays a change; the store's answer becomes each level.
    """
    accumulator = Accumulator(60, 100)
    for line in ["q:+5|g", "q:+1|g", "r:10|g", "r:-3|g"]:
        accumulator.add(parse(line))
    batch = accumulator.swap()
    series = gauges.level_series(batch.levels, batch.relative)
    steps = sorted(
        (name, [(change, value) for *_, change, value in named])
        for named_list in series.values()
        for name, named in named_list
    )
    settled = gauges.settled(batch.levels, series, {tag: [[42.0]] for tag in series})

    assert [('["gauge",[]]', [(False, 7.0)]), ('["gauge",[]]', [(True, 6.0)])] == steps
    assert [42.0, 42.0] == [levels["gauge"][1] for levels in settled.values()]


def test_gauge_memory_is_bounded():
    """Past its bound the memory forgets the least recently set series, which then starts from 0."""
    memory = GaugeMemory(max_series=2)
    for line in ["a:10|g", "b:10|g", "c:10|g", "a:+1|g"]:
        memory.settle(parse(line))

    assert (2, 1.0, 11.0) == (
        len(memory),
        memory.settle(parse("a:+0|g")).levels["gauge"],
        memory.settle(parse("c:+1|g")).levels["gauge"],
    )


@pytest.mark.parametrize("kind", ["ms", "h", "d"])
def test_timings_keep_sum_and_count(kind):
    """Timings, histograms and distributions keep a sum and a count, packed values and rate included."""
    event = parse(f"api.latency:10:20:30|{kind}|@0.5")

    assert {"hits": 1, f"{kind}.sum": 120.0, f"{kind}.count": 6.0} == event.metrics


def test_set_is_a_unique_count():
    """A set's value is a member of the unique count (any text, not a number)."""
    event = parse("site.visitors:user-42|s|#page:home")

    assert ({"unique": frozenset(["user-42"])}, {"hits": 1}) == (event.members, event.metrics)


def test_dogstatsd_timestamp_and_container():
    """|T sets the event time; a container id is ignored."""
    event = parse(f"jobs.done:1|c|c:83c0a99c0a54|T{int(NOW) - 60}")

    assert (NOW - 60, frozenset()) == (event.at, event.dimensions)


def test_crlf_and_spaces():
    """A CRLF line end and spaces around the type still parse."""
    assert {"hits": 1, "count": 2.0} == parse("a:2| c \r").metrics


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("a:1|c|@0", "bad_sample_rate"),
        ("a:1|c|@1.5", "bad_sample_rate"),
        ("a:1|c|@x", "bad_sample_rate"),
        ("a:x|c", "bad_statsd_value"),
        ("a:|c", "bad_statsd_value"),
        ("a:nan|g", "bad_statsd_value"),
        ("a:1e400|c", "bad_statsd_value"),
        ("a:1_0|c", "bad_statsd_value"),
        ("a:-1|ms", "bad_statsd_value"),
        ("a:1|kv", "bad_statsd_type"),
        ("a:1|c|zz", "bad_statsd_field"),
        (":1|c", "bad_pk"),
        ("a:1|c|#:v", "bad_tags"),
        ("a.b.c.d.e.f.g.h.i:1|c", "too_deep"),
        ("a:1|c|T99999999999999999", "too_new"),
        ("justaname", "unrecognised"),
        ("a:1", "unrecognised"),
    ],
)
def test_bad_lines_have_reasons(line, reason):
    """A line that is not a valid statsd line is rejected with a reason, like statsd's bad_lines_seen."""
    with pytest.raises(FieldError) as caught:
        parse(line)

    assert reason == caught.value.reason


names = st.text(
    st.characters(blacklist_characters=":|.,#\n\r@", blacklist_categories=["Cs"]), min_size=1, max_size=8
).filter(lambda s: s.strip() == s and s not in ("_",))


@given(
    path=st.lists(names, min_size=1, max_size=4).filter(lambda path: path[0][0] not in "{?"),
    value=st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    rate=st.sampled_from([None, 0.5, 0.25, 1.0]),
    tags=st.dictionaries(names, names, max_size=3),
)
def test_any_counter_line_maps_back(path, value, rate, tags):
    """
    Any well-formed counter line (whose name does not start like JSON or a query string) gives the pk, tags
    and rate-scaled value it was written from.
    """
    line = f"{'.'.join(path)}:{value!r}|c" + (f"|@{rate}" if rate else "")
    line += "|#" + ",".join(f"{k}:{v}" for k, v in tags.items()) if tags else ""
    event = parse(line)

    assert (tuple(path), frozenset(tags.items())) == (event.pk, event.dimensions)
    assert math.isclose(value / (rate or 1.0), event.metrics["count"], rel_tol=1e-12, abs_tol=1e-12)


@given(st.binary(max_size=200))
def test_any_bytes_give_an_event_or_a_reason(data):
    """No input makes the line parser fail other than with a FieldError carrying a reason."""
    try:
        event = lines.parse_line(data, NOW, LIMITS)
    except FieldError as error:
        assert error.reason
    else:
        assert (True, 1) == (bool(event.pk), event.metrics["hits"])
