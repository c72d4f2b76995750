"""The decision core: delta-method variances, shrinkage, Thompson draws and explanations, without a store."""

import json
import math
import random
import statistics

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hailwhale.decide import counting, thompson
from hailwhale.decide.thompson import Known, OptionData, Sums, choose, unit_variance


def reports(pairs) -> Sums:
    """The sums of per-report (numerator, denominator) pairs."""
    return Sums(
        n=len(pairs),
        y=sum(y for y, _ in pairs),
        y2=sum(y * y for y, _ in pairs),
        x=sum(x for _, x in pairs),
        x2=sum(x * x for _, x in pairs),
        xy=sum(x * y for y, x in pairs),
    )


def option(name, pairs, cells=None, values=None) -> OptionData:
    return OptionData(
        name,
        reports(pairs),
        {k: reports(v) for k, v in (cells or {}).items()},
        {d: {v: reports(p) for v, p in by.items()} for d, by in (values or {}).items()},
    )


pair_lists = st.lists(st.tuples(st.floats(0, 1000), st.floats(0.01, 100)), min_size=2, max_size=30)


@given(pair_lists, st.floats(-10, 10))
def test_unit_variance_is_the_residual_variance(pairs, r):
    """The per-report variance from the sums is the sample variance of num − r·den."""
    expected = statistics.variance([y - r * x for y, x in pairs])

    actual = unit_variance(reports(pairs), r)

    assert math.isclose(expected, actual, rel_tol=1e-6, abs_tol=1e-6 * (1 + max(y * y + x * x for y, x in pairs)))


def test_unit_variance_needs_two_reports():
    """One report says nothing about spread."""
    assert None is unit_variance(reports([(1.0, 1.0)]), 1.0)


def test_moments_are_added_to_a_decision_event():
    """Each sum but hits gets its square; each pair of up to six sums but hits gets its product."""
    expected = {"earned": 3, "spent": 2, "hits": 1, "earned.sq": 9, "spent.sq": 4, "earned*spent": 6}

    assert expected == counting.with_moments({"earned": 3, "spent": 2, "hits": 1})


def test_no_data_is_uniform():
    """Without data every option is as likely, whatever the draw."""
    options = [option(name, []) for name in "abc"]

    picks = {choose(options, [], random.Random(seed)).index for seed in range(40)}
    explained = choose(options, [], random.Random(0), explain=True)

    assert {0, 1, 2} == picks
    assert ("uniform", 1 / 3) == (explained.policy, explained.explanation["p_choose"])


def test_clear_winner_is_chosen_and_explained():
    """An option twice as good on 200 reports each is chosen nearly always, and its P(best) says so."""
    rng = random.Random(1)
    good = [(2.0 + (i % 3) * 0.1, 1.0) for i in range(200)]
    poor = [(1.0 + (i % 3) * 0.1, 1.0) for i in range(200)]
    options = [option("poor", poor), option("good", good)]

    picks = [choose(options, [], rng).index for _ in range(200)]
    explained = choose(options, [], random.Random(2), explain=True).explanation

    assert picks.count(1) >= 190
    assert [0.0, 1.0] == [row["p_best"] for row in explained["options"]]
    assert 2.0 < explained["options"][1]["estimate"] < 2.1  # 2.1, shrunk a little toward the pooled 1.6


def test_goal_min_prefers_the_lowest():
    """goal=min turns the choice around."""
    options = [
        option("slow", [(3.0 + i % 2, 1.0) for i in range(50)]),
        option("fast", [(1.0 + i % 2, 1.0) for i in range(50)]),
    ]

    assert (1, 0) == (
        choose(options, [], random.Random(0), goal="min", explore=False).index,
        choose(options, [], random.Random(0), goal="max", explore=False).index,
    )


def test_a_seeded_generator_reproduces_the_choice():
    """The same seed gives the same choices."""
    options = [option(name, [(1.0 + (i % 7) / 3, 1.0) for i in range(30)]) for name in "abcd"]

    first = [choose(options, [], random.Random(seed)).index for seed in range(30)]
    second = [choose(options, [], random.Random(seed)).index for seed in range(30)]

    assert first == second
    assert len(set(first)) > 1


def _country_data(interaction: bool):
    """
    Two options, two countries, 400 reports per cell, one in ten converting; with
    ``interaction`` b wins in DE and a in US, else a wins in both by 5%.
    """
    ratio = (
        {("a", "US"): 2.0, ("a", "DE"): 1.0, ("b", "US"): 1.0, ("b", "DE"): 2.0}
        if interaction
        else {("a", "US"): 2.0, ("a", "DE"): 1.0, ("b", "US"): 1.9, ("b", "DE"): 0.95}
    )
    cells = {(o, c): [(ratio[o, c] * 10 * (i % 10 == 0), 1.0) for i in range(400)] for o in "ab" for c in ("US", "DE")}
    known = Known("country", "DE")
    options = [
        option(
            o,
            cells[o, "US"] + cells[o, "DE"],
            {known: cells[o, "DE"]},
            {"country": {c: cells[o, c] for c in ("US", "DE")}},
        )
        for o in "ab"
    ]
    return options, known


def test_a_dimension_that_matters_is_trusted():
    """When options rank differently by country, the visitor's country decides and its data weighs fully."""
    options, known = _country_data(interaction=True)

    explained = choose(options, [known], random.Random(0), explain=True).explanation

    assert "b" == explained["option"]
    assert {"country": "DE"} == explained["known"]
    assert all(row["dimensions"][0]["weight"] > 0.8 for row in explained["options"])
    assert "country" == explained["driver"]["dimension"]


def test_a_dimension_that_does_not_matter_is_shrunk_away():
    """When every option moves alike across countries, the cells are shrunk to the global estimates."""
    options, known = _country_data(interaction=False)

    explained = choose(options, [known], random.Random(0), explain=True).explanation

    assert "a" == explained["option"]
    assert all(row["dimensions"][0]["weight"] < 0.5 for row in explained["options"])


def test_known_dimensions_without_data_are_ignored():
    """A known dimension no option has data for is reported as ignored, not an error."""
    options = [option(name, [(1.0 + i % 2, 1.0) for i in range(20)]) for name in "ab"]

    explained = choose(options, [Known("browser", "lynx")], random.Random(0), explain=True).explanation

    assert [{"dimension": "browser", "value": "lynx", "reason": "no data in the window"}] == explained[
        "ignored_dimensions"
    ]
    assert [[], []] == [row["dimensions"] for row in explained["options"]]


def test_negative_objectives_use_the_linear_scale():
    """Profits below zero cannot be logged: the choice runs on the ratio itself."""
    options = [
        option("loss", [(-2.0 + i % 2, 1.0) for i in range(100)]),
        option("gain", [(1.0 + i % 2, 1.0) for i in range(100)]),
    ]

    explained = choose(options, [], random.Random(0), explain=True).explanation

    assert ("gain", "linear") == (explained["option"], explained["model"]["scale"])


def test_exploration_floor():
    """Even a hopeless option keeps its share of the 1% of choices made uniformly."""
    options = [option("good", [(10.0, 1.0)] * 500), option("bad", [(0.1 + (i % 2) * 0.01, 1.0) for i in range(500)])]

    explained = choose(options, [], random.Random(0), explain=True).explanation
    picks = [choose(options, [], random.Random(seed)).index for seed in range(4000)]

    assert math.isclose(
        0.005, explained["p_choose"] if explained["option"] == "bad" else 1 - explained["p_choose"], abs_tol=1e-9
    )
    assert 5 <= picks.count(1) <= 40


sums_lists = st.lists(st.tuples(st.floats(-50, 1000), st.one_of(st.just(0.0), st.floats(0.01, 100))), max_size=8)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(sums_lists, sums_lists), min_size=1, max_size=4),
    st.sampled_from(["max", "min"]),
    st.integers(0, 2**32),
)
@example([([], [(1.0, 0.0)]), ([], [(0.0, 0.0), (2.225073858507e-311, 1.0)])], "max", 0)  # a ratio below 1/float max
def test_any_counters_give_a_choice_and_a_finite_explanation(data, goal, seed):
    """Whatever the counters hold, the choice is one of the options and the explanation is plain finite JSON."""
    known = Known("country", "US")
    options = [
        option(str(k), overall + cell, {known: cell}, {"country": {"US": cell, "DE": overall}})
        for k, (overall, cell) in enumerate(data)
    ]

    result = choose(options, [known], random.Random(seed), goal=goal, explain=True)

    assert 0 <= result.index < len(options)
    assert thompson.pick_window([options, options], [known]) in (0, 1)
    json.dumps(result.explanation, allow_nan=False)
    assert math.isclose(1.0, sum(row["p_best"] for row in result.explanation["options"]))


def test_the_shortest_window_with_enough_decisions_is_picked():
    """Seven days when they hold enough decisions to tell options apart, the longest window when they do not."""

    def converting(count):  # one decision in ten earns 10: CV² = 9, so 900 decisions per option are enough
        return [option(name, [(10.0 * (i % 10 == 0), 1.0) for i in range(count)]) for name in "ab"]

    few, many, more = converting(20), converting(3000), converting(9000)

    assert (0, 1, 1) == (
        thompson.pick_window([many, more], []),
        thompson.pick_window([few, more], []),
        thompson.pick_window([few, few], []),
    )


def _aggregates(visitors: float):
    """
    Three countries x three languages, one aggregate report per cell (``revenue``,
    ``visitors``): each country's best language earns at least twice the others there.
    """
    rates = {
        ("us", "en"): 2.0,
        ("us", "sp"): 1.0,
        ("us", "pt"): 0.9,
        ("mx", "en"): 1.1,
        ("mx", "sp"): 2.2,
        ("mx", "pt"): 1.0,
        ("br", "en"): 1.0,
        ("br", "sp"): 1.2,
        ("br", "pt"): 2.4,
    }

    def one(y, x):
        return Sums(n=1, y=y, y2=y * y, x=x, x2=x * x, xy=x * y)

    by_language = {
        language: {country: one(rates[country, language] * visitors, visitors) for country in ("us", "mx", "br")}
        for language in ("en", "sp", "pt")
    }
    return by_language


def _aggregate_options(by_language, country):
    known = Known("country", country)
    options = []
    for language, cells in by_language.items():
        overall = thompson.total(list(cells.values()))
        options.append(
            OptionData(language, overall, {known: cells.get(country, thompson.ZERO)}, {"country": cells}, overall)
        )
    return options, known


def test_aggregated_reports_weigh_their_visitors():
    """
    One report per (country, language) of 10,000 visitors each is 10,000 units of evidence:
    with a 2x gap each country gets its best language at least 95% of the time, and the
    explanation says each option's estimate is worth about its cell's 10,000 visitors.
    """
    by_language = _aggregates(10_000)

    for country, best in (("us", 0), ("mx", 1), ("br", 2)):
        options, known = _aggregate_options(by_language, country)
        picks = [choose(options, [known], random.Random(seed)).index for seed in range(400)]
        explained = choose(options, [known], random.Random(0), explain=True).explanation

        assert picks.count(best) >= 0.95 * len(picks), (country, picks.count(best))
        assert [10_000.0] * 3 == [row["dimensions"][0]["units"] for row in explained["options"]]
        assert all(9_000 <= row["effective_n"] <= 10_100 for row in explained["options"]), explained["options"]
        assert [30_000.0] * 3 == [row["units"] for row in explained["options"]]


def test_per_unit_reports_and_their_aggregate_estimate_alike():
    """The same visitors reported one by one or as one aggregate give the same estimate; only the spread differs."""
    one_by_one = [option(name, [(rate * (i % 2) * 2, 1.0) for i in range(1000)]) for name, rate in (("a", 1), ("b", 2))]
    aggregated = [
        OptionData(name, Sums(n=1, y=rate * 1000, y2=(rate * 1000) ** 2, x=1000, x2=1000**2, xy=rate * 1000**2))
        for name, rate in (("a", 1), ("b", 2))
    ]

    per_unit = choose(one_by_one, [], random.Random(0), explain=True).explanation["options"]
    whole = choose(aggregated, [], random.Random(0), explain=True).explanation["options"]

    assert [round(row["estimate"], 2) for row in per_unit] == [round(row["estimate"], 2) for row in whole]
    assert [1.0, 0.0] == [row["p_best"] for row in whole][::-1]


def test_a_cell_without_data_is_as_uncertain_as_options_differ():
    """An option never shown in the visitor's country is not ruled out there: its interval spans how cells differ."""
    by_language = _aggregates(10_000)
    by_language["pt"].pop("us")  # pt was never shown in the US
    options, known = _aggregate_options(by_language, "us")

    explained = choose(options, [known], random.Random(0), explain=True).explanation
    low, high = explained["options"][2]["interval_90"]

    assert high / low > 2
    assert explained["options"][0]["p_best"] > 0.5
