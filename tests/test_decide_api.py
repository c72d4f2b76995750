"""Decisions through the Python API and HTTP, on the real store: the seed's spellings and the original's tests."""

import json
import random
from urllib.parse import quote

import pytest

from hailwhale.whale import Whale
from tests.test_web import NOW, Api

SCHEMA = "1m:2d,1h:35d,1d:3y"


@pytest.fixture
def whale(store_url):
    Whale.configure(store_url, schema=SCHEMA)
    yield Whale


@pytest.fixture
def api(store):
    return Api(store)


def visitors(whale, pk, decision, option, count, dollars_each, dimensions=None):
    """``count`` decisions of ``option``, each one visitor who spent ``dollars_each``."""
    for _ in range(count):
        whale.count_decision(
            pk,
            decided={decision: option},
            metric={"dollars": dollars_each, "visitors": 1},
            dimensions=dimensions,
            now=NOW,
        )


# -- the original's decision tests (reference §13, tests 13-15), ported --------------------
#
# The original counted each cell as one aggregate (``dollars=5000, visitors=1000``).  Here a
# report is a decision, the unit the variances are computed over, so each aggregate is
# counted as its visitors, one report each (scaled down where the original used thousands).
# The original's ``bad_idea_threshold=0, test_idea_threshold=0`` (no exploration) is
# ``explore=False``: the option with the best estimate.


def test_basic_decision_without_data_is_uniform(whale):
    """With no data every option is possible: the choice is uniform, and says so."""
    chosen = {
        whale.decide(
            "test_basic_decision",
            [1, 2, 3],
            decision="random",
            by_metric="dollars/visitors",
            rng=random.Random(seed),
            now=NOW,
        )
        for seed in range(30)
    }
    explained = whale.decide(
        "test_basic_decision",
        [1, 2, 3],
        decision="random",
        by_metric="dollars/visitors",
        explain=True,
        rng=random.Random(0),
        now=NOW,
    )

    assert {1, 2, 3} == chosen
    assert ("uniform", 1 / 3) == (explained["policy"], explained["p_choose"])


def test_basic_decision(whale):
    """a earns $5 a visitor, b and c nothing, d had one lucky visitor: a is chosen; b and c are never best."""
    pk = ["test_basic_decision"]
    visitors(whale, pk, "x", "a", 100, 5)
    visitors(whale, pk, "x", "b", 200, 0)
    visitors(whale, pk, "x", "c", 200, 0)
    visitors(whale, pk, "x", "d", 1, 5)
    options = {"x": ["a", "b", "c", "d"]}

    greedy = whale.decide(pk, options, by_metric="dollars/visitors", explore=False, now=NOW)
    explained = whale.decide(pk, options, by_metric="dollars/visitors", explain=True, rng=random.Random(1), now=NOW)
    p_best = {row["option"]: row["p_best"] for row in explained["options"]}

    assert "a" == greedy
    assert max(p_best, key=p_best.get) == "a"
    assert (0.0, 0.0) == (p_best["b"], p_best["c"])


def test_informed_decision_without_uk_data_for_a(whale):
    """
    The original's data: a earns $5 a visitor (no country known), b earns $5 in the UK and
    nothing elsewhere.  For an unknown visitor a wins; for a UK visitor a has no UK data, so
    the model assumes UK lifts a as it lifts b, and a stays ahead (the original's "b > 70
    times in 100" came from its weighting, not from the data).
    """
    pk = ["test_informed_decision"]
    visitors(whale, pk, "x", "a", 1000, 5)
    visitors(whale, pk, "x", "b", 200, 0)
    visitors(whale, pk, "x", "b", 200, 5, {"country": "uk"})
    visitors(whale, pk, "x", "c", 750, 0)
    visitors(whale, pk, "x", "d", 1, 5)
    options = {"x": ["a", "b", "c", "d"]}

    anyone = whale.decide(pk, options, by_metric="dollars/visitors", explore=False, now=NOW)
    uk = whale.decide(pk, options, {"country": "uk"}, "dollars/visitors", explain=True, rng=random.Random(2), now=NOW)
    estimates = {row["option"]: row["estimate"] for row in uk["options"]}

    assert "a" == anyone
    assert 4.5 < estimates["b"] < 5.5  # b's UK data counts in full
    assert max(estimates, key=estimates.get) == "a"
    assert "a" == whale.decide(pk, options, {"country": "uk"}, "dollars/visitors", explore=False, now=NOW)


def test_informed_decision(whale):
    """
    The same, with the UK measured for a (worse there) and c: a wins overall, b in the UK,
    where b is chosen most often (d, one visitor with no UK data, is still explored).
    """
    pk = ["test_informed_decision"]
    visitors(whale, pk, "x", "a", 1000, 5)
    visitors(whale, pk, "x", "a", 100, 1, {"country": "uk"})
    visitors(whale, pk, "x", "b", 200, 0)
    visitors(whale, pk, "x", "b", 200, 5, {"country": "uk"})
    visitors(whale, pk, "x", "c", 750, 0)
    visitors(whale, pk, "x", "c", 75, 0, {"country": "uk"})
    visitors(whale, pk, "x", "d", 1, 5)
    options = {"x": ["a", "b", "c", "d"]}
    rng = random.Random(3)

    anyone = whale.decide(pk, options, by_metric="dollars/visitors", explore=False, now=NOW)
    uk = whale.decide(pk, options, {"country": "uk"}, "dollars/visitors", explore=False, now=NOW)
    chosen = [whale.decide(pk, options, {"country": "uk"}, "dollars/visitors", rng=rng, now=NOW) for _ in range(100)]

    assert ("a", "b") == (anyone, uk)
    assert chosen.count("b") > 60
    assert chosen.count("a") <= 5  # the exploration floor only


@pytest.mark.parametrize("geo, best", [("us", {"en"}), ("mx", {"sp", "en"}), ("br", {"pt"})])
def test_tricky_decision(whale, geo, best):
    """The us/mx/br x en/sp/pt grid, the visitor's country a plain string dimension: each gets its best language."""
    pk = "test_tricky_decision"
    grid = {  # (geo, language): ($ per visitor, visitors), the original's figures / 1000
        ("us", "en"): (5, 300),
        ("us", "sp"): (0.1, 10),
        ("us", "pt"): (0.06, 5),
        ("mx", "en"): (1, 100),
        ("mx", "sp"): (2, 100),
        ("mx", "pt"): (0.02, 10),
        ("br", "en"): (3, 100),
        ("br", "sp"): (3, 50),
        ("br", "pt"): (10, 50),
    }
    for (country, language), (dollars, count) in grid.items():
        visitors(whale, pk, "language", language, count, dollars, country)
    options = {"language": ["en", "sp", "pt"]}
    rng = random.Random(4)

    greedy = whale.decide(pk, options, geo, "dollars/visitors", explore=False, now=NOW)
    drawn = [whale.decide(pk, options, geo, "dollars/visitors", rng=rng, now=NOW) for _ in range(50)]

    assert greedy in best
    assert sum(choice in best for choice in drawn) >= 45


# -- the seed's Python spelling ----------------------------------------------------------


def test_seed_python_example(whale):
    """The seed README's calls, verbatim: counted under pk + decision + option, and a choice among EN and SP."""
    whale.count_decision(
        ["Product", "123"],
        decided={"language": "EN"},
        metric={"revenue": 500, "visitors": 100},
        dimensions={"country": "US", "device": "Mac OS X"},
    )
    whale.count_decision(
        ["Product", "123"],
        decided={"language": "SP"},
        metric={"revenue": 0, "visitors": 100},
        dimensions={"country": "US", "device": "Mac OS X"},
    )

    chosen = whale.decide(
        ["Product", "123"], options={"language": ["EN", "SP"]}, known_dimensions={"country": "US", "device": "Mac OS X"}
    )

    assert chosen in ("EN", "SP")
    assert 500 == whale.total(["Product", "123", "language", "EN"], "revenue", {"country": "US"}, "today")
    assert 2 == whale.total(["Product", "123", "language"], "hits", period="today")


def test_count_decision_keeps_squares_and_products(whale):
    """Each sum metric but hits also counts its square, and each pair its product: the variances need them."""
    whale.count_decision("shop", option="b", metric={"earned": 3, "spent": 2}, now=NOW)
    whale.count_decision("shop", option="b", metric={"earned": 1, "spent": 4}, now=NOW)

    totals = whale.totals(
        ["shop", "b"],
        metrics=["earned", "earned.sq", "spent.sq", "earned*spent", "hits", "hits.sq"],
        period="today",
        now=NOW,
    )

    assert {"earned": 4, "earned.sq": 10, "spent.sq": 20, "earned*spent": 10, "hits": 2, "hits.sq": 0} == totals[
        "today"
    ]["_"]


def test_goal_min(whale):
    """goal=min picks the option with the lowest objective."""
    for option, cost in (("slow", 3.0), ("fast", 1.0)):
        for i in range(50):
            whale.count_decision("checkout", option=option, metric={"latency": cost + (i % 5) / 10}, now=NOW)

    lowest = whale.decide("checkout", ["slow", "fast"], by_metric="latency", goal="min", explore=False, now=NOW)
    highest = whale.decide("checkout", ["slow", "fast"], by_metric="latency", explore=False, now=NOW)

    assert ("fast", "slow") == (lowest, highest)


def test_sticky_unit(whale):
    """The same unit gets the same answer whatever the generator; different units spread over the options."""
    for option in ("a", "b", "c"):
        visitors(whale, "sticky", "x", option, 30, 1)
    options = {"x": ["a", "b", "c"]}

    same = {
        whale.decide(
            "sticky", options, by_metric="dollars/visitors", unit="visitor-1", rng=random.Random(seed), now=NOW
        )
        for seed in range(20)
    }
    spread = {
        whale.decide("sticky", options, by_metric="dollars/visitors", unit=f"visitor-{n}", now=NOW) for n in range(40)
    }

    assert 1 == len(same)
    assert {"a", "b", "c"} == spread


def test_decide_is_reproducible_with_a_seeded_generator(whale):
    """Two generators seeded alike make the same choices and the same explanation."""
    visitors(whale, "seeded", "x", "a", 40, 1)
    visitors(whale, "seeded", "x", "b", 40, 1.2)

    first = [
        whale.decide(
            "seeded", {"x": ["a", "b"]}, by_metric="dollars/visitors", explain=True, rng=random.Random(9), now=NOW
        )
        for _ in range(3)
    ]
    second = [
        whale.decide(
            "seeded", {"x": ["a", "b"]}, by_metric="dollars/visitors", explain=True, rng=random.Random(9), now=NOW
        )
        for _ in range(3)
    ]

    assert first == second


# -- HTTP ---------------------------------------------------------------------------------


def _count_decision(api, query):
    response = api.get("/count_decision?" + query)
    assert 200 == response.code, api.content(response)
    return api.content(response)


def test_http_seed_spelling(api):
    """The seed README's URLs, verbatim: decisions counted under [PageVariation, option], a choice among a, b, c."""
    for option, _spent, earned in (("a", 0.5, 0), ("b", 0.5, 25), ("c", 0.5, 1)):
        for _ in range(5):
            assert b"OK" == _count_decision(
                api, f'pk=PageVariation&option={option}&dimensions={{"country": "US"}}&metric={{"spent": .50}}'
            )
        assert b"OK" == _count_decision(
            api, f'pk=PageVariation&option={option}&dimensions={{"country": "US"}}&metric={{"earned": {earned}}}'
        )
    api.flush()

    response = api.get(
        """/decide?pk=PageVariation&options=['a', 'b', 'c']&dimensions={"country": "US"}"""
        "&by_metric=earned/spent"
    )
    answer = api.json(response)

    assert 200 == response.code
    assert answer["option"] in ("a", "b", "c")
    expected = {"today": {'["country", "US"]': {"spent": 2.5, "earned": 25.0, "hits": 6.0}}}
    assert expected == api.totals(
        pk='["PageVariation", "b"]', metrics='["spent", "earned", "hits"]', dimensions='{"country": "US"}'
    )


def test_http_decisions_rank(api):
    """A decision's numbers are ranked like any other: /rank over its country values."""
    for country, earned in (("US", 10), ("DE", 1)):
        for _ in range(10):
            _count_decision(
                api, f'pk=Page&option=a&dimensions={{"country": "{country}"}}&metric={{"earned": {earned}}}'
            )
    api.flush()

    response = api.get('/rank?pk=["Page","a"]&dimension=country&metric=earned/hits&period=today')
    ranked = api.json(response)

    assert 200 == response.code
    assert ['["country", "US"]', '["country", "DE"]'] == [key for key in ranked if key != "country"]


def test_http_explain_shape(api):
    """explain=true answers the option, policy, propensity, driver, model and per-option detail."""
    for option, earned in (("a", 1), ("b", 3)):
        for i in range(30):
            _count_decision(
                api,
                f'pk=Page&decision=variant&option={option}&dimensions={{"country": "US"}}'
                f'&metric={{"spent": 1, "earned": {earned + (i % 3)}}}',
            )
    api.flush()

    answer = api.json(
        api.get(
            '/decide?pk=Page&decision=variant&options=["a","b"]&by_metric=earned/spent'
            '&dimensions={"country": "US", "device": "Mac"}&explain=true&unit=v1'
        )
    )

    assert {
        "option",
        "policy",
        "p_choose",
        "goal",
        "known",
        "ignored_dimensions",
        "driver",
        "model",
        "options",
        "decision",
        "formula",
        "unit",
        "window",
    } == set(answer)
    assert [{"dimension": "device", "value": "Mac", "reason": "no data in the window"}] == answer["ignored_dimensions"]
    assert ["a", "b"] == [row["option"] for row in answer["options"]]
    row = answer["options"][1]
    assert {
        "option",
        "estimate",
        "interval_90",
        "n",
        "units",
        "effective_n",
        "p_best",
        "global_estimate",
        "dimensions",
    } == set(row)
    assert row["interval_90"][0] < row["estimate"] < row["interval_90"][1]
    assert 30 == row["n"]
    assert ["country"] == [d["dimension"] for d in row["dimensions"]]
    assert {"dimension", "value", "n", "units", "estimate", "weight"} == set(row["dimensions"][0])
    assert abs(1 - sum(r["p_best"] for r in answer["options"])) < 1e-9
    assert 0 < answer["p_choose"] <= 1
    assert ('["Page", "variant"]', "earned/spent", "v1", 28) == (
        answer["decision"],
        answer["formula"],
        answer["unit"],
        answer["window"]["days"],
    )  # thin data


@pytest.mark.parametrize(
    "query, reason",
    [
        ("pk=Page&by_metric=earned/spent", "no_options"),
        ("pk=Page&options=[]", "no_options"),
        ("pk=Page&options=['a','b']&by_metric=earned/spent/more", "bad_formula"),
        ("pk=Page&options=['a','b']&by_metric=earned:last", "bad_formula"),
        ("pk=Page&options=['a','b']&by_metric=queue.gauge", "bad_formula"),
        ("pk=Page&options=['a','b']&by_metric=earned/3", "bad_formula"),
        ("pk=Page&options=['a','b']&goal=best", "bad_goal"),
        ("options=['a','b']", "bad_pk"),
    ],
)
def test_http_decide_bad_input(api, query, reason):
    """Bad decide input is a 400 with a JSON reason."""
    response = api.get("/decide?" + query.replace("[", quote("[")).replace("]", quote("]")))
    answer = api.json(response)

    assert (400, reason) == (response.code, answer["reason"])
    assert answer["error"]


@pytest.mark.parametrize(
    "query, reason",
    [
        ("pk=Page&metric={}", "bad_option"),
        ("pk=Page&decided={'a': 1, 'b': 2}", "bad_option"),
        ("option=a", "bad_pk"),
    ],
)
def test_http_count_decision_bad_input(api, query, reason):
    """A decision without an option (or pk) is a 400 with a JSON reason, and nothing is counted."""
    response = api.get("/count_decision?" + query)
    answer = json.loads(api.content(response))

    assert (400, reason) == (response.code, answer["reason"])
