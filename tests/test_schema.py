import pytest
from hypothesis import given
from hypothesis import strategies as st

from hailwhale.model.schema import DEFAULT, Resolution, SchemaError, parse_duration, parse_schema


def test_default_schema():
    """The default keeps minutes for 2 days, hours for 35 days and days for 3 years."""
    expected = (Resolution(60, 2 * 86400), Resolution(3600, 35 * 86400), Resolution(86400, 3 * 365 * 86400))
    assert expected == parse_schema(DEFAULT).resolutions


def test_schema_round_trips_as_text():
    """A schema prints in the form it is written in."""
    assert DEFAULT == str(parse_schema(DEFAULT))


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90", 90),
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("2d", 172800),
        ("1w", 604800),
        ("1mo", 2592000),
        ("3y", 94608000),
    ],
)
def test_durations(text, seconds):
    """Durations are graphite-style numbers with a unit; m is minutes, mo is 30 days."""
    assert seconds == parse_duration(text)


@pytest.mark.parametrize("text", ["7m:1d", "1m:30s", "1m:1d,1m:2d", "1h:1d,90m:1d", "1m", "0m:1d", "x:1d"])
def test_bad_schemas(text):
    """Intervals must divide a day, be multiples of the finest, and be kept at least one interval."""
    with pytest.raises(SchemaError):
        parse_schema(text)


@given(st.floats(0, 4e9), st.sampled_from([60, 300, 3600, 86400]))
def test_bucket_start_is_aligned_and_not_after(moment, interval):
    """A bucket starts at a multiple of its interval, at or before the moment, less than an interval before."""
    start = Resolution(interval, interval).bucket(moment)

    assert (0, True) == (start % interval, start <= moment < start + interval)
