"""The original's names, where users' code calls them: Python (Whale, the client) and HTTP, on a real daemon."""

import datetime
import urllib.parse
import urllib.request
import uuid

import pytest

from hailwhale import compat
from hailwhale.client import Client
from hailwhale.query import periods
from hailwhale.whale import Whale

NOW = 1_795_824_000.0 + 12 * 3600  # a Saturday, noon UTC


@pytest.fixture
def hw(daemon):
    Whale.configure(daemon.store_url)
    client = Client(daemon.base, udp=("127.0.0.1", daemon.udp_port))
    yield client
    client.close()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def get_text(daemon, path: str, **params) -> str:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{daemon.base}{path}?{query}", timeout=30) as response:
        return response.read().decode()


@pytest.mark.parametrize(
    "tzoffset, expected",
    [("-5.5", "UTC-05:30"), ("0.0", "UTC"), ("7.0", "UTC+07:00"), ("+5.75", "UTC+05:45"), ("-0700", "UTC-07:00")],
)
def test_tzoffset_in_float_hours(tzoffset, expected):
    """The float hours the original's callers sent are hours east of UTC, as hhmm is."""
    assert expected == str(periods.zone(tzoffset=tzoffset))


@pytest.mark.parametrize(
    "word, same_as", [("hours", "24h"), ("1d", "1d:365d"), ("1h", "1h:1d"), ("1m", "1m:1h"), ("3600", "1h:1d")]
)
def test_the_originals_period_words(word, same_as):
    """``hours`` is ``24h``; a bare interval names the original's longest period of that interval."""
    assert periods.resolve(same_as, NOW).boundaries == periods.resolve(word, NOW).boundaries


def test_period_none_is_the_default(hw):
    """period=None (and the text None in a URL) is the default period."""
    pk = unique("none")
    hw.count_now(pk)

    assert (1.0, 1.0, 1.0) == (
        hw.total(pk, period=None),
        hw.plotpoints(pk, period="None")["_"]["hits"][-1][1],
        Whale.plotpoints(pk, period=None)["_"]["hits"][-1][1],
    )


def test_count_decided_now_and_decide_in_the_originals_order(hw):
    """count_decided_now(pk_base, decision, option, dims, metrics), then decide(pk_base, decision, options, formula)."""
    pk = unique("decide")
    for _ in range(20):
        Whale.count_decided_now(pk, "language", "en", {"country": "US"}, {"dollars": 5, "visitors": 1})
        Whale.count_decided_now(pk, "language", "sp", {"country": "US"}, {"dollars": 0, "visitors": 1})

    assert ("en", "en", 20.0) == (
        Whale.decide(pk, "language", ["en", "sp"], "dollars/visitors", {"country": "US"}, explore=False),
        hw.decide(pk, "language", ["en", "sp"], "dollars/visitors", known_data={"country": "US"}, explore=False),
        Whale.total([pk, "language", "en"], "visitors", period="today"),
    )


def test_the_originals_zero_thresholds_mean_the_best():
    """bad_idea_threshold=0 and test_idea_threshold=0 (the original's "no exploring") is explore=False."""
    params = compat.decide_params("p", "d", ["a", "b"], "x/y", None, None, 0, 0)

    assert ("d", ["a", "b"], "x/y", False) == (
        params["decision"],
        params["options"],
        params["by_metric"],
        params["explore"],
    )


def test_one_name_as_the_options_is_an_error():
    """decide(pk, 'language') (the decision name where the options go, and no list after it) raises, never decides."""
    with pytest.raises(ValueError, match="one option is no choice"):
        Whale.decide("p", "language")


def test_aliases_answer_the_originals_shape(hw):
    """scalar_plotpoints with depth answers {dimension: {metric: series}}; ratio_plotpoints names num/den."""
    pk = unique("alias")
    Whale.count_now(pk, {"country": "US"}, {"value": 5, "hit": 1})
    Whale.count_now(pk, {"country": "EE"}, {"value": 1, "hit": 1})

    scalar = Whale.scalar_plotpoints(pk, "country", ["value"], 1, "today")
    ratio = hw.ratio_plotpoints(pk, "value", "hit", "country", 1, "today")

    assert (
        ["country", '["country", "US"]', '["country", "EE"]'],
        5.0,
        ["value/hit"],
        3.0,
    ) == (
        list(scalar),
        scalar['["country", "US"]']["value"][-1][1],
        list(ratio["country"]),
        ratio["country"]["value/hit"][-1][1],
    )


def test_unsupported_flags_are_refused():
    """The original's flags hailwhale does not do are errors, never ignored."""
    with pytest.raises(ValueError, match="with_totals"):
        Whale.scalar_plotpoints("p", with_totals=True)
    with pytest.raises(ValueError, match="points"):
        Whale.rank_subdimensions_ratio("p", "a", points=True)


def test_count_now_at_aware_and_naive_datetimes(hw):
    """at= a naive datetime is UTC; an aware one is converted (the original dropped its zone)."""
    pk = unique("at")
    noon = datetime.datetime.now(datetime.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    day = noon - datetime.timedelta(days=1)
    Whale.count_now(pk, at=day.replace(tzinfo=None))
    Whale.count_now(pk, at=day.astimezone(datetime.timezone(datetime.timedelta(hours=-7))))

    series = Whale.plotpoints(pk, period="1h:2d")["_"]["hits"]

    assert [[int(day.timestamp() * 1000), 2.0]] == [point for point in series if point[1]]


def test_the_originals_http_counting_tests(daemon):
    """The original's testCountingNowCorrectly and testCountingCorrectly: /count_now, and /count then /flush_hail."""
    pk = unique("http")
    now_answers = [get_text(daemon, "/count_now", pk=pk, dimensions='["empty"]', metrics='{"counting_now": 5}')]
    now_answers += [get_text(daemon, "/count_now", pk=pk, dimensions='["empty"]', metrics='{"counting_now": 5}')]
    count_answers = [
        get_text(daemon, "/count", pk=pk, dimensions='["empty"]', metrics='{"counting": 5}') for _ in "abc"
    ]
    flushed = get_text(daemon, "/flush_hail")
    totals = daemon.get(f"/totals?pk={pk}&dimensions=empty&metrics=%5B%22counting_now%22,%22counting%22%5D")

    assert (["OK", "OK"], ["OK"] * 3, "OK", {"counting_now": 10.0, "counting": 15.0}) == (
        now_answers,
        count_answers,
        flushed,
        totals["1m:1h"]["empty"],
    )


def test_the_originals_plotpoints_test(hw):
    """The original's testPlotpoints: points_type=list (and flot_time) are taken; the last points are 5 and 25."""
    pk = unique("plotpoints")
    for _ in range(5):
        Whale.count_now("test_plotpoints", pk, {"hits": 1, "values": 5})

    series = Whale.plotpoints("test_plotpoints", pk, ["hits", "values"], points_type=list, flot_time=True)[pk]
    remote = hw.plotpoints("test_plotpoints", pk, ["hits", "values"], points_type=list)[pk]

    assert (5.0, 25.0, series) == (series["hits"][-1][1], series["values"][-1][1], remote)


def test_cached_reads_are_plain_reads(hw):
    """cached_plotpoints, cached_totals and cached_rank answer what the plain calls answer (unmemoize taken)."""
    pk = unique("cached")
    Whale.count_now("test_cached", pk)
    Whale.count_now("test_cached", pk)

    assert (2.0, 2.0) == (
        sum(v for _, v in Whale.cached_plotpoints("test_cached", pk, period="1m:1h", unmemoize=True)[pk]["hits"]),
        Whale.cached_totals("test_cached", pk, "hits", "today")["today"][pk]["hits"],
    )


def test_the_original_mixin_names_its_replacement():
    """hailwhale.HailWhale fails saying what replaces it."""
    import hailwhale

    with pytest.raises(AttributeError, match="WhaleModel"):
        hailwhale.HailWhale  # noqa: B018


def test_from_hailwhale_import_whale():
    """from hailwhale import Whale (the original's import) gives the blocking API."""
    from hailwhale import Whale as Imported

    assert Whale is Imported
