"""
The seed README's examples, as it wrote them (Python 3's print aside), one test each: the
HTTP ones against a real daemon, the Python ones through Whale on a real store.
"""

import time
import urllib.parse
import urllib.request

import pytest

from hailwhale.client import Client


def get(daemon, url: str) -> str:
    """GET the seed's URL (written with ``http://...``) from the daemon, its query encoded as a browser would."""
    path, _, query = url.removeprefix("http://...").partition("?")
    with urllib.request.urlopen(f"{daemon.base}{path}?{urllib.parse.quote(query, safe='=&')}", timeout=30) as answer:
        return answer.read().decode()


@pytest.fixture
def hw(daemon):
    client = Client(daemon.base)
    yield client
    client.close()


def flushed_total(hw, *args, **kw) -> float:
    hw.flush()
    return hw.total(*args, **kw)


def test_sold_200_in_services(daemon, hw):
    """# Sold $200 in services"""
    before = flushed_total(hw, "test", "dollars", "services", "today")

    answer = get(daemon, 'http://.../count?pk=test&dimensions=services&metrics={"dollars": 200} ')

    assert ("OK", 200.0) == (answer, flushed_total(hw, "test", "dollars", "services", "today") - before)


def test_bought_2000_in_advertising(daemon, hw):
    """# Bought $2000 in advertising"""
    before = flushed_total(hw, "test", "dollars", "advertising", "today")

    answer = get(daemon, 'http://.../count?pk=test&dimensions=advertising&metrics={"dollars": -2000} ')

    assert ("OK", -2000.0) == (answer, flushed_total(hw, "test", "dollars", "advertising", "today") - before)


def test_sold_a_product(daemon, hw):
    """# Sold a $product_id for $500 (nested dimensions, and the seed's metric= spelling); dollars/hits per sale."""
    product_id = 42
    before = flushed_total(hw, "test", "dollars", {"sales": product_id}, "today")

    answer = get(daemon, f'http://.../count?pk=test&dimensions={{"sales": {product_id}}}&metric={{"dollars": 500}}')

    assert ("OK", 500.0, 500.0) == (
        answer,
        flushed_total(hw, "test", "dollars", {"sales": product_id}, "today") - before,
        hw.total("test", "dollars/hits", ["sales", "42"], "today"),
    )


def test_log_our_decisions_and_successes_then_choose(daemon, hw):
    """# Log our decisions; # And log our successes; # Now choose one from our historical data"""
    answers = [
        get(
            daemon,
            'http://.../count_decision?pk=PageVariation&option=b&dimensions={"country": "US"}&metric={"spent": .50}',
        ),
        get(
            daemon,
            'http://.../count_decision?pk=PageVariation&option=b&dimensions={"country": "US"}&metric={"earned": 25}',
        ),
    ]
    hw.flush()
    chosen = get(
        daemon,
        "http://.../decide?pk=PageVariation&options=['a', 'b', 'c']"
        '&dimensions={"country": "US"}&by_metric=spent/earned',
    )

    assert (["OK", "OK"], True, 0.5) == (
        answers,
        chosen in ('{"option": "a"}', '{"option": "b"}', '{"option": "c"}'),
        hw.total(["PageVariation", "b"], "spent", {"country": "US"}, "today"),
    )


@pytest.fixture
def Whale(store_url):
    from hailwhale.whale import Whale

    Whale.configure(store_url)
    return Whale


def test_include_it():
    """# This class is the main entry point ...; # Optional, but includes some extra helpers for ... periods"""
    from hailwhale import periods
    from hailwhale.whale import Whale

    assert (True, True) == (callable(Whale.count_now), callable(periods.resolve))


def test_lets_log_some_data(Whale):
    """# Let's log some data; # How many hits today? 1. 1 hit. Gooood dooog."""
    Whale.count_now("my_counter", metrics={"hits": 1})

    assert Whale.total("my_counter", metric="hits", period="today") == 1


def test_count_something_else_and_graph_it(Whale, capsys):
    """
    # Count something else probably; # Now we want some graph; # we all gonna be out the job.
    The seed's print reads pps['my_counter'], but answers are keyed by dimension (as the
    original's were: the seed was wrong), so it is pps['_'] here.
    """
    Whale.count_now("my_counter", metrics={"hits": 1})
    Whale.count_now("my_counter", metrics={"sales": 1, "revenue": 5})

    pps = Whale.plotpoints("my_counter", metrics=["hits", "sales", "revenue/hits"], period="mtd")
    print(pps["_"]["revenue/hits"][:3])

    assert (time.gmtime().tm_mday, 2.5) == (len(pps["_"]["revenue/hits"]), pps["_"]["revenue/hits"][-1][1])


def test_nest_your_pks_and_get_dashboard_numbers(Whale):
    """# you can also nest your PKs ...; # Get some numbers for a dashboard; # ... all countries, by revenue/visitor"""
    Whale.count_now(
        ["Product", "123"], metric={"revenue": 10.0, "sales": 1}, dimensions={"country": "US", "device": "Mac OS X"}
    )

    totals = Whale.totals(["Product", "123"], metric=["revenue", "sales"], period="1d:1mo")
    plotpoints = Whale.plotpoints(["Product", "123"], dimensions="country", metric=["revenue/visitor"], depth=1)

    assert ({"1d:1mo": {"_": {"revenue": 10.0, "sales": 1.0}}}, [["country"], ["country", "US"]]) == (
        totals,
        [row["path"] for row in plotpoints["rows"]],
    )


def test_recommendation_utilities(Whale):
    """# What if we showed US visitor an english page? # Then ... a spanish page? # ... which page for him?"""
    Whale.count_decision(['Product', '123'], decided={'language': 'EN'},
         metric={'revenue': 500, 'visitors': 100}, dimensions={'country': 'US', 'device': 'Mac OS X'})  # fmt: skip
    Whale.count_decision(['Product', '123'], decided={'language': 'SP'},
         metric={'revenue': 0, 'visitors': 100}, dimensions={'country': 'US', 'device': 'Mac OS X'})  # fmt: skip

    chosen = Whale.decide(['Product', '123'], options={'language': ['EN', 'SP']},
         known_dimensions={'country': 'US', 'device': 'Mac OS X'})  # fmt: skip

    assert (True, 500.0) == (
        chosen in ("EN", "SP"),
        Whale.total(["Product", "123", "language", "EN"], "revenue", period="today"),
    )
