"""
Distributions (statsd timers and histograms, ``*.dist`` metrics): quantiles within 1 % that
add up over time, roll-ups, pk prefixes, dimensions and writers.
"""

import math
import random

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hailwhale.aggregate import rollup
from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.formats import statsd
from hailwhale.model import events, keys, kinds, sketch
from hailwhale.model.fields import FieldError, Limits
from hailwhale.model.schema import parse_schema
from hailwhale.query import formula, planner, requests
from hailwhale.query.formula import FormulaError
from hailwhale.store import Store
from hailwhale.testing import upcoming

SCHEMA = parse_schema("1m:2d,1h:35d,1d:3y")
NOW = int(upcoming(13, 0, 30))
START = (NOW - 2 * 3600) // 60 * 60
QUANTILES = (0.0, 0.01, 0.05, 0.5, 0.9, 0.99, 0.999, 1.0)


def exact(values: list[float], q: float) -> float:
    """The nearest-rank quantile: the smallest value with at least q of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def close(expected: float, actual: float) -> bool:
    """Within 1 %, or both within TINY of zero (the sketch counts those values as zero)."""
    return abs(actual - expected) <= sketch.ACCURACY * abs(expected) + sketch.TINY


def counts(values: list[float]) -> dict[str, float]:
    found: dict[str, float] = {}
    for value in values:
        found[sketch.bucket(value)] = found.get(sketch.bucket(value), 0) + 1
    return found


latencies = st.lists(st.floats(0.001, 1e6, allow_nan=False), min_size=1, max_size=300)
heavy = st.lists(
    st.builds(lambda u, a: (1 - u) ** (-1 / a), st.floats(0, 0.999999), st.floats(0.5, 3)), min_size=1, max_size=300
)
mixed = st.lists(st.one_of(st.just(0.0), st.floats(-1e9, 1e9, allow_nan=False)), min_size=1, max_size=300)


@given(st.one_of(latencies, heavy, mixed))
@example([1.457261505250946e-10])  # below TINY: counted as zero, so within TINY, not within 1 %
def test_every_quantile_is_within_one_per_cent(values):
    """
    For latency-like, heavy-tailed and signed values with zeros, each quantile is within 1 % of
    the exact one (a value within TINY of zero, within TINY).
    """
    sketched = counts(values)

    assert all(close(exact(values, q), sketch.quantile(sketched, q)) for q in QUANTILES)


@given(st.lists(latencies, min_size=2, max_size=5))
def test_sketches_merge_by_adding_counts(parts):
    """Sketches of parts added bucket by bucket are the sketch of the whole: quantiles of the union."""
    merged: dict[str, float] = {}
    for part in parts:
        for name, count in counts(part).items():
            merged[name] = merged.get(name, 0) + count
    union = [value for part in parts for value in part]

    assert all(close(exact(union, q), sketch.quantile(merged, q)) for q in QUANTILES)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("ms.dist:p99", ("ms.dist", 0.99)),
        ("ms.dist:p50", ("ms.dist", 0.5)),
        ("ms.dist:p5", ("ms.dist", 0.05)),
        ("ms.dist:p999", ("ms.dist", 0.999)),
        ("ms.dist:p99.9", ("ms.dist", 0.999)),
        ("ms.dist:max", ("ms.dist", 1.0)),
        ("ms.dist:min", ("ms.dist", 0.0)),
        ("ms:p99", None),
        ("ms.dist:mean", None),
    ],
)
def test_quantile_names(name, expected):
    """A quantile is read as <distribution>:pNN (NN per cent; more digits a fraction), :min, :median or :max."""
    assert expected == kinds.quantile_of(name)


def test_statsd_timers_feed_distributions_weighted_by_the_rate():
    """A timing (and h, d) keeps its sum and count and also counts each value 1/rate times in <type>.dist."""
    event = statsd.parse_line("api.latency:10:30|ms|@0.5", NOW, Limits())

    assert (
        {"hits": 1, "ms.sum": 80.0, "ms.count": 4.0},
        {"ms.dist": {sketch.bucket(10): 2.0, sketch.bucket(30): 2.0}},
    ) == (dict(event.metrics), dict(event.samples))


def test_json_distributions_take_a_value_or_a_list():
    """A *.dist metric takes a number or a list of numbers; anything else is a bad metric; a quantile is not counted."""
    event = events.from_fields({"pk": "p", "metrics": {"render.dist": [5, 5, 7], "x": 1}}, NOW, Limits())

    assert {"render.dist": {sketch.bucket(5): 2, sketch.bucket(7): 1}} == dict(event.samples)
    for bad in ({"render.dist": "slow"}, {"render.dist:p99": 5}):
        with pytest.raises(FieldError):
            events.from_fields({"pk": "p", "metrics": bad}, NOW, Limits())


def test_formulas_read_quantiles():
    """ms:p99 reads statsd's ms.dist; a bare distribution must be read by a quantile."""
    assert ("ms.dist:p99", "latency.dist:p50") == (
        formula.parse("ms:p99").numerator.name,
        formula.parse("latency.dist:p50/hits").numerator.name,
    )
    with pytest.raises(FormulaError):
        formula.parse("ms.dist")


def write(store: Store, seq: int, raw_events: list[dict]) -> None:
    accumulator = Accumulator(60, 100_000)
    for raw in raw_events:
        accumulator.add(events.from_fields(raw, NOW, Limits()))
    batch = accumulator.swap()
    store.apply(rollup.plan(batch.entries, SCHEMA, NOW, batch.levels, batch.members, batch.samples), seq, set())


def read(store: Store, pk, dimension: str, metrics: list[str], period: str, series: bool = False):
    params = {"pk": pk, "dimension": dimension, "metrics": metrics, "period": period}
    if series:
        return requests.run(planner.plotpoints_from_params(params, NOW, SCHEMA, Limits()), store)
    (values,) = requests.run(planner.totals_from_params(params, NOW, SCHEMA, Limits()), store)[period].values()
    return values


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32), st.lists(st.integers(0, 119), min_size=1, max_size=3))
def test_quantiles_hold_across_roll_ups_prefixes_dimensions_and_writers(store_url, seed, folds):
    """
    Values written by two writers (two daemons) at random minutes, folded into hours and days
    at random points: every quantile of a window (a day, an hour, a minute; a pk and its
    prefix; the root and a dimension) is within 1 % of the exact quantile of its values.
    """
    client = redis.Redis.from_url(store_url)
    client.flushall()
    client.set(keys.LAYOUT_KEY, START)
    writers = [Store.connect(store_url), Store.connect(store_url)]
    rng = random.Random(seed)
    written = []
    for seq in range(1, 9):
        batch = []
        for _ in range(rng.randint(1, 40)):
            at = START + 60 * rng.randint(0, 119) + 5
            country = rng.choice(["US", "UK"])
            value = rng.choice([0.0, rng.lognormvariate(3, 1.5), rng.paretovariate(1.2)])
            batch.append(
                {"pk": ["api", "latency"], "dimensions": {"country": country}, "metrics": {"t.dist": value}, "at": at}
            )
            written.append((at, country, value))
        write(writers[seq % 2], seq, batch)
        if folds and rng.random() < 0.4:
            writers[0].fold([keys.tag(("api",)), keys.tag(("api", "latency"))], START + 60 * folds.pop(), NOW, SCHEMA)

    asked = [f"t.dist:p{p}" for p in ("0", "50", "90", "99", "999")] + ["t.dist:max"]
    qs = [0.0, 0.5, 0.9, 0.99, 0.999, 1.0]
    for pk in (["api"], ["api", "latency"]):
        for dimension, country in (("_", None), ('["country", "UK"]', "UK")):
            chosen = [v for at, c, v in written if country in (None, c)]
            answer = read(writers[0], pk, dimension, asked, "today")
            expected = [exact(chosen, q) if chosen else 0.0 for q in qs]
            assert all(close(want, answer[name]) for want, name in zip(expected, asked))
            (by_hour,) = read(writers[1], pk, dimension, ["t.dist:p99"], "1h:1d", series=True).values()
            for moment, value in by_hour["t.dist:p99"]:
                inside = [
                    v for at, c, v in written if moment <= 1000 * at < moment + 3_600_000 and country in (None, c)
                ]
                assert close(exact(inside, 0.99) if inside else 0.0, value)


def test_grouping_sorts_by_a_quantile(store_url):
    """The slowest country by p99: a grouping sorted by a quantile, read child by child."""
    client = redis.Redis.from_url(store_url)
    client.flushall()
    store = Store.connect(store_url)
    rows = [
        {"pk": "api", "dimensions": {"country": c}, "metrics": {"t.dist": v}, "at": NOW}
        for c, values in (("US", [10, 20, 30]), ("UK", [5, 500]), ("DE", [40, 41]))
        for v in values
    ]
    write(store, 1, rows)

    params = {
        "pk": "api",
        "dimension": "country",
        "metrics": ["t.dist:p99"],
        "period": "today",
        "depth": 1,
        "sort": "-t.dist:p99",
    }
    answer = requests.run(planner.totals_from_params(params, NOW, SCHEMA, Limits()), store)["today"]["rows"]

    assert ["country", "UK", "DE", "US"] == [row["path"][-1] for row in answer]
    assert close(500.0, answer[1]["metrics"]["t.dist:p99"])
