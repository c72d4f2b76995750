"""Decisions through the Python API and HTTP, on the real store: the seed's spellings and the original's tests."""

import json
import math
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


def visitors(whale, pk, decision, option, count, dollars_each, dimensions=None):  # one report per visitor
    """``count`` decisions of ``option``, each one visitor who spent ``dollars_each``."""
    for _ in range(count):
        whale.count_decision(
            pk,
            decided={decision: option},
            metric={"dollars": dollars_each, "visitors": 1},
            dimensions=dimensions,
            now=NOW,
        )


# -- the original's decision tests (reference §13, tests 13-15), with their numbers ----------
#
# The original counted each cell as one aggregate (``dollars=5000, visitors=1000``); so do
# these, one call per cell.  Its ``bad_idea_threshold=0, test_idea_threshold=0`` (no
# exploration) is ``explore=False``: the option with the best estimate.


def aggregate(whale, pk, decision, option, dollars, visitors, dimensions=None):
    """One report carrying ``visitors`` visitors and the ``dollars`` they spent, as the original's tests counted."""
    whale.count_decision(
        pk,
        decided={decision: option},
        metric={"dollars": dollars, "visitors": visitors},
        dimensions=dimensions,
        now=NOW,
    )


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
    """
    The original's testBasicDecision: a 5000/1000, b and c 0/2000, d 50/10.  a is chosen
    (greedy, and by every draw); b and c are never best; d (ten visitors) is a's only rival.
    """
    pk = ["test_basic_decision"]
    aggregate(whale, pk, "x", "a", 5000, 1000)
    aggregate(whale, pk, "x", "b", 0, 2000)
    aggregate(whale, pk, "x", "c", 0, 2000)
    aggregate(whale, pk, "x", "d", 50, 10)
    options = {"x": ["a", "b", "c", "d"]}
    rng = random.Random(1)

    greedy = whale.decide(pk, options, by_metric="dollars/visitors", explore=False, now=NOW)
    explained = whale.decide(pk, options, by_metric="dollars/visitors", explain=True, rng=rng, now=NOW)
    drawn = [whale.decide(pk, options, by_metric="dollars/visitors", rng=rng, now=NOW) for _ in range(100)]
    p_best = {row["option"]: row["p_best"] for row in explained["options"]}

    assert "a" == greedy
    assert p_best["a"] > 0.99
    assert (0.0, 0.0) == (p_best["b"], p_best["c"])
    assert drawn.count("a") >= 95
    assert [1000, 2000, 2000, 10] == [row["units"] for row in explained["options"]]


def test_informed_decision(whale):
    """
    The original's testInformedDecision: a 50000/10000 (no country), b 0/2000 and, in the
    UK, 10000/2000; c 0/7500; d 5/1.  For an unknown visitor a wins.  For a UK visitor b's
    UK data counts in full (5 a visitor), but a and d were never shown in the UK, where b
    earns twice its average: a (5 a visitor elsewhere) may well do better there, so it is
    the best guess and is explored, with d; c is never chosen.  (The original answered b
    more than 70 times in 100: its weights gave a, good through its base, weight 1 against
    b's UK effect of 10,470; the data say nothing against a in the UK.)
    """
    pk = ["test_informed_decision"]
    aggregate(whale, pk, "x", "a", 50000, 10000)
    aggregate(whale, pk, "x", "b", 0, 2000)
    aggregate(whale, pk, "x", "b", 10000, 2000, {"country": "uk"})
    aggregate(whale, pk, "x", "c", 0, 7500)
    aggregate(whale, pk, "x", "d", 5, 1)
    options = {"x": ["a", "b", "c", "d"]}
    rng = random.Random(3)

    anyone = whale.decide(pk, options, by_metric="dollars/visitors", explain=True, rng=rng, now=NOW)
    uk = whale.decide(pk, options, {"country": "uk"}, "dollars/visitors", explain=True, rng=rng, now=NOW)
    chosen = [whale.decide(pk, options, {"country": "uk"}, "dollars/visitors", rng=rng, now=NOW) for _ in range(100)]
    estimates = {row["option"]: row["estimate"] for row in uk["options"]}

    assert "a" == whale.decide(pk, options, by_metric="dollars/visitors", explore=False, now=NOW)
    assert {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0} == {
        row["option"]: round(row["p_best"], 2) for row in anyone["options"]
    }
    assert 4.9 < estimates["b"] < 5.1  # b's 2,000 UK visitors count in full
    assert "a" == whale.decide(pk, options, {"country": "uk"}, "dollars/visitors", explore=False, now=NOW)
    assert chosen.count("c") <= 2  # the exploration floor only
    assert max(set(chosen), key=chosen.count) == "a"
    assert chosen.count("b") > 0


@pytest.mark.parametrize("geo, best", [("us", {"en"}), ("mx", {"sp", "en"}), ("br", {"pt"})])
def test_tricky_decision(whale, geo, best):
    """The original's testTrickyDecision, its figures as given (one report per cell, the country a plain string)."""
    pk = "test_tricky_decision"
    grid = {  # (geo, language): (dollars, visitors)
        ("us", "en"): (1_500_000, 300_000),
        ("us", "sp"): (1_000, 10_000),
        ("us", "pt"): (300, 5_000),
        ("mx", "en"): (100_000, 100_000),
        ("mx", "sp"): (200_000, 100_000),
        ("mx", "pt"): (200, 10_000),
        ("br", "en"): (300_000, 100_000),
        ("br", "sp"): (150_000, 50_000),
        ("br", "pt"): (500_000, 50_000),
    }
    for (country, language), (dollars, count) in grid.items():
        aggregate(whale, pk, "language", language, dollars, count, country)
    options = {"language": ["en", "sp", "pt"]}
    rng = random.Random(4)

    greedy = whale.decide(pk, options, geo, "dollars/visitors", explore=False, now=NOW)
    drawn = [whale.decide(pk, options, geo, "dollars/visitors", rng=rng, now=NOW) for _ in range(100)]

    assert greedy in best
    assert sum(choice in best for choice in drawn) >= 97


def test_aggregates_of_tens_of_thousands(whale):
    """
    As a new user would: three countries x three languages, one aggregate per cell of
    tens of thousands of visitors, each country's best language earning twice the others:
    each country gets its best language at least 95 times in 100.
    """
    pk = ["Product", "123"]
    revenue_per_visitor = {
        ("US", "EN"): 5.0,
        ("US", "SP"): 2.5,
        ("US", "PT"): 2.0,
        ("MX", "EN"): 2.0,
        ("MX", "SP"): 4.4,
        ("MX", "PT"): 1.5,
        ("BR", "EN"): 2.2,
        ("BR", "SP"): 2.0,
        ("BR", "PT"): 4.6,
    }
    for k, ((country, language), rate) in enumerate(revenue_per_visitor.items()):
        visitors = 20_000 + 5_000 * k
        whale.count_decision(
            pk,
            decided={"language": language},
            metric={"revenue": round(rate * visitors), "visitors": visitors},
            dimensions={"country": country, "device": "Mac OS X"},
            now=NOW,
        )
    rng = random.Random(5)

    for country, best in (("US", "EN"), ("MX", "SP"), ("BR", "PT")):
        known = {"country": country, "device": "Mac OS X"}
        drawn = [
            whale.decide(pk, {"language": ["EN", "SP", "PT"]}, known, "revenue/visitors", rng=rng, now=NOW)
            for _ in range(100)
        ]
        assert drawn.count(best) >= 95, (country, drawn.count(best))


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


SEED_DECISION = 'pk=PageVariation&option={option}&dimensions={{"country": "US"}}&metric={{"spent": .50}}'
SEED_SUCCESS = 'pk=PageVariation&option={option}&dimensions={{"country": "US"}}&metric={{"earned": 25}}'
SEED_DECIDE = """/decide?pk=PageVariation&options=['a', 'b', 'c']&dimensions={"country": "US"}&by_metric=spent/earned"""


def _seed_flow(api, successes, hits_zero=False, pk="PageVariation"):
    """The seed README's two calls, verbatim: each decision ($0.50 spent), then each success ($25 earned)."""
    for option, won in successes.items():
        for i in range(100):
            assert b"OK" == _count_decision(api, SEED_DECISION.format(option=option).replace("PageVariation", pk))
            if i < won:
                success = SEED_SUCCESS.format(option=option).replace("PageVariation", pk)
                assert b"OK" == _count_decision(api, success.replace("25}", '25, "hits": 0}') if hits_zero else success)
    api.flush()


def test_http_seed_flow(api):
    """
    The seed's flow as written: a decision call carrying ``spent``, a later success call
    carrying ``earned``, each adding ``hits: 1``.  Over 100 decisions each, a converts 4
    times, b 40 and c 10.  The exposure of ``earned/spent`` is ``spent``, which only the
    decision calls carry, so the success calls count as outcomes: b is chosen.  The seed's
    own ``by_metric=spent/earned`` asks for the most spent per dollar earned, which is a
    (``goal=min`` on it is b again).
    """
    _seed_flow(api, {"a": 4, "b": 40, "c": 10})
    rows = api.json(api.get(SEED_DECIDE.replace("spent/earned", "earned/spent") + "&explain=true"))["options"]

    as_written = [api.json(api.get(SEED_DECIDE))["option"] for _ in range(20)]
    upside_down = [api.json(api.get(SEED_DECIDE + "&goal=min"))["option"] for _ in range(20)]
    earned_per_spent = [
        api.json(api.get(SEED_DECIDE.replace("spent/earned", "earned/spent")))["option"] for _ in range(20)
    ]

    estimates = [row["estimate"] for row in rows]  # $ earned per $ spent: 2, 20 and 5, shrunk toward the pooled 9
    assert estimates[0] < estimates[2] < 9 < estimates[1]
    assert [50.0, 50.0, 50.0] == [row["units"] for row in rows]  # 100 decisions x $0.50
    assert [104, 140, 110] == [row["n"] for row in rows]  # calls, successes included
    assert earned_per_spent.count("b") >= 19
    assert upside_down.count("b") >= 19
    assert as_written.count("a") >= 15
    expected = {"today": {'["country", "US"]': {"spent": 50.0, "earned": 1000.0, "hits": 140.0}}}
    assert expected == api.totals(
        pk='["PageVariation", "b"]', metrics='["spent", "earned", "hits"]', dimensions='{"country": "US"}'
    )


def test_http_seed_flow_needs_no_hits_zero(api):
    """Success calls with ``"hits": 0`` give the same answer as without: hits are not the exposure of a ratio."""
    _seed_flow(api, {"a": 4, "b": 40, "c": 10})
    _seed_flow(api, {"a": 4, "b": 40, "c": 10}, hits_zero=True, pk="PageZero")
    query = SEED_DECIDE.replace("spent/earned", "earned/spent") + "&explain=true&explore=false"

    without = api.json(api.get(query))
    with_zero = api.json(api.get(query.replace("PageVariation", "PageZero")))

    for plain, zero in zip(without["options"], with_zero["options"]):  # the spreads differ a little: fewer reports
        assert math.isclose(plain["estimate"], zero["estimate"], rel_tol=0.05)
        assert plain["units"] == zero["units"]
    assert ["b", "b"] == [without["option"], with_zero["option"]]
    assert [104, 140, 110] == [row["n"] for row in without["options"]]
    assert [100, 100, 100] == [row["n"] for row in with_zero["options"]]


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
